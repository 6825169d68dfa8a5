"""CPUs: how many this process may really use, a container's CPU limit included."""

from __future__ import annotations

import math
import os
import pathlib

# Where the container runtime mounts this container's own cgroup (v2, or one folder per v1
# controller). A module constant so that tests can point it at fake cgroup files.
CGROUP_ROOT = pathlib.Path("/sys/fs/cgroup")
# cgroup v1 mounts the cpu controller alone or together with cpuacct, depending on the distro.
V1_CPU_FOLDERS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


def _read(path: pathlib.Path) -> str | None:
    """A cgroup file's text, or None when it does not exist or cannot be read."""
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _quota_cpus(quota: str, period: str) -> int | None:
    """Whole CPUs of a CFS quota per period, at least 1; None when the quota is unlimited.

    Args:
        quota: the microseconds of CPU time allowed per period: "max" (v2) or "-1" (v1) for none.
        period: the period's length in microseconds.
    """
    if quota in ("max", "-1"):
        return None
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:
        return None
    if quota_us <= 0 or period_us <= 0:
        return None
    # Rounded down: processes sized from it never ask for more CPU time than the quota grants
    # (a fraction of a CPU would be shared by all of them, each throttled in turn).
    return max(1, math.floor(quota_us / period_us))


def cgroup_cpu_limit(root: pathlib.Path | None = None) -> int | None:
    """The CPU limit of this process's cgroup in whole CPUs, or None when it has none.

    cgroup v2 is read first (`cpu.max`: "quota period"), then v1 (`cpu.cfs_quota_us` and
    `cpu.cfs_period_us`).

    Args:
        root: the cgroup mount; CGROUP_ROOT by default.

    Returns:
        The quota divided by the period, rounded down and at least 1; None when there is no
        limit or no cgroup file to read.
    """
    root = CGROUP_ROOT if root is None else root
    v2 = _read(root / "cpu.max")
    if v2 is not None:
        quota, _, period = v2.partition(" ")
        return _quota_cpus(quota, period or "100000")
    for folder in V1_CPU_FOLDERS:
        quota = _read(root / folder / "cpu.cfs_quota_us")
        period = _read(root / folder / "cpu.cfs_period_us")
        if quota is not None and period is not None:
            return _quota_cpus(quota, period)
    return None


def affinity_cpus() -> int:
    """The CPUs the scheduler lets this process run on (all of the machine's where unknown)."""
    if hasattr(os, "sched_getaffinity"):  # Linux; not macOS nor Windows
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def available_cpus(root: pathlib.Path | None = None) -> int:
    """The CPUs this process may use: its cgroup CPU limit, bounded by its CPU affinity.

    A Kubernetes pod gets the CPU limit of its container's cgroup, whereas `os.cpu_count()`
    counts every core of the node: a pool sized by the node's cores would be throttled.

    Args:
        root: the cgroup mount; CGROUP_ROOT by default.

    Returns:
        At least 1.
    """
    usable = affinity_cpus()
    limit = cgroup_cpu_limit(root)
    return max(1, usable if limit is None else min(limit, usable))
