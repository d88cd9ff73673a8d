"""Side-by-side benchmark of chat aggregators on the local Kafka: the seed's Camel route and
whatever else is given with --system (confab's aggregator, a Kafka Streams job, ...).

Every system gets, in turn, the same two runs, each on a fresh pair of topics:

  throughput  the whole seeded workload is produced first (a backlog); the system starts, reads
              it and writes its groups; the run ends when every message was seen inside a
              grouped record. Records messages/s, CPU seconds, peak RSS and groups written.
  delay       the system starts on empty topics; once its consumer group holds the partitions,
              messages are produced at a fixed rate below saturation; the delay of a message is
              the timestamp of the grouped record that carried it minus its own produce time.

A system named with --fluvio-input reads its input from a Fluvio topic holding the same backlog
(prefilled by fluvio_io) instead of the Kafka one; its output and every measurement stay on
Kafka, so a Fluvio source and a Kafka source compare side by side (throughput runs only).

Run it through `benches/compare/run`, which installs what this needs; `--help` lists options.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import fluvio_io
import kafka_io
import procmon
import report
import workload

REPO = Path(__file__).resolve().parents[2]
CAMEL_JAR = REPO / "benches/camel/target/camel-baseline.jar"
DEFAULT_SYSTEM = f"camel=java -jar {CAMEL_JAR.relative_to(REPO)}"


@dataclass(frozen=True)
class System:
    """A system under test: a name for the table and a command template."""

    name: str
    command: str

    @staticmethod
    def parse(text: str) -> "System":
        name, sep, command = text.partition("=")
        if not sep or not name or not command.strip():
            raise argparse.ArgumentTypeError(f"--system wants NAME=COMMAND, got {text!r}")
        return System(name.strip(), command.strip())

    def argv(self, run: "Run") -> list[str]:
        # Placeholders let a command take the run's topics as flags; the same values are also
        # in the environment (see Run.env) for programs that read variables.
        return [arg.format(**run.placeholders()) for arg in shlex.split(self.command)]


@dataclass(frozen=True)
class Run:
    system: System
    mode: str
    brokers: str
    partitions: int
    tag: str
    fluvio: bool = False

    @property
    def input(self) -> str:
        kafka = f"chat_messages-{self.tag}"
        return fluvio_io.topic_name(kafka) if self.fluvio else kafka

    @property
    def output(self) -> str:
        return f"chat_messages_grouped-{self.tag}"

    @property
    def group(self) -> str:
        return f"aggregator-{self.tag}"

    def placeholders(self) -> dict:
        return {
            "brokers": self.brokers,
            "input": self.input,
            "output": self.output,
            "group": self.group,
            "partitions": self.partitions,
        }

    def env(self) -> dict:
        env = {
            **os.environ,
            "KAFKA_BROKERS": self.brokers,
            "INPUT_TOPIC": self.input,
            "OUTPUT_TOPIC": self.output,
            "GROUP_ID": self.group,
        }
        if self.fluvio:
            env |= {"INPUT_LOG": "fluvio", "CONFAB_FLUVIO_ENDPOINT": fluvio_io.endpoint()}
        return env


class Aggregator:
    """The system under test as a running process (its own session), with its log and monitor."""

    def __init__(self, run: Run, log_dir: Path) -> None:
        self.log_path = log_dir / f"{run.tag}.log"
        self.log = open(self.log_path, "wb")
        argv = run.system.argv(run)
        self.start = time.time()
        try:
            self.proc = subprocess.Popen(
                argv, cwd=REPO, env=run.env(), stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
            )
        except OSError as e:
            raise SystemExit(f"cannot start {run.system.name} ({shlex.join(argv)}): {e}")
        self.monitor = procmon.Monitor(self.proc.pid)
        self.monitor.start()

    def exited(self) -> bool:
        return self.proc.poll() is not None

    def log_tail(self, lines: int = 30) -> str:
        self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM to the whole session, SIGKILL after `grace_s`."""
        self.monitor.stop()
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                pass
        self.log.close()


def rel(path: Path) -> str:
    """`path` relative to the repository when it is inside it."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def broker_pid() -> int | None:
    """The broker scripts/infra started (its pid file holds 'pid start-time'), if readable."""
    infra = Path(os.environ.get("CONFAB_INFRA_DIR", REPO / ".infra"))
    try:
        return int((infra / "run/kafka.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def tree_cpu_s(root: int | None) -> float | None:
    if root is None:
        return None
    ticks = [procmon.cpu_ticks(pid) for pid in procmon.tree(root)]
    return sum(t for t in ticks if t is not None) / procmon.TICKS_PER_S


class SideUsage:
    """CPU the driver itself and the broker spent during a run: they share the two cores with
    the system under test, so the report shows what they took."""

    def __init__(self) -> None:
        self.broker = broker_pid()
        self.driver0, self.broker0 = time.process_time(), tree_cpu_s(self.broker)

    def finish(self) -> tuple[float, float | None]:
        broker1 = tree_cpu_s(self.broker)
        broker = broker1 - self.broker0 if broker1 is not None and self.broker0 is not None else None
        return time.process_time() - self.driver0, broker


def wait_all_out(collector: kafka_io.Collector, aggregator: Aggregator, timeout_s: float, what: str) -> None:
    """Waits until the collector saw every message."""
    deadline = time.time() + timeout_s
    while not collector.done.wait(0.05):
        if aggregator.exited():
            raise RuntimeError(f"{what}: the system exited (code {aggregator.proc.returncode}):\n{aggregator.log_tail()}")
        if time.time() > deadline:
            raise RuntimeError(
                f"{what}: only {len(collector.seen)} of {len(collector.expected)} messages seen "
                f"({collector.counted} ids counted) after "
                f"{timeout_s:.0f} s ({len(collector.records)} groups, {collector.duplicates} duplicates, "
                f"{len(collector.undecodable)} undecodable); log tail:\n{aggregator.log_tail()}"
            )


def consumption_curve(collector: kafka_io.Collector, placement: kafka_io.Placement) -> list[tuple[int, int]]:
    """How far the system had read its input by each grouped record's timestamp, as
    (timestamp ms, messages read): a group containing the message at offset o of partition p
    proves everything up to o in p was read by then. Groups completed by size are written the
    moment their last message is read, so the curve follows the read position closely."""
    heads: dict[int, int] = {}
    curve = []
    for ts, ids in sorted(collector.records):
        for message_id in ids:
            if message_id not in placement.by_id:
                continue  # not ours: counted as unknown_ids
            partition, offset, _ = placement.by_id[message_id]
            if offset + 1 > heads.get(partition, 0):
                heads[partition] = offset + 1
        curve.append((ts, sum(heads.values())))
    return curve


def progress(curve: list[tuple[int, int]], start: float, step_s: float = 0.5) -> list[tuple[float, int]]:
    """The consumption curve every `step_s` seconds from the system's start: (seconds, read)."""
    out, next_t, last = [], start, 0
    for ts, read in curve:
        while ts / 1000 >= next_t + step_s:
            next_t += step_s
            out.append((round(next_t - start, 1), last))
        last = read
    if curve:
        out.append((round(curve[-1][0] / 1000 - start, 1), curve[-1][1]))
    return out


def first_time_reaching(curve: list[tuple[int, int]], count: float) -> tuple[int, int]:
    for ts, read in curve:
        if read >= count:
            return ts, read
    return curve[-1]


def run_throughput(run: Run, messages: list, args, log_dir: Path) -> dict:
    # A Fluvio input topic is left on the cluster: deleting topics beside creations has left a
    # local SC's creations unanswered.
    kafka_topics = [run.output] if run.fluvio else [run.input, run.output]
    kafka_io.create_topics(run.brokers, kafka_topics, run.partitions)
    try:
        if run.fluvio:
            placement, fill_s = fluvio_io.prefill(run.input, run.partitions, messages, args.prefill_gap_us)
        else:
            placement, fill_s = kafka_io.prefill(run.brokers, run.input, messages, args.prefill_gap_us)
        print(f"  prefilled {len(messages):,} messages in {fill_s:.1f} s", flush=True)
        collector = kafka_io.Collector(run.brokers, run.output, run.partitions, set(placement.by_id))
        collector.start()
        load = os.getloadavg()[0]
        usage = SideUsage()
        aggregator = Aggregator(run, log_dir)
        try:
            wait_all_out(collector, aggregator, args.timeout, f"{run.system.name} throughput")
            _, cpu_s, _ = aggregator.monitor.sample()
            peak_kib = aggregator.monitor.peak_rss_kib
            driver_cpu_s, broker_cpu_s = usage.finish()
        finally:
            aggregator.stop()
            collector.stop()
    finally:
        if not args.keep_topics:
            kafka_io.delete_topics(run.brokers, kafka_topics)
            kafka_io.delete_group(run.brokers, run.group)

    m = len(messages)
    curve = consumption_curve(collector, placement)
    lo, hi = args.window
    (t_lo, read_lo), (t_hi, read_hi) = first_time_reaching(curve, lo * m), first_time_reaching(curve, hi * m)
    steady_s = (t_hi - t_lo) / 1000
    first_out = min(ts for ts, _ in collector.records) / 1000
    last_out = max(ts for ts, _ in collector.records) / 1000
    steady_cpu = aggregator.monitor.cpu_at(t_hi / 1000) - aggregator.monitor.cpu_at(t_lo / 1000)
    groups = len(collector.records)
    return {
        "messages": m,
        "messages_per_s": (read_hi - read_lo) / steady_s if steady_s > 0 else None,
        "steady_window": {"from_read": read_lo, "to_read": read_hi, "seconds": steady_s},
        # To the last group's timestamp: the driver reads the output only in the system's pauses
        # (kafka_io.Collector), so when it finished reading says nothing about the system.
        "wall_s": last_out - aggregator.start,
        "messages_per_s_wall": m / (last_out - aggregator.start),
        "startup_s": first_out - aggregator.start,
        "last_group_s": last_out - aggregator.start,
        "cpu_s": cpu_s,
        "cpu_us_per_message_steady": steady_cpu / (read_hi - read_lo) * 1e6 if read_hi > read_lo else None,
        "cores_busy_steady": steady_cpu / steady_s if steady_s > 0 else None,
        "peak_rss_mib": peak_kib / 1024,
        "groups": groups,
        # The fewest groups of the seed's policy with confab's 60 s commit epochs, for this run's
        # stamps: a key whose messages cross a minute of event time may write one group more.
        "ideal_groups_with_epochs": workload.ideal_groups(
            messages, 10, args.prefill_gap_us, times_ms=[placement.by_id[x.message_id][2] for x in messages],
            epoch_ms=60_000,
        ),
        "writes_per_message": groups / m,
        "mean_group_size": m / groups,
        "duplicates": collector.duplicates,
        "unknown_ids": collector.unknown,
        "undecodable": len(collector.undecodable),
        "prefill_s": fill_s,
        "driver_cpu_s": driver_cpu_s,
        "broker_cpu_s": broker_cpu_s,
        "load_average_at_start": load,
        "log": rel(aggregator.log_path),
        "progress_read": progress(curve, aggregator.start),
    }


def run_delay(run: Run, messages: list, args, log_dir: Path) -> dict:
    kafka_io.create_topics(run.brokers, [run.input, run.output], run.partitions)
    try:
        # Ids are known before producing, so the collector can tell when all are out.
        collector = kafka_io.Collector(run.brokers, run.output, run.partitions, {m.message_id for m in messages})
        collector.start()
        load = os.getloadavg()[0]
        aggregator = Aggregator(run, log_dir)
        try:
            deadline = time.time() + args.timeout
            while not kafka_io.group_is_consuming(run.brokers, run.group):
                if aggregator.exited() or time.time() > deadline:
                    raise RuntimeError(
                        f"{run.system.name} delay: consumer group {run.group} never held the partitions; "
                        f"does the command use GROUP_ID / {{group}}? log tail:\n{aggregator.log_tail()}"
                    )
                time.sleep(0.2)
            ready_s = time.time() - aggregator.start
            time.sleep(1.0)  # let the first fetch requests settle
            cpu_before = aggregator.monitor.sample()[1]
            placement, achieved = kafka_io.produce_at_rate(run.brokers, run.input, messages, args.rate)
            wait_all_out(collector, aggregator, args.timeout, f"{run.system.name} delay")
            cpu_after = aggregator.monitor.sample()[1]
            peak_kib = aggregator.monitor.peak_rss_kib
        finally:
            aggregator.stop()
            collector.stop()
    finally:
        if not args.keep_topics:
            kafka_io.delete_topics(run.brokers, [run.input, run.output])
            kafka_io.delete_group(run.brokers, run.group)

    warm = int(args.rate * args.warmup_seconds)
    measured = {m.message_id for m in messages[warm:]}
    delays = []
    for ts, ids in collector.records:
        for message_id in ids:
            if message_id in measured:
                delays.append(ts - placement.by_id[message_id][2])
    delays.sort()
    q = statistics.quantiles(delays, n=100, method="inclusive")
    groups = len(collector.records)
    # Diagnostics for a slow run: a full group is written as soon as its newest message is read,
    # so the time from that message's produce to the group shows how far behind the system was;
    # the produce acknowledgement time shows whether the broker (or the machine) was slow instead.
    full = max(len(ids) for _, ids in collector.records)
    produced = placement.by_id
    lags = sorted(
        ts - max(produced[i][2] for i in ids if i in produced)
        for ts, ids in collector.records
        if len(ids) == full and any(i in produced for i in ids)
    )
    acks = sorted(placement.ack_ms)
    pct = lambda xs, p: xs[min(len(xs) - 1, int(p * len(xs)))] if xs else None  # noqa: E731
    return {
        "offered_rate": args.rate,
        "achieved_rate": achieved,
        "messages": len(messages),
        "measured_messages": len(delays),
        "delay_ms_p50": q[49],
        "delay_ms_p90": q[89],
        "delay_ms_p99": q[98],
        "delay_ms_max": delays[-1],
        "groups": groups,
        "writes_per_message": groups / len(messages),
        "full_group_size": full,
        "full_group_lag_ms_p50": pct(lags, 0.5),
        "full_group_lag_ms_p99": pct(lags, 0.99),
        "produce_ack_ms_p50": pct(acks, 0.5),
        "produce_ack_ms_p99": pct(acks, 0.99),
        "load_average_at_start": load,
        "ready_s": ready_s,
        "cpu_s_while_producing": cpu_after - cpu_before,
        "peak_rss_mib": peak_kib / 1024,
        "duplicates": collector.duplicates,
        "log": rel(aggregator.log_path),
    }


def confab_bin() -> str:
    """confab's binary, found as benches/compare/confab-seed finds it."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return os.environ.get("CONFAB_BIN", str(target / "release/confab"))


def tuned_system(args, messages: list, out: Path) -> tuple[System, dict]:
    """confab with the policy `confab tune` recommends for a p99 of `args.tuned`, tuned on the
    delay run's messages stamped `1 / rate` apart (the traffic the delay run offers)."""
    jsonl, table = out / "tune-input.jsonl", out / "tune.csv"
    t0, step = time.time_ns() // 100, 1e7 / args.rate
    with open(jsonl, "wb") as f:
        f.writelines(workload.encode(m, t0 + round(i * step)) + b"\n" for i, m in enumerate(messages))
    argv = [confab_bin(), "tune", "--input", str(jsonl), "--p99-budget", args.tuned, "--csv", str(table)]
    print(f"tune: {shlex.join(argv)}", flush=True)
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"confab tune failed (code {done.returncode}); build it with "
                         f"cargo build --release -p confab or set CONFAB_BIN:\n{done.stderr[-2000:]}")
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    pick = next((r for r in rows if r["recommended"] == "true"), None)
    seed = next((r for r in rows if r["baseline"] == "true"), None)
    if pick is None or seed is None:
        raise SystemExit(f"confab tune recommended no policy within p99 {args.tuned}:\n{done.stdout[-2000:]}")
    command = (
        f"benches/compare/confab-seed --key {pick['key']} --inactivity-timeout {pick['inactivity_timeout_ms']}ms "
        f"--max-messages {pick['max_messages']} --max-age {pick['max_age_ms']}ms"
    )
    predicted = lambda r: {k: float(r[k]) if "." in r[k] else int(r[k])  # noqa: E731
                           for k in ("writes_per_message", "delay_p50_ms", "delay_p99_ms")}
    info = {
        "system": "confab-tuned",
        "p99_budget": args.tuned,
        "policy": pick["policy"],
        "predicted": predicted(pick),
        "seed_predicted": predicted(seed),
        "command": shlex.join(["confab", *argv[1:]]),
    }
    print(f"  recommended: {pick['policy']} -> {command}", flush=True)
    return System("confab-tuned", command), info


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--system", action="append", type=System.parse, metavar="NAME=COMMAND",
                   help="a system under test (repeatable; the first is the baseline of the ratios). The command "
                        "gets KAFKA_BROKERS, INPUT_TOPIC, OUTPUT_TOPIC, GROUP_ID in its environment, and "
                        "{brokers} {input} {output} {group} {partitions} in its arguments are replaced. "
                        f"Default: {DEFAULT_SYSTEM!r}")
    # A million: at 200,000 confab's steady window lasted 0.6 s, too short to measure, while
    # Camel's JIT was still warming up (both flattered or hurt the ratio).
    p.add_argument("--messages", type=int, default=1_000_000, help="backlog size of the throughput run (1000000)")
    p.add_argument("--partitions", type=int, default=3, help="partitions of each topic (3)")
    p.add_argument("--seed", type=int, default=42, help="workload seed (42)")
    p.add_argument("--modes", default="throughput,delay", help="which runs: throughput, delay or both (both)")
    p.add_argument("--rate", type=float, default=2000, help="offered messages/s of the delay run (2000)")
    p.add_argument("--rate-seconds", type=float, default=30, help="length of the delay run's measured part (30)")
    p.add_argument("--warmup-seconds", type=float, default=5, help="leading part of the delay run left out of the delays (5)")
    p.add_argument("--prefill-gap-us", type=int, default=10,
                   help="event-time gap between backlog messages, µs (10: 200k messages span 2 s, so no key "
                        "sits idle for 3 s of event time and event-time and wall-clock timeouts agree)")
    p.add_argument("--window", type=lambda s: tuple(float(x) for x in s.split(":")), default=(0.2, 0.8),
                   help="share of the backlog read between which the steady rate is measured (0.2:0.8); "
                        "the start leaves out start-up and JIT warm-up, the end the last part of the log, "
                        "whose groups only come out with the completion timeout")
    p.add_argument("--repeat", type=int, default=1,
                   help="runs of each system and mode, interleaved across systems; the table shows medians (1)")
    p.add_argument("--tuned", nargs="?", const="3s", metavar="P99_BUDGET",
                   help="also run confab with the policy `confab tune` recommends for this p99 delay budget "
                        "(3s when given bare) on the delay run's traffic, as a system named confab-tuned")
    p.add_argument("--fluvio-input", action="append", default=[], metavar="NAME",
                   help="the system NAME reads its input from a Fluvio topic with the same backlog "
                        "($CONFAB_FLUVIO_ENDPOINT, 127.0.0.1:9003; throughput runs only; repeatable)")
    p.add_argument("--timeout", type=float, default=300, help="seconds to wait for a run's groups (300)")
    p.add_argument("--brokers", default=os.environ.get("KAFKA_BROKERS", "127.0.0.1:9092"))
    p.add_argument("--out", type=Path, default=REPO / "benches/compare/out", help="logs, results.json, results.md")
    p.add_argument("--keep-topics", action="store_true", help="leave each run's topics and consumer group on the broker")
    args = p.parse_args(argv)
    args.system = args.system or [System.parse(DEFAULT_SYSTEM)]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not set(args.modes) <= {"throughput", "delay"}:
        p.error(f"--modes: unknown mode in {args.modes}")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    kafka_io.check_broker(args.brokers)
    unknown = set(args.fluvio_input) - {s.name for s in args.system}
    if unknown:
        raise SystemExit(f"--fluvio-input names no --system: {', '.join(sorted(unknown))}")
    if args.fluvio_input:
        fluvio_io.check()
    if any(CAMEL_JAR.name in s.command for s in args.system) and not CAMEL_JAR.exists():
        raise SystemExit(f"{rel(CAMEL_JAR)} is missing: build it with benches/compare/run --build")
    log_dir = args.out / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)

    spec = workload.Spec(seed=args.seed)
    delay_count = int(args.rate * (args.warmup_seconds + args.rate_seconds))
    started = time.time()
    all_messages = workload.generate(spec, max(args.messages, delay_count))
    backlog = all_messages[: args.messages]
    sample_bytes = [len(workload.encode(m, time.time_ns() // 100)) for m in backlog[:10_000]]
    print(f"workload: {len(backlog):,} messages generated in {time.time() - started:.1f} s", flush=True)

    results = {
        "machine": report.machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": shlex.join(["benches/compare/run", *argv]),
        "partitions": args.partitions,
        "delay_rate": args.rate,
        "repeat": args.repeat,
        "delay_warmup_s": args.warmup_seconds,
        "workload": {
            "spec": spec.to_dict(),
            "messages": len(backlog),
            "mean_bytes": sum(sample_bytes) / len(sample_bytes),
            "keys": len({(m.from_user, m.chat_id) for m in backlog}),
            "ideal_groups_seed_policy": workload.ideal_groups(backlog, 10, args.prefill_gap_us),
            "prefill_gap_us": args.prefill_gap_us,
            "delay_run_messages": delay_count,
        },
        "systems": [],
    }
    if args.tuned:
        system, results["tuned"] = tuned_system(args, all_messages[:delay_count], args.out)
        args.system.append(system)
    run_id = uuid.uuid4().hex[:8]
    entries = [{"name": s.name, "command": s.command, "runs": {m: [] for m in args.modes}} for s in args.system]
    results["systems"] = entries
    # Repetitions go round the systems in turn, so a change in the machine's load (other work
    # shares its cores) falls on every system alike rather than on whichever ran last.
    for rep in range(args.repeat):
        for system, entry in zip(args.system, entries):
            for mode in args.modes:
                fluvio = system.name in args.fluvio_input
                if fluvio and mode != "throughput":
                    print(f"{system.name} / {mode}: skipped (a Fluvio input has throughput runs only)", flush=True)
                    continue
                run = Run(system, mode, args.brokers, args.partitions, f"{run_id}-{system.name}-{mode}-{rep + 1}", fluvio)
                print(f"{system.name} / {mode} ({rep + 1}/{args.repeat}): {run.input} -> {run.output}", flush=True)
                try:
                    if mode == "throughput":
                        figures = run_throughput(run, backlog, args, log_dir)
                    else:
                        figures = run_delay(run, all_messages[:delay_count], args, log_dir)
                except RuntimeError as e:
                    # One system failing (a timeout, a crash) must not cost the others' results.
                    print(f"  FAILED: {e}", flush=True)
                    figures = {"error": str(e)}
                entry["runs"][mode].append(figures)
                print("  " + json.dumps({k: v for k, v in figures.items() if k != "progress_read"}), flush=True)
    for entry in entries:
        for mode, runs in entry["runs"].items():
            entry[mode] = report.medians(runs)

    table = report.markdown(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "results.md").write_text(table + "\n")
    print()
    print(table)
    print(f"\nwritten: {rel(args.out / 'results.json')}, {rel(args.out / 'results.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
