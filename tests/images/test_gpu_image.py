"""The GPU image's recipe: the CUDA build of the same XGBoost that the CPU lock pins.

No Docker engine runs here, so the image itself is not built; what can drift is checked: the
two locks' versions, the hashes, and that the build context lets the GPU lock in.
"""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]


def pins(lock: str) -> dict[str, str]:
    """Each package's pin for CPython 3.11 (the universal lock also pins some for 3.12+)."""
    text = (ROOT / lock).read_text()
    found = re.findall(
        r"^([a-z0-9][a-z0-9._-]*)==([^ \\\n]+)( ; [^\\\n]*)?", text, flags=re.MULTILINE
    )
    return {name: version for name, version, marker in found if ">= '3.12'" not in marker}


def test_the_gpu_lock_pins_the_cuda_build_of_the_locked_xgboost_cpu():
    cpu, gpu = pins("requirements.lock"), pins("requirements-gpu.lock")
    assert gpu["xgboost"] == cpu["xgboost-cpu"]
    assert "nvidia-nccl-cu12" in gpu
    # What both locks hold is the same version: installing the GPU lock changes only XGBoost.
    shared = set(cpu) & set(gpu)
    assert shared and all(cpu[name] == gpu[name] for name in shared)


def test_every_gpu_pin_carries_a_hash():
    text = (ROOT / "requirements-gpu.lock").read_text()
    entries = re.split(r"\n(?=[a-z0-9])", text.split("\n", 2)[2])
    assert entries and all("--hash=sha256:" in entry for entry in entries if "==" in entry)


def test_the_gpu_dockerfile_swaps_the_wheel_and_the_context_lets_its_lock_in():
    recipe = (ROOT / "images" / "Dockerfile.gpu").read_text()
    assert "pip uninstall --yes xgboost-cpu" in recipe
    assert "--require-hashes -r /tmp/requirements-gpu.lock" in recipe
    assert "USER 1000:1000" in recipe.splitlines()[-1]
    assert "!requirements-gpu.lock" in (ROOT / ".dockerignore").read_text().splitlines()
