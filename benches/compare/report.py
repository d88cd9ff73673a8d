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
    """The median of every numeric figure over the runs that succeeded, with its range (min, max)
    under `range` when there was more than one run."""
    failed = [r["error"] for r in runs if "error" in r]
    runs = [r for r in runs if "error" not in r]
    if not runs:
        return {"error": failed[0]}
    out: dict = {"runs": len(runs), **({"failed_runs": len(failed)} if failed else {})}
    spread = {}
    for key, value in runs[0].items():
        values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
        if isinstance(value, (int, float)) and len(values) == len(runs):
            out[key] = statistics.median(values)
            if len(values) > 1:
                spread[key] = [min(values), max(values)]
    if spread:
        out["range"] = spread
    return out


def fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def cell(figures: dict, key: str, spec: str) -> str:
    """A median, followed by its range over the runs when they differ."""
    text = fmt(figures.get(key), spec)
    lo_hi = (figures.get("range") or {}).get(key)
    if lo_hi and format(lo_hi[0], spec) != format(lo_hi[1], spec):
        text += " ({}–{})".format(*(format(x, spec) for x in lo_hi))
    return text


def ratio(row: dict, base: dict, mode: str, key: str) -> str:
    x, y = (row.get(mode) or {}).get(key), (base.get(mode) or {}).get(key)
    return f"{x / y:.2f}x" if x is not None and y else "n/a"


THROUGHPUT_COLUMNS = (
    ("messages/s (steady)", "messages_per_s", ",.0f"),
    ("messages/s (wall)", "messages_per_s_wall", ",.0f"),
    ("CPU s", "cpu_s", ".1f"),
    ("CPU µs/msg", "cpu_us_per_message_steady", ".1f"),
    ("peak RSS MiB", "peak_rss_mib", ",.0f"),
    ("groups", "groups", ",.0f"),
    ("writes/msg", "writes_per_message", ".3f"),
)
DELAY_COLUMNS = (
    ("groups", "groups", ",.0f"),
    ("writes/msg", "writes_per_message", ".3f"),
    ("delay p50 ms", "delay_ms_p50", ",.0f"),
    ("delay p90 ms", "delay_ms_p90", ",.0f"),
    ("delay p99 ms", "delay_ms_p99", ",.0f"),
    ("CPU s", "cpu_s_while_producing", ".1f"),
    ("peak RSS MiB", "peak_rss_mib", ",.0f"),
)


def table(rows: list[dict], mode: str, columns: tuple) -> list[str]:
    out = ["| system | " + " | ".join(c[0] for c in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for r in rows:
        figures = r.get(mode) or {}
        if "error" in figures:
            out.append(f"| {r['name']} | failed (see the JSON) |" + " |" * (len(columns) - 1))
        else:
            out.append(f"| {r['name']} | " + " | ".join(cell(figures, k, spec) for _, k, spec in columns) + " |")
    return out


def tuned_section(results: dict) -> list[str]:
    """What the policy `confab tune` recommends saves in writes on the delay run's traffic, and
    what it costs in delay, against every other system (the seed's policy)."""
    tuned = results["tuned"]
    rows = {r["name"]: r for r in results["systems"]}
    mine = rows[tuned["system"]].get("delay") or {}
    out = [
        "",
        f"Tuned policy: `confab tune --p99-budget {tuned['p99_budget']}` on the delay run's messages (stamped "
        f"{1000 / results['delay_rate']:g} ms apart) recommends *{tuned['policy']}*; it predicted "
        f"{tuned['predicted']['writes_per_message']:.3f} writes/msg and a p99 of {tuned['predicted']['delay_p99_ms']:,} ms, "
        f"against {tuned['seed_predicted']['writes_per_message']:.3f} and {tuned['seed_predicted']['delay_p99_ms']:,} ms "
        "for the seed's policy. Measured in the delay run:",
        "",
        "| against | groups | writes saved | delay p50 ms | delay p99 ms |",
        "|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        other = row.get("delay") or {}
        if name == tuned["system"] or "groups" not in other or "groups" not in mine:
            continue
        out.append(
            f"| {name} | {mine['groups']:,.0f} vs {other['groups']:,.0f} | {1 - mine['groups'] / other['groups']:.0%} "
            f"| {mine['delay_ms_p50']:,.0f} vs {other['delay_ms_p50']:,.0f} "
            f"| {mine['delay_ms_p99']:,.0f} vs {other['delay_ms_p99']:,.0f} |"
        )
    return out


def markdown(results: dict) -> str:
    rows, w, mach = results["systems"], results["workload"], results["machine"]
    runs = results["repeat"]
    loads = [
        run["load_average_at_start"]
        for r in rows
        for mode_runs in r["runs"].values()
        for run in mode_runs
        if "load_average_at_start" in run
    ]
    load = f"load average {min(loads):.1f}–{max(loads):.1f} at the runs' starts" if loads else "load not recorded"
    out = [
        f"Machine: {mach['cpu']}, {mach['cores']} cores, {mach['memory']}; Kafka {mach['kafka']} on loopback; "
        f"{mach['java']}. Other work shared the cores ({load}).",
        f"Workload: {w['messages']:,} messages of {w['mean_bytes']:.0f} bytes, {w['keys']:,} (from_user, chat_id) keys, "
        f"{results['partitions']} partitions, seed {w['spec']['seed']}; fewest groups the seed's policy can write: "
        f"{w['ideal_groups_seed_policy']:,}. "
        + (f"Medians of {runs} interleaved runs, min–max in brackets." if runs > 1 else "One run."),
        "",
        "Throughput run (the backlog read from the start):",
        "",
        *table(rows, "throughput", THROUGHPUT_COLUMNS),
        "",
        f"Delay run ({w['delay_run_messages']:,} messages offered at {results['delay_rate']:,.0f} msg/s, "
        f"the first {results['delay_warmup_s']:g} s left out of the delays):",
        "",
        *table(rows, "delay", DELAY_COLUMNS),
    ]
    if len(rows) > 1:
        base = rows[0]
        out += ["", f"Ratios of medians to {base['name']}:", "",
                "| system | messages/s | CPU µs/msg | peak RSS | groups | delay p99 |", "|---|---|---|---|---|---|"]
        for r in rows[1:]:
            out.append(
                f"| {r['name']} | {ratio(r, base, 'throughput', 'messages_per_s')} "
                f"| {ratio(r, base, 'throughput', 'cpu_us_per_message_steady')} | {ratio(r, base, 'throughput', 'peak_rss_mib')} "
                f"| {ratio(r, base, 'throughput', 'groups')} | {ratio(r, base, 'delay', 'delay_ms_p99')} |"
            )
    if results.get("tuned"):
        out += tuned_section(results)
    out += ["", "Commands:", ""] + [f"- {r['name']}: `{r['command']}`" for r in rows]
    out += ["", f"Produced by `{results['command']}`."]
    return "\n".join(out)
