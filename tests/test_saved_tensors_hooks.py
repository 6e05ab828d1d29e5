"""minigrad.autograd.graph.saved_tensors_hooks: every tensor saved for backward goes through pack, and
through unpack when backward reads it, on both of the engine's paths; gradients are unchanged."""
import numpy as np
import pytest

import minigrad
import minigrad.functional as F
from fake_gpu import device_params
from minigrad.autograd import Function
from minigrad.autograd.graph import saved_tensors_hooks

torch = pytest.importorskip("torch")


def to_host(t):
    return t.detach().cpu().numpy().copy()


def recording(lib, log):
    """Hooks that log what is packed and unpacked, and keep only a host copy in the graph."""
    def pack(tensor):
        log.append(("pack", tuple(tensor.shape)))
        return to_host(tensor), tensor.device

    def unpack(packed):
        array, device = packed
        log.append(("unpack", array.shape))
        return lib.tensor(array, device=device)

    return (saved_tensors_hooks if lib is minigrad else torch.autograd.graph.saved_tensors_hooks)(pack, unpack)


def test_every_saved_tensor_goes_through_pack_and_unpack_as_in_torch():
    logs = {}
    for lib in (minigrad, torch):
        x = lib.tensor([0.5, -1.0], requires_grad=True)
        w = lib.tensor([2.0, 3.0], requires_grad=True)
        log = logs[lib] = []
        with recording(lib, log):
            loss = (x.exp() * w).sum()  # exp saves its output, mul both of its inputs
        assert [entry[0] for entry in log] == ["pack"] * 3
        loss.backward()
        np.testing.assert_allclose(x.grad.numpy(), np.exp([0.5, -1.0]) * [2.0, 3.0], rtol=1e-6)
    assert sorted(logs[minigrad]) == sorted(logs[torch]) == sorted([("pack", (2,))] * 3 + [("unpack", (2,))] * 3)


def test_the_graph_keeps_only_what_pack_returned():
    kept = {}

    def pack(tensor):
        key = len(kept)
        kept[key] = to_host(tensor)
        return key

    x = minigrad.tensor([1.0, 2.0], requires_grad=True)
    with saved_tensors_hooks(pack, lambda key: minigrad.tensor(kept[key])):
        y = x.tanh()
    node = y.grad_fn
    assert [item.value for item in node._saved] == [0] and node._output is None  # no array of its own
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 1 - np.tanh([1.0, 2.0]) ** 2, rtol=1e-6)


def small_model_gradients(lib_hooks):
    """Gradients of a small model with a kernel for every layer (linear, layer_norm, dropout, cross_entropy)."""
    minigrad.manual_seed(3)
    rng = np.random.default_rng(4)
    w1, w2 = (minigrad.tensor(rng.standard_normal(shape), requires_grad=True) for shape in ((6, 4), (5, 6)))
    gamma = minigrad.ones(6, dtype=minigrad.float64, requires_grad=True)
    x = minigrad.tensor(rng.standard_normal((3, 4)))
    target = minigrad.tensor([1, 4, 0])
    with lib_hooks:
        h = F.dropout(F.gelu(F.layer_norm(F.linear(x, w1), (6,), gamma)), 0.2)
        loss = F.cross_entropy(F.linear(h, w2), target, label_smoothing=0.1)
    loss.backward()
    return [t.grad.numpy() for t in (w1, w2, gamma)]


class nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_gradients_are_unchanged_on_both_paths(both_paths):
    log = []
    hooked = small_model_gradients(recording(minigrad, log))
    plain = small_model_gradients(nothing())
    packs, unpacks = [e for e in log if e[0] == "pack"], [e for e in log if e[0] == "unpack"]
    assert len(packs) >= 8 and len(packs) == len(unpacks)  # every saved tensor read back once
    for a, b in zip(hooked, plain):
        np.testing.assert_array_equal(a, b)


def test_create_graph_differentiates_through_unpacked_tensors_as_torch():
    results = []
    for lib in (minigrad, torch):
        x = lib.tensor([0.3, -0.8], dtype=lib.float64, requires_grad=True)
        with recording(lib, []):
            y = (x.tanh() * x * x).sum()
        grad = minigrad.grad if lib is minigrad else torch.autograd.grad
        (g,) = grad(y, x, create_graph=True)  # the saved leaf x must still lead to x
        (gg,) = grad(g.sum(), x)
        results.append((to_host(g), to_host(gg)))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-12)


def test_the_innermost_hooks_apply_and_only_inside_the_block():
    outer, inner = [], []
    x = minigrad.tensor([1.0, 2.0], requires_grad=True)
    with saved_tensors_hooks(lambda t: (outer.append(1), t)[1], lambda t: t):
        a = x.exp()
        with saved_tensors_hooks(lambda t: (inner.append(1), t)[1], lambda t: t):
            b = a.tanh()
    c = b.sigmoid()
    assert outer == [1] and inner == [1]
    assert a.grad_fn._unpack_hook is not None and c.grad_fn._unpack_hook is None
    c.sum().backward()


def test_an_in_place_write_after_packing_is_still_caught():
    x = minigrad.tensor([1.0, 2.0], requires_grad=True)
    h = x * 1
    with saved_tensors_hooks(lambda t: t.detach(), lambda t: t):
        y = h * h
    with minigrad.no_grad():
        h.add_(1)
    with pytest.raises(RuntimeError, match="modified in place"):
        y.sum().backward()


def test_unpack_must_return_a_tensor():
    x = minigrad.tensor([1.0], requires_grad=True)
    with saved_tensors_hooks(to_host, lambda array: array):
        y = x.exp()
    with pytest.raises(TypeError, match="unpack_hook returned a ndarray"):
        y.sum().backward()


def test_torch_style_functions_save_through_the_hooks_too():
    class ExpAndSquare(Function):
        @staticmethod
        def forward(ctx, x):
            e, s = x.exp(), x * x
            ctx.save_for_backward(x, e)  # an input, and one output of two
            return s, e

        @staticmethod
        def backward(ctx, grad_s, grad_e):
            x, e = ctx.saved_tensors
            return grad_s * 2 * x + grad_e * e

    log = []
    x = minigrad.tensor([0.3, -0.7], dtype=minigrad.float64, requires_grad=True)
    with recording(minigrad, log):
        s, e = ExpAndSquare.apply(x)
    (g,) = minigrad.grad(s.sum() + e.sum(), x, create_graph=True)
    (gg,) = minigrad.grad(g.sum(), x)
    # unpacked twice: the second derivative runs the node's backward again (through the saved output e)
    assert [entry[0] for entry in log] == ["pack", "pack"] + ["unpack", "unpack"] * 2
    values = np.array([0.3, -0.7])
    np.testing.assert_allclose(g.detach().numpy(), 2 * values + np.exp(values), rtol=1e-12)
    np.testing.assert_allclose(gg.numpy(), 2 + np.exp(values), rtol=1e-12)


@pytest.mark.parametrize("device", device_params())
def test_saving_on_the_host_and_coming_back_to_the_device(device):
    """What torch.autograd.graph.save_on_cpu does: pack moves each saved tensor to the host."""
    x = minigrad.randn(3, 4, device=device, requires_grad=True)
    w = minigrad.randn(2, 4, device=device, requires_grad=True)
    with saved_tensors_hooks(lambda t: (t.device, t.detach().cpu()), lambda packed: packed[1].to(packed[0])):
        loss = (F.linear(x, w).tanh() ** 2).sum()
    loss.backward()
    grads = [x.grad.numpy(), w.grad.numpy()]
    x.grad = w.grad = None
    (F.linear(x, w).tanh() ** 2).sum().backward()
    np.testing.assert_allclose(grads[0], x.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(grads[1], w.grad.numpy(), rtol=1e-6)
