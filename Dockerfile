# The confab binary with the web client built into it, for docker-compose.yml or any container runtime.
#   docker build -t confab .
#   docker run -p 3000:3000 -v confab-data:/var/lib/confab confab          # embedded defaults
# Stage 1 builds the web client, stage 2 the binary with it embedded (librdkafka is compiled from
# source, which needs make, perl and a C++ compiler: all in the rust image), stage 3 is the small
# runtime.

FROM node:20-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY web/ ./
RUN npm run build

FROM rust:1.91-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
COPY --from=web /src/web/dist web/dist
# Without default features: the image runs confab, it does not load-test it (no `confab loadgen`).
RUN cargo build --release --locked -p confab --no-default-features \
    && cp target/release/confab /usr/local/bin/confab

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/confab confab \
    && mkdir -p /var/lib/confab && chown confab /var/lib/confab
COPY --from=build /usr/local/bin/confab /usr/local/bin/confab
COPY runners/configs/up/ /etc/confab/
ENV CONFAB_LISTEN=0.0.0.0:3000 \
    CONFAB_DATA_DIR=/var/lib/confab
USER confab
VOLUME /var/lib/confab
EXPOSE 3000
ENTRYPOINT ["confab"]
CMD ["up"]
