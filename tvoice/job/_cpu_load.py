"""The worker's CPU load, as it reports it to the server (``UpdateWorkerStatus.load``) when
no ``load_fnc`` is given: the share of the CPUs it may use that were busy, over the last
samples."""

from __future__ import annotations

import logging

__all__ = ["CGROUP", "LOAD_SAMPLES", "LOAD_SAMPLE_INTERVAL", "CpuLoad"]

logger = logging.getLogger("tvoice.worker")

LOAD_SAMPLE_INTERVAL = 0.5
LOAD_SAMPLES = 5  # averaged: the load over the last 2.5 s
CGROUP = "/sys/fs/cgroup"  # the worker's own cgroup (v2) inside a container


class CpuLoad:
    """The CPU use in [0, 1], averaged over the last samples: of the cgroup's CPU limit
    (``cpu.max`` in ``cgroup``, cgroup v2) when it has one, else of the machine (``/proc/stat``).

    A container limited to 2 CPUs on a 64-CPU host is full at 2 CPUs busy: the host's idle
    CPUs must not make it look available.
    """

    def __init__(self, path: str = "/proc/stat", *, cgroup: str | None = None) -> None:
        self._path = path
        self._cgroup = cgroup
        self._last: tuple[int, int] | None = None
        self._last_usage: tuple[float, float] | None = None  # (time, CPU seconds used)
        self._samples: list[float] = []
        self._warned = False

    def sample(self, now: float = 0.0) -> None:
        """Take a sample; ``now`` is the trio time (only a cgroup's usage needs it)."""
        cpus = self._cgroup_cpus()
        if cpus is not None:
            self._sample_cgroup(now, cpus)
            return
        times = self._read()
        if times is None:
            return
        if self._last is not None:
            total, idle = times[0] - self._last[0], times[1] - self._last[1]
            if total > 0:
                self._add(1.0 - idle / total)
        self._last = times

    def _add(self, load: float) -> None:
        self._samples = [*self._samples, min(1.0, max(0.0, load))][-LOAD_SAMPLES:]

    def _cgroup_cpus(self) -> float | None:
        """How many CPUs the cgroup may use (None: no cgroup, or no limit)."""
        if self._cgroup is None:
            return None
        try:
            with open(f"{self._cgroup}/cpu.max") as f:
                quota, period = f.read().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        except (OSError, ValueError, ZeroDivisionError):
            return None

    def _sample_cgroup(self, now: float, cpus: float) -> None:
        try:
            with open(f"{self._cgroup}/cpu.stat") as f:
                fields = dict(line.split()[:2] for line in f if line.strip())
            used = int(fields["usage_usec"]) / 1e6
        except (OSError, ValueError, KeyError) as exc:
            if not self._warned:
                self._warned = True
                logger.warning("cannot read the cgroup's CPU use (%s): load 0", exc)
            return
        if self._last_usage is not None and now > self._last_usage[0]:
            last_time, last_used = self._last_usage
            self._add((used - last_used) / (now - last_time) / cpus)
        self._last_usage = (now, used)

    @property
    def value(self) -> float:
        return sum(self._samples) / len(self._samples) if self._samples else 0.0

    def _read(self) -> tuple[int, int] | None:
        try:
            with open(self._path) as f:
                fields = f.readline().split()
            numbers = [int(x) for x in fields[1:]]
            # user nice system idle iowait irq softirq steal (guest time is inside user)
            return sum(numbers[:8]), numbers[3] + numbers[4]
        except (OSError, ValueError, IndexError) as exc:
            if not self._warned:
                self._warned = True
                logger.warning("cannot read the CPU load from %s (%s): load 0", self._path, exc)
            return None
