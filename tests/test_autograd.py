"""The Tensor API, creation, dtype policy, grad modes, grad(), higher order and error messages."""
import numpy as np
import pytest

import minigrad
import minigrad.functional as F
from minigrad import Function, Tensor


# -- the Tensor API ---------------------------------------------------------------------------
def test_tensor_attributes():
    x = minigrad.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    assert isinstance(x.data, np.ndarray)
    assert x.grad is None and x.grad_fn is None and x.is_leaf and x.requires_grad
    assert x.dtype == minigrad.float32 and x.shape == (2, 3) and x.ndim == 2 and x.numel() == 6
    assert x.device == "cpu" and x.device.type == "cpu"
    y = x * 2
    assert not y.is_leaf and y.requires_grad and y.grad_fn is not None
    assert x.detach().requires_grad is False and x.detach().is_leaf
    assert (x * 2).sum().item() == 42.0 and isinstance(x.sum().item(), float)
    np.testing.assert_array_equal(x.detach().numpy(), [[1, 2, 3], [4, 5, 6]])
    assert x.to("cpu") is x
    z = minigrad.tensor([1.0]).requires_grad_()
    assert z.requires_grad


def test_repr_is_readable():
    assert repr(minigrad.tensor([1.0, 2.5])) == "tensor([1. , 2.5])"
    assert "requires_grad=True" in repr(minigrad.tensor([1.0], requires_grad=True))
    assert "grad_fn=<Mul>" in repr(minigrad.tensor([1.0], requires_grad=True) * 2)
    assert "dtype=float64" in repr(minigrad.tensor([1.0], dtype=minigrad.float64))
    assert repr(minigrad.tensor([1, 2])) == "tensor([1, 2])"


def test_numpy_on_a_tensor_that_requires_grad_asks_for_detach():
    with pytest.raises(RuntimeError, match="detach"):
        minigrad.tensor([1.0], requires_grad=True).numpy()


def test_tensor_copies_its_data():
    array = np.array([1.0, 2.0], dtype=np.float32)
    x = minigrad.tensor(array)
    array[0] = 100.0
    assert x[0].item() == 1.0


# -- creation ---------------------------------------------------------------------------------
def test_creation_functions():
    assert minigrad.zeros(2, 3).shape == (2, 3) and minigrad.zeros((2, 3)).dtype == minigrad.float32
    assert minigrad.ones(4).numpy().tolist() == [1.0] * 4
    assert minigrad.full((2,), 7.0).numpy().tolist() == [7.0, 7.0]
    x = minigrad.tensor([[1.0, 2.0]], dtype=minigrad.float64)
    assert minigrad.zeros_like(x).dtype == minigrad.float64 and minigrad.ones_like(x).shape == (1, 2)
    assert minigrad.arange(5).numpy().tolist() == [0, 1, 2, 3, 4] and minigrad.arange(5).dtype == minigrad.int64
    assert minigrad.arange(0, 1, 0.25).dtype == minigrad.float32
    np.testing.assert_array_equal(minigrad.eye(3).numpy(), np.eye(3))
    assert minigrad.rand(3, 2).shape == (3, 2) and minigrad.randn(2, dtype=minigrad.float64).dtype == np.float64
    r = minigrad.randint(0, 5, (100,))
    assert r.dtype == minigrad.int64 and 0 <= r.numpy().min() and r.numpy().max() < 5
    assert minigrad.zeros(2, requires_grad=True).requires_grad


@pytest.mark.parametrize("args", [(10, (3,)), (10, [3, 2]), (5, 10, (4,)), (5, 10, [4])],
                         ids=["high-size", "high-size-list", "low-high-size", "low-high-size-list"])
def test_randint_takes_torchs_call_forms(args):
    low, high = (0, args[0]) if len(args) == 2 else args[:2]
    r = minigrad.randint(*args)
    assert r.shape == tuple(args[-1]) and r.dtype == minigrad.int64
    assert low <= r.numpy().min() and r.numpy().max() < high


def test_manual_seed_makes_every_draw_reproducible():
    def draws():
        minigrad.manual_seed(42)
        mask_input = minigrad.ones(50)
        return [minigrad.rand(5).numpy(), minigrad.randn(5).numpy(), minigrad.randint(0, 100, (5,)).numpy(),
                F.dropout(mask_input, 0.5).numpy()]

    first, second = draws(), draws()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    minigrad.manual_seed(43)
    assert not np.array_equal(minigrad.rand(5).numpy(), first[0])


# -- dtype policy -----------------------------------------------------------------------------
def test_dtype_policy():
    assert minigrad.tensor(1.5).dtype == minigrad.float32
    assert minigrad.tensor([1, 2]).dtype == minigrad.int64
    assert minigrad.tensor(np.zeros(2)).dtype == minigrad.float64  # float64 arrays stay float64
    x32 = minigrad.tensor([1.0, 2.0], requires_grad=True)
    assert (x32 * 2.5 + 1).dtype == minigrad.float32  # Python scalars do not upcast
    assert (x32 * np.float64(2.5)).dtype == minigrad.float32
    x64 = minigrad.tensor([1.0], dtype=minigrad.float64, requires_grad=True)
    assert (x64 * 2).exp().dtype == minigrad.float64


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(RuntimeError, match="floating"):
        minigrad.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match="floating"):
        minigrad.arange(3).requires_grad_()


# -- backward ---------------------------------------------------------------------------------
def test_backward_on_non_scalar_needs_a_gradient():
    x = minigrad.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2).backward()
    (x * 2).backward(minigrad.tensor([1.0, 10.0]))
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 20.0])


def test_backward_on_a_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        minigrad.tensor(1.0).backward()


def test_retain_grad_keeps_the_gradient_of_a_non_leaf():
    x = minigrad.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    y.retain_grad()
    z = y * y
    z.sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), [6.0, 12.0])  # dz/dy = 2y
    np.testing.assert_allclose(x.grad.numpy(), [18.0, 36.0])
    w = x * 2
    w.sum().backward()
    assert w.grad is None  # not retained: non-leaves do not keep .grad


def test_backward_inputs_limits_which_leaves_get_grad():
    a = minigrad.tensor([1.0, 2.0], requires_grad=True)
    b = minigrad.tensor([3.0, 4.0], requires_grad=True)
    (a * b).sum().backward(inputs=[a])
    np.testing.assert_array_equal(a.grad.numpy(), [3.0, 4.0])
    assert b.grad is None
    (a * b).sum().backward(inputs=a)  # accumulates, like backward() always does
    np.testing.assert_array_equal(a.grad.numpy(), [6.0, 8.0])


def test_gradient_of_a_float_output_used_by_backward_gradient_argument():
    x = minigrad.tensor([[1.0, 2.0]], requires_grad=True)
    y = x.exp()
    y.backward(np.array([[1.0, 0.5]]))  # a NumPy gradient is accepted and cast to the output's dtype
    assert x.grad.dtype == minigrad.float32
    np.testing.assert_allclose(x.grad.numpy(), np.exp([[1.0, 2.0]]) * [[1.0, 0.5]], rtol=1e-6)


# -- grad mode --------------------------------------------------------------------------------
def test_no_grad_as_context_manager_and_decorator_and_enable_grad():
    x = minigrad.tensor([1.0], requires_grad=True)
    with minigrad.no_grad():
        assert not (x * 2).requires_grad
        assert not minigrad.is_grad_enabled()
        with minigrad.enable_grad():
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad
    assert minigrad.is_grad_enabled()

    @minigrad.no_grad()
    def infer(t):
        return t * 2

    assert not infer(x).requires_grad and minigrad.is_grad_enabled()


def test_grad_modes_as_decorators_without_parentheses():
    """torch 2 accepts `@torch.no_grad` as well as `@torch.no_grad()`; so do we."""
    x = minigrad.tensor([1.0], requires_grad=True)

    @minigrad.no_grad
    def infer(t):
        """Doubles t."""
        return t * 2

    @minigrad.enable_grad
    def train_step(t):
        return t * 2

    assert infer.__name__ == "infer" and infer.__doc__ == "Doubles t."
    assert not infer(x).requires_grad and minigrad.is_grad_enabled()
    with minigrad.no_grad():
        assert train_step(x).requires_grad and not minigrad.is_grad_enabled()


def test_no_grad_restores_the_mode_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with minigrad.no_grad():
            1 / 0
    assert minigrad.is_grad_enabled()


# -- minigrad.grad ---------------------------------------------------------------------------
def test_grad_function():
    x = minigrad.tensor([1.0, 2.0], requires_grad=True)
    y = minigrad.tensor([3.0], requires_grad=True)
    out = (x * x).sum() * y
    gx, gy = minigrad.grad(out, [x, y])
    np.testing.assert_allclose(gx.numpy(), [6.0, 12.0])
    np.testing.assert_allclose(gy.numpy(), [5.0])
    assert x.grad is None and y.grad is None  # grad() does not touch .grad


def test_grad_with_grad_outputs_and_allow_unused():
    x = minigrad.tensor([1.0, 2.0], requires_grad=True)
    unused = minigrad.tensor([1.0], requires_grad=True)
    y = x * 2
    (gx,) = minigrad.grad(y, x, grad_outputs=minigrad.tensor([1.0, -1.0]), retain_graph=True)
    np.testing.assert_allclose(gx.numpy(), [2.0, -2.0])
    with pytest.raises(RuntimeError, match="not used"):
        minigrad.grad(y.sum(), [x, unused], retain_graph=True)
    gx, gu = minigrad.grad(y.sum(), [x, unused], allow_unused=True)
    assert gu is None


def test_grad_with_respect_to_an_intermediate_tensor():
    x = minigrad.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    out = (h * h).sum()
    (gh,) = minigrad.grad(out, h)
    np.testing.assert_allclose(gh.numpy(), [6.0, 12.0])


# -- higher order -----------------------------------------------------------------------------
def test_create_graph_gives_second_and_third_derivatives():
    x = minigrad.tensor(0.7, dtype=minigrad.float64, requires_grad=True)
    y = x.tanh()
    (d1,) = minigrad.grad(y, x, create_graph=True)
    (d2,) = minigrad.grad(d1, x, create_graph=True)
    (d3,) = minigrad.grad(d2, x)
    t = np.tanh(0.7)
    np.testing.assert_allclose(d1.item(), 1 - t ** 2)
    np.testing.assert_allclose(d2.item(), -2 * t * (1 - t ** 2))
    np.testing.assert_allclose(d3.item(), -2 * (1 - t ** 2) ** 2 + 4 * t ** 2 * (1 - t ** 2))


def test_backward_with_create_graph_records_the_gradient():
    x = minigrad.tensor([1.0, 2.0], dtype=minigrad.float64, requires_grad=True)
    (x ** 3).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    grad_of_grad = minigrad.grad(x.grad.sum(), x)[0]
    np.testing.assert_allclose(grad_of_grad.numpy(), [6.0, 12.0])  # d/dx 3x^2


def test_backward_with_inputs_and_create_graph_keeps_the_graph():
    """retain_graph defaults to create_graph (as in PyTorch), also when `inputs` is given."""
    x = minigrad.tensor([1.0, 2.0], dtype=minigrad.float64, requires_grad=True)
    y = (x ** 3).sum()
    y.backward(inputs=[x], create_graph=True)
    np.testing.assert_allclose(x.grad.detach().numpy(), [3.0, 12.0])
    x.grad.sum().backward(inputs=[x])  # through the gradient's graph, which reuses the first graph's saved x
    np.testing.assert_allclose(x.grad.detach().numpy(), [3.0 + 6.0, 12.0 + 12.0])
    y.backward(inputs=[x])  # and the first graph itself is still there
    np.testing.assert_allclose(x.grad.detach().numpy(), [3.0 + 6.0 + 3.0, 12.0 + 12.0 + 12.0])


def test_backward_create_graph_with_explicit_retain_graph_false_frees_the_graph():
    x = minigrad.tensor([1.0, 2.0], dtype=minigrad.float64, requires_grad=True)
    y = (x ** 3).sum()
    y.backward(create_graph=True, retain_graph=False)
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


# -- gradcheck itself -------------------------------------------------------------------------
class WrongSquare(Function):
    """x**2 with a deliberately wrong backward (3x instead of 2x)."""

    def forward(self, x):
        self.save_for_backward(x)
        return x * x

    def backward(self, grad):
        (x,) = self.saved_tensors
        return grad * 3 * x


class WrongSecondOrder(Function):
    """x**3 whose backward is right in value but cut from the graph, so second derivatives are wrong."""

    def forward(self, x):
        self.save_for_backward(x)
        return x ** 3

    def backward(self, grad):
        (x,) = self.saved_tensors
        return grad * Tensor(3 * x.detach().numpy() ** 2)


def test_gradcheck_catches_a_wrong_backward_and_names_the_culprit():
    x = minigrad.tensor([[0.5, -1.0], [2.0, 1.5]], dtype=minigrad.float64, requires_grad=True)
    with pytest.raises(minigrad.GradcheckError) as info:
        minigrad.gradcheck(WrongSquare.apply, (x,))
    message = str(info.value)
    assert "input 0" in message and "element (0, 0)" in message
    assert "analytic" in message and "numeric" in message
    assert minigrad.gradcheck(WrongSquare.apply, (x,), raise_exception=False) is False


def test_gradgradcheck_catches_a_backward_that_is_not_differentiable():
    x = minigrad.tensor([0.5, -1.0], dtype=minigrad.float64, requires_grad=True)
    assert minigrad.gradcheck(WrongSecondOrder.apply, (x,))
    with pytest.raises(minigrad.GradcheckError, match="analytic"):
        minigrad.gradgradcheck(WrongSecondOrder.apply, (x,))


def test_gradcheck_refuses_float32_inputs():
    with pytest.raises(ValueError, match="float64"):
        minigrad.gradcheck(lambda x: x * 2, (minigrad.tensor([1.0], requires_grad=True),))


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fn, op", [
    (lambda a, b: a + b, "Add"),
    (lambda a, b: a * b, "Mul"),
    (lambda a, b: a @ b, "matmul"),
    (lambda a, b: minigrad.cat([a, b], dim=0), "cat"),
    (lambda a, b: minigrad.stack([a, b]), "stack"),
])
def test_shape_mismatch_names_the_op_and_both_shapes(fn, op):
    a, b = minigrad.ones(2, 3), minigrad.ones(4, 5)
    with pytest.raises(ValueError) as info:
        fn(a, b)
    message = str(info.value)
    assert op in message and "(2, 3)" in message and "(4, 5)" in message


def test_second_backward_without_retain_graph_raises_a_clear_error():
    x = minigrad.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = minigrad.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0])


def test_in_place_write_into_a_saved_input_is_detected_at_backward():
    w = minigrad.tensor([1.0, 2.0], requires_grad=True)
    x = minigrad.tensor([3.0, 4.0])
    y = (w * x).sum()  # Mul saves x for w's gradient
    assert x._version == 0
    x.add_(1.0)
    assert x._version == 1
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()


def test_in_place_write_into_a_saved_output_is_detected_at_backward():
    w = minigrad.tensor([1.0, 2.0], requires_grad=True)
    y = w.exp()  # Exp saves its output
    loss = (y * 1.0).sum()
    with minigrad.no_grad():
        y.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


def test_in_place_write_into_a_saved_leaf_under_no_grad_is_detected():
    w = minigrad.tensor([1.0, 2.0], requires_grad=True)
    loss = (w * w).sum()
    with minigrad.no_grad():
        w.sub_(0.1)  # an optimizer step taken before backward
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


def test_in_place_on_a_tensor_that_requires_grad_is_refused_with_grad_on():
    w = minigrad.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        w.add_(1.0)


def test_variance_of_one_element_is_nan_not_a_crash():
    assert np.isnan(minigrad.tensor([2.0]).var().item())
    assert minigrad.tensor([2.0]).var(correction=0).item() == 0.0


def test_setitem_bumps_the_version():
    x = minigrad.zeros(3)
    x[1] = 5.0
    assert x._version == 1 and x.numpy().tolist() == [0.0, 5.0, 0.0]


# Tensors that share memory share one version counter (pitfall #8): a write through any of them is seen.
@pytest.mark.parametrize("write", [
    lambda a: a.detach().zero_(),
    lambda a: a[0:2].zero_(),
    lambda a: a[1].fill_(7.0),
    lambda a: a[None, ..., 1:].mul_(3.0),
    lambda a: a.reshape(2, 2).add_(10.0),
    lambda a: a.reshape(2, 2).T.sub_(1.0),
    lambda a: a.reshape(2, 2).permute(1, 0)[0].add_(1.0),
    lambda a: a.unsqueeze(0).squeeze(0).add_(1.0),
    lambda a: a.flatten().add_(1.0),
    lambda a: a.split(2)[1].add_(1.0),
], ids=["detach", "slice", "int-index", "none-ellipsis", "reshape", "transpose-of-reshape", "permute-index",
        "unsqueeze-squeeze", "flatten", "split"])
def test_in_place_write_through_a_view_of_a_saved_tensor_is_detected(write):
    a = minigrad.tensor([1.0, 2.0, 3.0, 4.0])
    w = minigrad.ones(4, requires_grad=True)
    loss = (w * a).sum()  # Mul saves a for w's gradient
    write(a)
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


def test_in_place_write_through_detach_of_a_leaf_that_requires_grad_is_detected():
    x = minigrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (x * x).sum()
    x.detach().zero_()
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()


def test_in_place_write_to_the_base_is_seen_by_a_saved_view():
    a = minigrad.tensor([1.0, 2.0, 3.0])
    w = minigrad.ones(2, 3, requires_grad=True)
    loss = (w * a.expand(2, 3)).sum()  # Mul saves the expanded view, not `a`
    a.add_(1.0)
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


def test_in_place_write_through_a_view_of_a_saved_output_is_detected_even_after_the_output_is_gone():
    w = minigrad.tensor([1.0, 2.0], requires_grad=True)
    y = w.exp()  # Exp saves its output
    loss = (y * 1.0).sum()
    view = y[0:1]
    del y
    with minigrad.no_grad():
        view.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


def test_state_dict_entries_share_the_parameters_version():
    nn = pytest.importorskip("nn")
    layer = nn.Linear(2, 1)
    loss = layer(minigrad.ones(1, 2)).sum() * layer.weight.sum()  # saves the weight for the bias-free branch
    layer.state_dict()["weight"].zero_()
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


def test_copies_do_not_share_the_version():
    a = minigrad.tensor([[1.0, 2.0], [3.0, 4.0]])
    w = minigrad.ones(2, 2, requires_grad=True)
    loss = (w * a).sum()
    a[minigrad.tensor([0, 1])].add_(1.0)  # integer-array indexing copies
    a.T.reshape(4).add_(1.0)  # a reshape that cannot be a view copies
    a.clone().add_(1.0)
    loss.backward()
    np.testing.assert_array_equal(w.grad.numpy(), a.numpy())
    assert a._version == 0


def test_mixing_devices_is_refused_before_any_host_copy():
    class FakeBackend:
        device = "fake"

    a = minigrad.ones(2)
    b = minigrad.ones(2)
    b._backend = FakeBackend()
    with pytest.raises(RuntimeError, match="device"):
        a + b


# -- user-defined ops (examples/custom_function.py) -------------------------------------------
def _load_example():
    import pathlib
    import runpy

    path = pathlib.Path(__file__).resolve().parent.parent / "examples" / "custom_function.py"
    return runpy.run_path(str(path))


def test_custom_function_example_runs_and_gradchecks(capsys):
    example = _load_example()
    example["main"]()
    assert "gradcheck and gradgradcheck passed" in capsys.readouterr().out
    softplus = example["softplus"]
    x = minigrad.tensor(np.linspace(-3, 3, 7), dtype=minigrad.float64, requires_grad=True)
    assert minigrad.gradcheck(lambda t: softplus(t, 1.5), (x,))
    assert minigrad.gradgradcheck(softplus, (x,))
    big = minigrad.tensor([-1000.0, 1000.0], requires_grad=True)
    y = softplus(big)
    np.testing.assert_allclose(y.detach().numpy(), [0.0, 1000.0])
    y.sum().backward()
    np.testing.assert_allclose(big.grad.numpy(), [0.0, 1.0])
    np.testing.assert_allclose(softplus(minigrad.tensor([0.3])).numpy(), np.log1p(np.exp([0.3])), rtol=1e-6)


def test_numpy_array_of_a_tensor_honours_copy():
    """np.array copies (later writes to the tensor do not show), np.asarray shares, copy=False refuses a cast."""
    t = minigrad.tensor([1.0, 2.0, 3.0])
    copied = np.array(t)
    shared = np.asarray(t)
    explicit = np.array(t, copy=True)
    t.add_(10.0)
    np.testing.assert_array_equal(copied, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(explicit, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(shared, [11.0, 12.0, 13.0])
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    assert np.shares_memory(np.array(t, copy=False), t.data)
    with pytest.raises(ValueError, match="copy"):
        np.array(t, dtype=np.float64, copy=False)
