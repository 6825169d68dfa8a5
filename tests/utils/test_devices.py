"""Which device XGBoost is given: the CPU unless a CUDA device and a CUDA build are both there.

No GPU is on this machine: the device nodes are faked by pointing DEVICE_ROOT at a folder,
and XGBoost's CUDA build by patching `xgboost_has_cuda` (the venv installs xgboost-cpu).
"""

from __future__ import annotations

import pytest

from components.utils import devices


@pytest.fixture
def gpu_node(tmp_path, monkeypatch):
    """A folder that holds what the NVIDIA device plugin mounts: /dev/nvidia0."""
    (tmp_path / "nvidia0").touch()
    monkeypatch.setattr(devices, "DEVICE_ROOT", tmp_path)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv(devices.ENVIRONMENT, raising=False)
    return tmp_path


def test_the_venvs_xgboost_is_the_cpu_build():
    assert devices.xgboost_has_cuda() is False


def test_no_device_node_means_cpu(tmp_path, monkeypatch):
    monkeypatch.setattr(devices, "DEVICE_ROOT", tmp_path)
    monkeypatch.delenv(devices.ENVIRONMENT, raising=False)
    assert devices.cuda_visible() is False
    assert devices.xgboost_device() == "cpu"
    assert devices.why_cpu() == "no CUDA device is visible"


def test_a_gpu_and_a_cuda_build_give_cuda(gpu_node, monkeypatch):
    monkeypatch.setattr(devices, "xgboost_has_cuda", lambda: True)
    assert devices.xgboost_device() == "cuda"
    assert devices.why_cpu() is None


def test_a_gpu_without_a_cuda_build_gives_cpu(gpu_node):
    assert devices.cuda_visible() is True
    assert devices.xgboost_device() == "cpu"
    assert "xgboost-cpu" in devices.why_cpu()


@pytest.mark.parametrize("hidden", ["", "-1"])
def test_cuda_visible_devices_can_hide_the_gpu(gpu_node, monkeypatch, hidden):
    monkeypatch.setattr(devices, "xgboost_has_cuda", lambda: True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
    assert devices.xgboost_device() == "cpu"


def test_lifecycle_device_cpu_forces_the_cpu(gpu_node, monkeypatch):
    monkeypatch.setattr(devices, "xgboost_has_cuda", lambda: True)
    monkeypatch.setenv(devices.ENVIRONMENT, "cpu")
    assert devices.xgboost_device() == "cpu"
    assert devices.why_cpu() == "LIFECYCLE_DEVICE=cpu"


def test_requiring_cuda_where_there_is_none_names_why(gpu_node, monkeypatch):
    monkeypatch.setenv(devices.ENVIRONMENT, "cuda")
    with pytest.raises(devices.DeviceError, match="LIFECYCLE_DEVICE=cuda but .*xgboost-cpu"):
        devices.xgboost_device()


def test_an_unknown_device_is_refused(monkeypatch):
    monkeypatch.setenv(devices.ENVIRONMENT, "tpu")
    with pytest.raises(devices.DeviceError, match="expected auto, cpu or cuda"):
        devices.xgboost_device()
