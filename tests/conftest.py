"""Shared fixtures: every test starts from the same random state and the default dtype."""
import numpy as np
import pytest

import minigrad


@pytest.fixture(autouse=True)
def _seeded_and_float32():
    """Seed minigrad's generators and restore float32 as the default dtype around every test."""
    minigrad.manual_seed(0)
    previous = minigrad.get_default_dtype()
    minigrad.set_default_dtype(minigrad.float32)
    yield
    minigrad.set_default_dtype(previous)


@pytest.fixture
def rng():
    """A NumPy generator for test inputs (independent of minigrad's own generators)."""
    return np.random.default_rng(1234)


@pytest.fixture(params=["kernels", "reference"])
def both_paths(request):
    """Run a test twice: with minigrad's fused kernels (the default), and in reference mode (only the
    composed primitive ops and Tensor-op backwards). Model-level test modules use it for every test."""
    with minigrad.set_reference_mode(request.param == "reference"):
        yield request.param
