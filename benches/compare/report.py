"""The benchmark's results: what machine they come from, medians over repeated runs, and the
markdown table `compare.py` prints and writes next to the JSON."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess


def machine() -> dict:
    def first(path: str, prefix: str) -> str | None:
        try:
            return next((line.split(":", 1)[1].strip() for line in open(path) if line.startswith(prefix)), None)
        except OSError:
            return None

    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    return {
        "cpu": first("/proc/cpuinfo", "model name"),
        "cores": os.cpu_count(),
        "memory": f"{int((first('/proc/meminfo', 'MemTotal') or '0 kB').split()[0]) / 2**20:.0f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "java": java[1] if len(java) > 1 else None,
        "kafka": os.environ.get("KAFKA_VERSION", "4.1.2 (scripts/infra default)"),
        "note": "one Kafka broker on loopback on the same machine; other work may share the cores",
    }


def medians(runs: list[dict]) -> dict:
    """The median of every numeric figure over the runs that succeeded."""
    failed = [r["error"] for r in runs if "error" in r]
    runs = [r for r in runs if "error" not in r]
    if not runs:
        return {"error": failed[0]}
    out = {"failed_runs": len(failed)} if failed else {}
    for key, value in runs[0].items():
        values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
        if isinstance(value, (int, float)) and len(values) == len(runs):
            out[key] = statistics.median(values)
    if len(runs) > 1 and "messages_per_s" in out:
        rates = [r["messages_per_s"] for r in runs]
        out["messages_per_s_range"] = [min(rates), max(rates)]
    return out


def fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def markdown(results: dict) -> str:
    rows, w, mach = results["systems"], results["workload"], results["machine"]
    runs = results["repeat"]
    rate_cell = lambda t: fmt(t.get("messages_per_s"), ",.0f") + (  # noqa: E731
        " ({:,.0f}-{:,.0f})".format(*t["messages_per_s_range"]) if "messages_per_s_range" in t else ""
    )
    out = [
        f"Machine: {mach['cpu']}, {mach['cores']} cores, {mach['memory']}; Kafka {mach['kafka']} on loopback; "
        f"{mach['java']}. Other work shared the cores (load average at the start of each run is in the JSON).",
        f"Workload: {w['messages']:,} messages of {w['mean_bytes']:.0f} bytes, {w['keys']:,} (from_user, chat_id) keys, "
        f"{results['partitions']} partitions, seed {w['spec']['seed']}; fewest groups the seed's policy can write: "
        f"{w['ideal_groups_seed_policy']:,}. Delay run: {w['delay_run_messages']:,} messages at "
        f"{results['delay_rate']:,.0f} msg/s. " + (f"Medians of {runs} runs (range of messages/s in brackets)." if runs > 1 else "One run."),
        "",
        "| system | messages/s (steady) | messages/s (wall) | CPU s | CPU µs/msg | peak RSS MiB | groups | writes/msg "
        "| delay p50 ms | delay p99 ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t, d = r.get("throughput") or {}, r.get("delay") or {}
        if "error" in t or "error" in d:
            failed = [m for m in ("throughput", "delay") if "error" in (r.get(m) or {})]
            out.append(f"| {r['name']} | failed: {', '.join(failed)} (see the JSON) |" + " |" * 8)
            continue
        out.append(
            f"| {r['name']} | {rate_cell(t)} | {fmt(t.get('messages_per_s_wall'), ',.0f')} "
            f"| {fmt(t.get('cpu_s'), '.1f')} | {fmt(t.get('cpu_us_per_message_steady'), '.1f')} "
            f"| {fmt(t.get('peak_rss_mib'), '.0f')} | {fmt(t.get('groups'), ',.0f')} | {fmt(t.get('writes_per_message'), '.3f')} "
            f"| {fmt(d.get('delay_ms_p50'), ',.0f')} | {fmt(d.get('delay_ms_p99'), ',.0f')} |"
        )
    if len(rows) > 1:
        base = rows[0]
        out += ["", f"Ratios to {base['name']}:", "",
                "| system | messages/s | CPU µs/msg | peak RSS | groups | delay p99 |", "|---|---|---|---|---|---|"]
        for r in rows[1:]:
            def ratio(mode: str, key: str) -> str:
                x, y = (r.get(mode) or {}).get(key), (base.get(mode) or {}).get(key)
                return f"{x / y:.2f}x" if x is not None and y else "n/a"

            out.append(
                f"| {r['name']} | {ratio('throughput', 'messages_per_s')} | {ratio('throughput', 'cpu_us_per_message_steady')} "
                f"| {ratio('throughput', 'peak_rss_mib')} | {ratio('throughput', 'groups')} | {ratio('delay', 'delay_ms_p99')} |"
            )
    out += ["", "Commands:", ""] + [f"- {r['name']}: `{r['command']}`" for r in rows]
    out += ["", f"Produced by `{results['command']}`."]
    return "\n".join(out)
