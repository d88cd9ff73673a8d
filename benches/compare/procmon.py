"""CPU time and memory of a process tree, sampled from /proc while it runs.

The system under test is started as the leader of its own session, so a wrapper (a shell, a
launcher script) and everything it starts are measured together: CPU is the sum of utime+stime
over the live processes plus what the leader already collected from reaped children (cutime +
cstime); peak RSS is the sum of each process's VmHWM, the kernel's own high-water mark, so the
peak is exact for one process and an upper bound for several.
"""

from __future__ import annotations

import os
import threading
import time

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _children(pid: int) -> list[int]:
    out = []
    for tid in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else []:
        text = _read(f"/proc/{pid}/task/{tid}/children")
        if text:
            out.extend(int(c) for c in text.split())
    return out


def tree(root: int) -> list[int]:
    """`root` and its live descendants."""
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        if os.path.isdir(f"/proc/{pid}"):
            pids.append(pid)
            todo.extend(_children(pid))
    return pids


def cpu_ticks(pid: int, with_children: bool = False) -> int | None:
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # fields[0] is field 3 (state)
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if with_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime of reaped children
    return ticks


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmHWM, VmRSS) in KiB, or zeros once the process is gone."""
    hwm = rss = 0
    for line in (_read(f"/proc/{pid}/status") or "").splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
        elif line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return hwm, rss


class Monitor(threading.Thread):
    """Samples the tree under `root` every `interval_s` seconds until stopped."""

    def __init__(self, root: int, interval_s: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.interval_s = interval_s
        self._cpu: dict[int, int] = {}  # last ticks seen per pid
        self._hwm: dict[int, int] = {}  # highest VmHWM seen per pid, KiB
        self.samples: list[tuple[float, float, int]] = []  # (unix s, CPU s, summed RSS KiB)
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def sample(self) -> tuple[float, float, int]:
        """Takes one sample now and returns it."""
        with self._lock:
            rss_total = 0
            for pid in tree(self.root):
                ticks = cpu_ticks(pid, with_children=pid == self.root)
                if ticks is not None:
                    self._cpu[pid] = ticks
                hwm, rss = memory_kib(pid)
                self._hwm[pid] = max(self._hwm.get(pid, 0), hwm)
                rss_total += rss
            sample = (time.time(), sum(self._cpu.values()) / TICKS_PER_S, rss_total)
            self.samples.append(sample)
            return sample

    def run(self) -> None:
        while not self._halt.wait(self.interval_s):
            self.sample()

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    @property
    def peak_rss_kib(self) -> int:
        with self._lock:
            return max(sum(self._hwm.values()), max((s[2] for s in self.samples), default=0))

    def cpu_at(self, t: float) -> float:
        """CPU seconds used by time `t` (unix s), interpolated between samples."""
        with self._lock:
            samples = list(self.samples)
        before = [s for s in samples if s[0] <= t]
        after = [s for s in samples if s[0] >= t]
        if not before:
            return after[0][1] if after else 0.0
        if not after:
            return before[-1][1]
        (t0, c0, _), (t1, c1, _) = before[-1], after[0]
        return c0 if t1 == t0 else c0 + (c1 - c0) * (t - t0) / (t1 - t0)
