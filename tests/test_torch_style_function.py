"""Custom Functions written the PyTorch way (staticmethods with a ctx, MyOp.apply) beside the project's
own style: the ctx API, several outputs, the checks on what backward returns, and torch's values."""
import pathlib
import runpy

import numpy as np
import pytest

import minigrad
import minigrad.functional as F
from fake_gpu import device_params
from minigrad.autograd import Function

torch = pytest.importorskip("torch")


def make_scaled_exp(base):
    """y = exp(x) * k, written the torch way against either library's Function base."""

    class ScaledExp(base):
        @staticmethod
        def forward(ctx, x, k):
            ctx.seen_needs_input_grad = ctx.needs_input_grad
            y = x.exp() * k
            ctx.save_for_backward(y)  # an output
            ctx.k = k
            return y

        @staticmethod
        def backward(ctx, grad):
            (y,) = ctx.saved_tensors
            return grad * y, None

    return ScaledExp


ScaledExp = make_scaled_exp(Function)
TorchScaledExp = make_scaled_exp(torch.autograd.Function)


def test_values_gradients_and_node_name_as_torch():
    array = np.array([0.5, -1.0, 2.0])
    x, tx = minigrad.tensor(array, requires_grad=True), torch.tensor(array, requires_grad=True)
    y, ty = ScaledExp.apply(x, 3.0), TorchScaledExp.apply(tx, 3.0)
    assert type(y.grad_fn).__name__ == type(ty.grad_fn).__name__ == "ScaledExpBackward"
    (y * y).sum().backward()
    (ty * ty).sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)


def test_gradcheck_and_gradgradcheck_through_the_saved_output():
    x = minigrad.randn(2, 3, dtype=minigrad.float64, requires_grad=True)
    assert minigrad.gradcheck(lambda t: ScaledExp.apply(t, 0.5), (x,))
    assert minigrad.gradgradcheck(lambda t: ScaledExp.apply(t, 0.5), (x,))


def test_needs_input_grad_is_seen_in_forward_as_torch():
    for lib, op in ((minigrad, ScaledExp), (torch, TorchScaledExp)):
        seen = []
        for requires_grad, no_grad in ((True, False), (True, True), (False, False)):
            x = lib.ones(2, requires_grad=requires_grad)
            if no_grad:
                with lib.no_grad():
                    out = op.apply(x, 2.0)
            else:
                out = op.apply(x, 2.0)
            seen.append(out.grad_fn.seen_needs_input_grad if out.grad_fn is not None else None)
        # torch computes needs_input_grad from requires_grad alone; without a node there is no ctx to read
        assert seen == [(True, False), None, None], lib.__name__


def test_without_a_gradient_to_record_apply_returns_what_forward_returned():
    class Identity(Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, grad):
            return grad

    x = minigrad.ones(2)
    assert Identity.apply(x) is x
    leaf = minigrad.ones(2, requires_grad=True)
    y = Identity.apply(leaf)
    assert y is not leaf and y.grad_fn is not None and y.data is leaf.data
    with minigrad.no_grad():
        y.add_(1)  # shares memory and version counter with the input, as a view does in torch
    assert leaf._version == 1
    np.testing.assert_array_equal(leaf.detach().numpy(), [2.0, 2.0])


def test_keyword_arguments_are_bound_to_forward_parameters():
    x = minigrad.tensor([1.0, 2.0], requires_grad=True)
    y = ScaledExp.apply(x, k=2.0)
    assert y.grad_fn.seen_needs_input_grad == (True, False)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp([1.0, 2.0]), rtol=1e-6)


def make_sort(base, lib):
    """Sorted values and the permutation: two outputs, the second marked non-differentiable."""

    class Sort(base):
        @staticmethod
        def forward(ctx, x):
            order = lib.tensor(np.argsort(x.detach().cpu().numpy(), kind="stable"), device=x.device)
            values = x[order]
            ctx.mark_non_differentiable(order)
            ctx.save_for_backward(order)
            return values, order, x * 3

        @staticmethod
        def backward(ctx, grad_values, grad_order, grad_tripled):
            ctx.grads_seen = [None if g is None else g.detach().cpu().numpy().tolist() for g in
                              (grad_values, grad_order, grad_tripled)]
            (order,) = ctx.saved_tensors
            grad = lib.zeros(grad_values.shape, dtype=grad_values.dtype, device=grad_values.device)
            grad[order] = grad_values
            return grad + 3 * grad_tripled

    return Sort


def test_several_outputs_non_differentiable_outputs_and_materialized_zeros_as_torch():
    array = np.array([3.0, 1.0, 2.0])
    results = []
    for lib, base in ((minigrad, Function), (torch, torch.autograd.Function)):
        sort = make_sort(base, lib)
        x = lib.tensor(array, requires_grad=True)
        values, order, tripled = sort.apply(x)
        assert values.requires_grad and tripled.requires_grad and not order.requires_grad
        assert order.grad_fn is None
        node = values.grad_fn if lib is torch else values.grad_fn.edges[0]  # minigrad: OutputOf -> the node
        values.sum().backward(retain_graph=True)  # only one output used: zeros for the others
        first = node.grads_seen, x.grad.numpy().tolist()
        x.grad = None
        (values * lib.tensor([1.0, 10.0, 100.0], dtype=x.dtype)).sum().backward(retain_graph=True)
        tripled.pow(2).sum().backward()
        results.append((first, node.grads_seen, x.grad.numpy().tolist(), values.detach().numpy().tolist()))
    assert results[0] == results[1]
    assert results[0][0][0] == [[1.0, 1.0, 1.0], [0, 0, 0], [0.0, 0.0, 0.0]]


def test_set_materialize_grads_false_passes_none_for_outputs_without_a_gradient():
    class Two(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.set_materialize_grads(False)
            return x * 1, x * 2

        @staticmethod
        def backward(ctx, a, b):
            ctx.seen = b
            return a if b is None else a + 2 * b

    x = minigrad.ones(2, requires_grad=True)
    a, _ = Two.apply(x)
    a.sum().backward()
    assert a.grad_fn.edges[0].seen is None
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])


def test_a_saved_output_of_several_is_rebuilt_into_the_graph_for_double_backward():
    """Output 1 is saved and its Tensor dropped before backward: it comes back as part of the graph,
    so the second derivative through it is right (compared with torch)."""
    results = []
    for lib, base in ((minigrad, Function), (torch, torch.autograd.Function)):
        class ExpAndSquare(base):
            @staticmethod
            def forward(ctx, x):
                e, s = x.exp(), x * x
                ctx.save_for_backward(x, e)
                return s, e

            @staticmethod
            def backward(ctx, grad_s, grad_e):
                x, e = ctx.saved_tensors
                return grad_s * 2 * x + grad_e * e

        x = lib.tensor([0.3, -0.7], dtype=lib.float64, requires_grad=True)
        s, e = ExpAndSquare.apply(x)
        loss = (s * 3).sum() + e.sum()
        del e
        grad = minigrad.grad if lib is minigrad else torch.autograd.grad
        (g,) = grad(loss, x, create_graph=True)
        (gg,) = grad(g.sum(), x)
        results.append((g.detach().numpy().tolist(), gg.numpy().tolist()))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-12)


def test_setup_context_style():
    class Scale(Function):
        @staticmethod
        def forward(x, k=2.0):
            return x * k

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.k = inputs[1]

        @staticmethod
        def backward(ctx, grad):
            return grad * ctx.k, None

    x = minigrad.ones(3, requires_grad=True)
    Scale.apply(x).sum().backward()  # the default k is bound, as torch does with setup_context
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 2.0])
    x.grad = None
    Scale.apply(x, k=5.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [5.0, 5.0, 5.0])


def test_in_place_write_into_a_saved_input_is_detected():
    class Square(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return 2 * x * grad

    x = minigrad.ones(2, requires_grad=True)
    h = x * 1
    y = Square.apply(h)
    with minigrad.no_grad():
        h.add_(1)
    with pytest.raises(RuntimeError, match="modified in place"):
        y.sum().backward()


def backward_returning(*grads, base=Function, name="Op"):
    """y = x * k (a torch-style Function of `base`) whose backward returns grads[i](grad), or grads[i] itself."""

    def forward(ctx, x, k):
        return x * k

    def backward(ctx, grad):
        return tuple(g(grad) if callable(g) else g for g in grads)

    return type(name, (base,), {"forward": staticmethod(forward), "backward": staticmethod(backward)})


@pytest.mark.parametrize("grads, message", [
    ((lambda g: g,), r"incorrect number of gradients \(expected 2, got 1\)"),
    ((lambda g: g, lambda g: g), "position 2, but the corresponding forward input was not a Tensor"),
    ((lambda g: g[:1], None), r"invalid gradient at index 0 - got \[1\] but expected shape compatible with \[3\]"),
])
def test_what_backward_returns_is_checked_with_torchs_messages(grads, message):
    x = minigrad.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=message):
        backward_returning(*grads).apply(x, 2.0).sum().backward()


def test_a_gradient_of_the_broadcast_shape_is_summed_down_as_torch():
    op = backward_returning(lambda g: g.reshape(1, 3) * minigrad.ones(2, 3), None, None)  # extra Nones are fine
    x = minigrad.ones(3, requires_grad=True)
    op.apply(x, 2.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 2.0])


def test_save_for_backward_takes_only_tensors():
    class Bad(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x, 3)
            return x * 1

    with pytest.raises(TypeError, match="only save Tensors"):
        Bad.apply(minigrad.ones(1, requires_grad=True))


def test_both_styles_in_one_graph_on_both_paths(both_paths):
    """A kernel (F.linear), the project-style Softplus of examples/custom_function.py and a torch-style
    op in one graph: the gradients are torch's, whichever backward the engine runs."""
    example = runpy.run_path(str(pathlib.Path(__file__).resolve().parent.parent / "examples" / "custom_function.py"))
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal(shape) for shape in ((4, 3), (2, 3), (2,))]
    grads = []
    for lib, op in ((minigrad, ScaledExp), (torch, TorchScaledExp)):
        x, w, b = (lib.tensor(a, requires_grad=True) for a in arrays)
        h = (F if lib is minigrad else torch.nn.functional).linear(x, w, b)
        h = example["softplus"](h, 2.0) if lib is minigrad else torch.nn.functional.softplus(h, beta=2.0)
        op.apply(h, 0.5).mean().backward()
        grads.append([t.grad.numpy() for t in (x, w, b)])
    for ours, theirs in zip(*grads):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10)


@pytest.mark.parametrize("device", device_params())
def test_on_every_device(device):
    sort = make_sort(Function, minigrad)
    x = minigrad.tensor([3.0, 1.0, 2.0], device=device, requires_grad=True)
    values, order, tripled = sort.apply(x)
    assert values.device == order.device == x.device
    values.sum().backward()  # the zeros materialized for the unused outputs live on the device too
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0, 1.0])


def test_torch_style_example_runs_and_gradchecks(capsys):
    example = runpy.run_path(str(pathlib.Path(__file__).resolve().parent.parent / "examples" /
                                 "torch_style_function.py"))
    example["main"]()
    out = capsys.readouterr().out
    assert "gradcheck and gradgradcheck passed" in out and "<SoftplusBackward>" in out
    x = minigrad.tensor(np.linspace(-3, 3, 7), requires_grad=True)
    y = example["Softplus"].apply(x, 1.5)
    np.testing.assert_allclose(y.detach().numpy(), np.log1p(np.exp(1.5 * np.linspace(-3, 3, 7))) / 1.5, rtol=1e-6)


def test_a_gradient_takes_its_inputs_dtype_as_torch():
    for lib, base in ((minigrad, Function), (torch, torch.autograd.Function)):
        op = backward_returning(lambda g: g.to(lib.float32), None, base=base)
        x = lib.ones(3, dtype=lib.float64, requires_grad=True)
        op.apply(x, 2.0).sum().backward()
        assert x.grad.dtype == lib.float64, lib.__name__
