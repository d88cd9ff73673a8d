#!/usr/bin/env python3
"""Readiness probes for scripts/infra, python3 standard library only.

Each probe speaks the server's real wire protocol and exits 0 only when the
server answered a real request:

  probe.py kafka     HOST:PORT   ApiVersions v0 + Metadata v4 (needs >= 1 live broker)
  probe.py cql       HOST:PORT [--query CQL] [--keyspace KS]
                                 CQL native protocol v4: STARTUP then QUERY
                                 (default: SELECT release_version FROM system.local)
  probe.py fluvio    HOST:PORT   ApiVersions v2, the request every Fluvio client opens with
                                 (an SC or an SPU); prints the platform version
  probe.py http      URL [--expect TEXT]   GET, status 200 and optional body text
  probe.py port      HOST:PORT   plain TCP connect (used only to detect port clashes)

Options: --timeout SECONDS (per request, default 5), --quiet.
"""
import argparse
import socket
import struct
import sys
import urllib.request


class ProbeError(Exception):
    pass


def split_hostport(s):
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit():
        raise ProbeError(f"expected HOST:PORT, got {s!r}")
    return host.strip("[]"), int(port)


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ProbeError("connection closed by server")
        buf += chunk
    return bytes(buf)


class Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ProbeError("truncated response")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int8(self):
        return struct.unpack(">b", self.take(1))[0]

    def int16(self):
        return struct.unpack(">h", self.take(2))[0]

    def uint16(self):
        return struct.unpack(">H", self.take(2))[0]

    def int32(self):
        return struct.unpack(">i", self.take(4))[0]

    def string16(self):
        n = self.int16()
        return None if n < 0 else self.take(n).decode("utf-8", "replace")

    def string_u16(self):
        return self.take(self.uint16()).decode("utf-8", "replace")


# --------------------------------------------------------------------------- Kafka

def kafka_request(sock, api_key, api_version, corr, body, client_id=b"confab-infra-probe"):
    # Request header v1: api_key, api_version, correlation_id, client_id (nullable string)
    header = struct.pack(">hhih", api_key, api_version, corr, len(client_id)) + client_id
    msg = header + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    r = Reader(recv_exact(sock, size))
    if r.int32() != corr:
        raise ProbeError("kafka: correlation id mismatch")
    return r


def probe_kafka(addr, timeout):
    host, port = split_hostport(addr)
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        # ApiVersions v0 (api_key 18): empty body
        r = kafka_request(s, 18, 0, 1, b"")
        err = r.int16()
        if err != 0:
            raise ProbeError(f"kafka: ApiVersions error code {err}")
        n_apis = r.int32()
        # Metadata v4 (api_key 3): topics = [] (no topics), allow_auto_topic_creation = false
        r = kafka_request(s, 3, 4, 2, struct.pack(">ib", 0, 0))
        r.int32()  # throttle_time_ms
        brokers = []
        for _ in range(r.int32()):
            node_id = r.int32()
            bhost = r.string16()
            bport = r.int32()
            r.string16()  # rack
            brokers.append(f"{node_id}@{bhost}:{bport}")
        cluster_id = r.string16()
        controller = r.int32()
    if not brokers:
        raise ProbeError("kafka: metadata lists no live broker yet")
    return (f"kafka ok: {n_apis} APIs, cluster_id={cluster_id}, "
            f"brokers={','.join(brokers)}, controller={controller}")


# --------------------------------------------------------------------------- CQL

CQL_VERSION = 0x04
OP_ERROR, OP_STARTUP, OP_READY, OP_AUTHENTICATE, OP_QUERY, OP_RESULT = 0x00, 0x01, 0x02, 0x03, 0x07, 0x08


def cql_frame(stream, opcode, body):
    return struct.pack(">BBhBi", CQL_VERSION, 0, stream, opcode, len(body)) + body


def cql_recv(sock):
    version, flags, stream, opcode, length = struct.unpack(">BBhBi", recv_exact(sock, 9))
    if version & 0x7F != CQL_VERSION:
        raise ProbeError(f"cql: unexpected protocol version byte {version:#x}")
    body = recv_exact(sock, length)
    r = Reader(body)
    if flags & 0x08:  # warning flag: [string list] precedes the body
        for _ in range(r.uint16()):
            r.string_u16()
    if opcode == OP_ERROR:
        code = r.int32()
        raise ProbeError(f"cql: server error {code:#06x}: {r.string_u16()}")
    return opcode, r


def cql_long_string(s):
    b = s.encode("utf-8")
    return struct.pack(">i", len(b)) + b


def cql_string(s):
    b = s.encode("utf-8")
    return struct.pack(">H", len(b)) + b


def cql_skip_type(r):
    tid = r.uint16()
    if tid == 0x0000:
        r.string_u16()
    elif tid in (0x0020, 0x0022):
        cql_skip_type(r)
    elif tid == 0x0021:
        cql_skip_type(r)
        cql_skip_type(r)
    elif tid == 0x0030:
        r.string_u16()
        r.string_u16()
        for _ in range(r.uint16()):
            r.string_u16()
            cql_skip_type(r)
    elif tid == 0x0031:
        for _ in range(r.uint16()):
            cql_skip_type(r)
    return tid


TEXT_TYPES = (0x0001, 0x000A, 0x000D)  # ascii, text, varchar


def cql_decode(tid, raw):
    if raw is None:
        return "null"
    if tid in TEXT_TYPES:
        return raw.decode("utf-8", "replace")
    if tid == 0x0009:  # int
        return str(struct.unpack(">i", raw)[0])
    if tid in (0x0002, 0x0005):  # bigint, counter
        return str(struct.unpack(">q", raw)[0])
    if tid == 0x0004:  # boolean
        return "true" if raw != b"\x00" else "false"
    return "0x" + raw.hex()


def cql_query(addr, query, timeout, keyspace=None):
    host, port = split_hostport(addr)
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(cql_frame(0, OP_STARTUP, struct.pack(">H", 1) + cql_string("CQL_VERSION") + cql_string("3.0.0")))
        op, _ = cql_recv(s)
        if op == OP_AUTHENTICATE:
            raise ProbeError("cql: server requires authentication (this probe expects AllowAllAuthenticator)")
        if op != OP_READY:
            raise ProbeError(f"cql: expected READY, got opcode {op:#x}")
        results = []
        statements = ([f'USE "{keyspace}"'] if keyspace else []) + [query]
        for i, stmt in enumerate(statements, start=1):
            # QUERY: [long string] query, [short] consistency ONE, [byte] flags 0
            s.sendall(cql_frame(i, OP_QUERY, cql_long_string(stmt) + struct.pack(">HB", 0x0001, 0)))
            op, r = cql_recv(s)
            if op != OP_RESULT:
                raise ProbeError(f"cql: expected RESULT, got opcode {op:#x}")
            results.append(cql_result(r))
        return results[-1]


def cql_result(r):
    kind = r.int32()
    if kind == 0x0001:
        return "void"
    if kind == 0x0003:
        return f"keyspace set: {r.string_u16()}"
    if kind == 0x0005:
        change = r.string_u16()
        target = r.string_u16()
        name = r.string_u16()
        if target != "KEYSPACE":
            name += "." + r.string_u16()
        return f"schema change: {change} {target} {name}"
    if kind != 0x0002:
        return f"result kind {kind}"
    flags = r.int32()
    ncols = r.int32()
    if flags & 0x0002:  # has_more_pages: paging state
        n = r.int32()
        if n > 0:
            r.take(n)
    if flags & 0x0004:  # no_metadata
        raise ProbeError("cql: rows without metadata")
    global_spec = flags & 0x0001
    if global_spec:
        r.string_u16()
        r.string_u16()
    cols = []
    for _ in range(ncols):
        if not global_spec:
            r.string_u16()
            r.string_u16()
        name = r.string_u16()
        cols.append((name, cql_skip_type(r)))
    lines = []
    for _ in range(r.int32()):
        cells = []
        for name, tid in cols:
            n = r.int32()
            cells.append(f"{name}={cql_decode(tid, None if n < 0 else r.take(n))}")
        lines.append(" ".join(cells))
    return "\n".join(lines) if lines else "(0 rows)"


# --------------------------------------------------------------------------- Fluvio

def probe_fluvio(addr, timeout):
    host, port = split_hostport(addr)

    def string(b):
        return struct.pack(">H", len(b)) + b

    # Header: api_key 18 (ApiVersions), version 2, correlation id 1, client id; body: the client's
    # version, OS and architecture, as the fluvio 0.50 client sends them.
    msg = (struct.pack(">hhi", 18, 2, 1) + string(b"confab-infra-probe")
           + string(b"0.50.1") + string(b"linux") + string(b"x86_64"))
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(msg)) + msg)
        size = struct.unpack(">i", recv_exact(s, 4))[0]
        if not 0 < size < 1 << 20:
            raise ProbeError(f"fluvio: implausible response size {size}")
        r = Reader(recv_exact(s, size))
    if r.int32() != 1:
        raise ProbeError("fluvio: correlation id mismatch")
    err = r.int16()
    if err != 0:
        raise ProbeError(f"fluvio: ApiVersions error code {err}")
    n_apis = r.int32()
    r.take(6 * n_apis)  # api key, min and max version each
    version = r.string_u16()
    return f"fluvio ok: platform {version}, {n_apis} APIs"


# --------------------------------------------------------------------------- HTTP, TCP

def probe_http(url, timeout, expect):
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (loopback only)
        body = resp.read(4096).decode("utf-8", "replace")
        if resp.status != 200:
            raise ProbeError(f"http: status {resp.status}")
    if expect and expect not in body:
        raise ProbeError(f"http: body {body[:80]!r} lacks {expect!r}")
    return f"http ok: {body.strip()[:80]}"


def probe_port(addr, timeout):
    host, port = split_hostport(addr)
    with socket.create_connection((host, port), timeout=timeout):
        return f"port {addr} accepts connections"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=["kafka", "cql", "fluvio", "http", "port"])
    p.add_argument("target")
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--query", default="SELECT release_version FROM system.local")
    p.add_argument("--keyspace")
    p.add_argument("--expect")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args()
    try:
        if a.kind == "kafka":
            out = probe_kafka(a.target, a.timeout)
        elif a.kind == "cql":
            out = cql_query(a.target, a.query, a.timeout, a.keyspace)
        elif a.kind == "fluvio":
            out = probe_fluvio(a.target, a.timeout)
        elif a.kind == "http":
            out = probe_http(a.target, a.timeout, a.expect)
        else:
            out = probe_port(a.target, a.timeout)
    except (OSError, ProbeError, ValueError, struct.error) as e:
        if not a.quiet:
            print(f"probe {a.kind} {a.target}: {e}", file=sys.stderr)
        return 1
    if not a.quiet:
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
