"""Devices: whether this step may compute on a CUDA GPU, and which device XGBoost is given.

The predict and explain steps ask Kubernetes for a GPU node (`pipelines/cluster`); this module
decides, in the pod, whether one is really there to use. It is used only where it helps:
XGBoost predicts and computes SHAP values on CUDA (`device="cuda"`), everything else runs on
the CPU. The answer is "cpu" unless all of these hold:

- `LIFECYCLE_DEVICE` is not "cpu" (set it to "cpu" to force the CPU, "cuda" to require a GPU);
- `CUDA_VISIBLE_DEVICES` does not hide every device ("" or "-1");
- a CUDA device node is present (`/dev/nvidia0`, ...), as the NVIDIA device plugin mounts it;
- the installed XGBoost was built with CUDA (the `xgboost` wheel; `xgboost-cpu`, which the
  project's venv and image install, is not; docs/gpu.md has the GPU image).
"""

from __future__ import annotations

import os
import pathlib
import typing as T

Device = T.Literal["cpu", "cuda"]

ENVIRONMENT = "LIFECYCLE_DEVICE"
# Where the NVIDIA device plugin mounts the GPUs granted to a container. A module constant so
# that tests can point it elsewhere.
DEVICE_ROOT = pathlib.Path("/dev")


class DeviceError(RuntimeError):
    """A GPU was required (LIFECYCLE_DEVICE=cuda) and none can be used."""


def _requested() -> str:
    """The device asked for in LIFECYCLE_DEVICE: "auto" (the default), "cpu" or "cuda"."""
    requested = os.environ.get(ENVIRONMENT, "auto").strip().lower() or "auto"
    if requested not in ("auto", "cpu", "cuda"):
        raise DeviceError(f"{ENVIRONMENT}={requested!r}: expected auto, cpu or cuda")
    return requested


def cuda_visible() -> bool:
    """Whether a CUDA device is present and not hidden from this process."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1"):
        return False
    return any(DEVICE_ROOT.glob("nvidia[0-9]*"))


def xgboost_has_cuda() -> bool:
    """Whether the installed XGBoost was built with CUDA (False when it is not installed)."""
    try:
        import xgboost
    except ImportError:
        return False
    return bool(xgboost.build_info().get("USE_CUDA", False))


def why_cpu() -> str | None:
    """Why XGBoost runs on the CPU here, in words for the step's log; None when it may use CUDA."""
    if _requested() == "cpu":
        return f"{ENVIRONMENT}=cpu"
    if not cuda_visible():
        return "no CUDA device is visible"
    if not xgboost_has_cuda():
        return "the installed XGBoost has no CUDA support (xgboost-cpu)"
    return None


def xgboost_device() -> Device:
    """The device XGBoost predicts and explains on: "cuda" where it can, else "cpu".

    Raises:
        DeviceError: LIFECYCLE_DEVICE=cuda and CUDA cannot be used (the reason is named), or
            LIFECYCLE_DEVICE holds an unknown value.
    """
    reason = why_cpu()
    if reason is None:
        return "cuda"
    if _requested() == "cuda":
        raise DeviceError(f"{ENVIRONMENT}=cuda but {reason}")
    return "cpu"
