"""The device check (transformer/device_check.py): cpu always, cuda only where it works, and a
one-line reason otherwise."""
import pytest

import minigrad
from transformer.device_check import check_device
from transformer.errors import UsageError


def test_cpu_passes_and_an_unknown_device_is_named():
    assert check_device("cpu") == "cpu"
    with pytest.raises(UsageError, match="--device tpu: unknown device; use cpu or cuda"):
        check_device("tpu")


def test_cuda_without_a_gpu_says_why():
    if minigrad.cuda.is_available():
        assert check_device("cuda") == "cuda"
        return
    with pytest.raises(UsageError, match="--device cuda:1: CuPy .*; use --device cpu") as error:
        check_device("cuda:1")
    assert "\n" not in str(error.value)
