"""copy.deepcopy and pickle of tensors, modules and optimizers give objects that run, on the same device."""
import copy
import pickle

import numpy as np
import pytest

import minigrad
import nn
from fake_gpu import device_params
from minigrad.backend import get_backend


def deep_copy(obj):
    return copy.deepcopy(obj)


def pickled(obj):
    return pickle.loads(pickle.dumps(obj))


COPIES = [pytest.param(deep_copy, id="deepcopy"), pytest.param(pickled, id="pickle")]


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("duplicate", COPIES)
def test_a_copied_backend_is_the_devices_one(device, duplicate):
    backend = get_backend(device)
    assert duplicate(backend) is backend


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("duplicate", COPIES)
def test_a_copied_tensor_computes_with_the_original(device, duplicate):
    x = minigrad.randn(2, 3, device=device, requires_grad=True)
    y = duplicate(x)
    assert y is not x and y.data is not x.data and y.device == x.device and y.requires_grad and y.is_leaf
    np.testing.assert_array_equal(y.detach().numpy(), x.detach().numpy())
    (x * y).sum().backward()  # the two meet in one op: one Backend object on both sides
    np.testing.assert_array_equal(x.grad.numpy(), y.detach().numpy())
    np.testing.assert_array_equal(y.grad.numpy(), x.detach().numpy())
    with minigrad.no_grad():
        y.add_(1)  # the copy's memory and version counter are its own
    assert x._version == 0
    np.testing.assert_array_equal(y.detach().numpy(), x.detach().numpy() + 1)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("duplicate", COPIES)
def test_a_copied_model_and_optimizer_train_on_their_own(device, duplicate):
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).to(device)
    optimizer = minigrad.optim.Adam(model.parameters(), lr=0.1)
    x = minigrad.randn(5, 3, device=device)

    def step(model, optimizer):
        optimizer.zero_grad()
        loss = (model(x) ** 2).mean()
        loss.backward()
        optimizer.step()
        return loss.item()

    step(model, optimizer)  # the optimizer has state (moments, step count) to copy
    model_copy, optimizer_copy = duplicate((model, optimizer))
    device_name = get_backend(device).device
    assert all(c.device == p.device == device_name for c, p in zip(model_copy.parameters(), model.parameters()))
    before = [p.detach().numpy().copy() for p in model.parameters()]
    copy_losses = [step(model_copy, optimizer_copy) for _ in range(3)]
    # The copy trained: its optimizer updates the copy's parameters, and the original's are untouched.
    for p, old in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.detach().numpy(), old)
    assert any(not np.array_equal(p.detach().numpy(), old) for p, old in zip(model_copy.parameters(), before))
    # Its gradients are its own arrays; the original, trained the same way, follows the same path.
    losses = [step(model, optimizer) for _ in range(3)]
    np.testing.assert_allclose(losses, copy_losses, rtol=1e-6)
    for own, copied in zip(model.parameters(), model_copy.parameters()):
        assert copied.grad is not own.grad and copied.grad.data is not own.grad.data
        np.testing.assert_allclose(copied.detach().numpy(), own.detach().numpy(), rtol=1e-6)
