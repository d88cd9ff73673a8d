"""The driver's Fluvio side: a throughput run's backlog written to a Fluvio topic, so that a
system can read the same workload through the Fluvio source while everything else (its output
topic, the collector, the measuring) stays on Kafka.

The writing is done by confab's `fluvio_fill` example (a Rust program on the `fluvio` client
crate, the release of the cluster's platform): the driver needs no Python Fluvio client.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import kafka_io
import workload

REPO = Path(__file__).resolve().parents[2]


def endpoint() -> str:
    return os.environ.get("CONFAB_FLUVIO_ENDPOINT", "127.0.0.1:9003")


def fill_bin() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "release/examples/fluvio_fill"


def check() -> None:
    """Fails, naming the fix, when the fill program is not built."""
    if not fill_bin().exists():
        raise SystemExit(
            f"{fill_bin()} is missing: build it with cargo build --release -p confab-connectors "
            "--features fluvio --example fluvio_fill (and start Fluvio: scripts/infra up fluvio)"
        )


def topic_name(kafka_topic: str) -> str:
    """A Fluvio name for a run's input topic (lowercase letters, digits and dashes only)."""
    return re.sub(r"[^a-z0-9-]", "-", kafka_topic.lower())


def prefill(topic: str, partitions: int, messages: list[workload.Message], gap_us: int) -> tuple[kafka_io.Placement, float]:
    """kafka_io.prefill's twin on Fluvio: a new topic, every message keyed by chat_id and stamped
    `gap_us` apart from now; returns where each landed and how long it took."""
    placement = kafka_io.Placement()
    t0 = time.time_ns() // 100
    lines = []
    for i, m in enumerate(messages):
        ticks = t0 + i * gap_us * 10
        lines.append(m.chat_id.encode() + b"\t" + workload.encode(m, ticks) + b"\n")
    start = time.time()
    done = subprocess.run(
        [str(fill_bin()), topic, str(partitions)],
        input=b"".join(lines),
        capture_output=True,
        env={**os.environ, "CONFAB_FLUVIO_ENDPOINT": endpoint()},
        check=False,
    )
    elapsed = time.time() - start
    if done.returncode != 0:
        raise RuntimeError(f"fluvio prefill failed: {done.stderr.decode(errors='replace')[-2000:]}")
    positions = done.stdout.decode().split("\n")
    for i, m in enumerate(messages):
        partition, offset = positions[i].split()
        placement.by_id[m.message_id] = (int(partition), int(offset), (t0 + i * gap_us * 10) // 10_000)
    return placement, elapsed
