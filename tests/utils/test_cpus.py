"""Tests for the CPU count: cgroup v2 and v1 limits, none, fractions, bounded by the affinity."""

from __future__ import annotations

import pathlib

import pytest

from components.utils import cpus

MACHINE_CPUS = 16  # the cores the fake scheduler lets this process run on


@pytest.fixture(autouse=True)
def affinity(monkeypatch):
    """A 16-core machine, so that the limits below are smaller than the affinity."""
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: set(range(MACHINE_CPUS)))


def cgroup(root: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
    """Write fake cgroup files under root and return it."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return root


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "400000 100000"}, 4),  # v2, a limit of 4 CPUs
        ({"cpu.max": "max 100000"}, MACHINE_CPUS),  # v2, no limit
        ({"cpu/cpu.cfs_quota_us": "200000", "cpu/cpu.cfs_period_us": "100000"}, 2),  # v1
        ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, MACHINE_CPUS),
        (
            {"cpu,cpuacct/cpu.cfs_quota_us": "300000", "cpu,cpuacct/cpu.cfs_period_us": "100000"},
            3,
        ),  # v1 with the cpu and cpuacct controllers mounted together
        ({}, MACHINE_CPUS),  # no cgroup at all
        ({"cpu.max": "150000 100000"}, 1),  # 1.5 CPUs: rounded down
        ({"cpu.max": "50000 100000"}, 1),  # half a CPU: still one process
        ({"cpu.max": "6400000 100000"}, MACHINE_CPUS),  # a limit above the affinity
    ],
    ids=[
        "v2-limited",
        "v2-unlimited",
        "v1-limited",
        "v1-unlimited",
        "v1-cpu-cpuacct",
        "no-cgroup",
        "fractional",
        "below-one",
        "above-affinity",
    ],
)
def test_available_cpus_is_the_cgroup_limit_bounded_by_the_affinity(tmp_path, files, expected):
    assert cpus.available_cpus(cgroup(tmp_path, files)) == expected


def test_v2_is_read_before_v1(tmp_path):
    root = cgroup(
        tmp_path,
        {
            "cpu.max": "200000 100000",
            "cpu/cpu.cfs_quota_us": "500000",
            "cpu/cpu.cfs_period_us": "100000",
        },
    )
    assert cpus.cgroup_cpu_limit(root) == 2


def test_unreadable_limits_count_as_none(tmp_path):
    assert cpus.cgroup_cpu_limit(cgroup(tmp_path, {"cpu.max": "garbage"})) is None


def test_the_module_root_is_the_default(tmp_path, monkeypatch):
    monkeypatch.setattr(cpus, "CGROUP_ROOT", cgroup(tmp_path, {"cpu.max": "300000 100000"}))
    assert cpus.available_cpus() == 3


def test_the_affinity_bounds_the_count(tmp_path, monkeypatch):
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: {0, 1})
    assert cpus.available_cpus(cgroup(tmp_path, {"cpu.max": "800000 100000"})) == 2


def test_this_machine_has_at_least_one():
    assert cpus.available_cpus() >= 1
