"""Hooks with PyTorch's names and semantics: Tensor.register_hook on leaves and non-leaves, and
nn.Module's forward pre-hooks, forward hooks and full backward hooks; orders and replaced values
are compared with torch's."""
import numpy as np
import pytest

import minigrad
import minigrad.functional as F
import nn

torch = pytest.importorskip("torch")


def values(t):
    return None if t is None else np.asarray(t.detach().numpy() if hasattr(t, "detach") else t).tolist()


def both(values_list, requires_grad=True):
    """The same leaf in minigrad and in torch (float64)."""
    array = np.asarray(values_list, dtype=np.float64)
    return (minigrad.tensor(array, requires_grad=requires_grad),
            torch.tensor(array, requires_grad=requires_grad))


# -- Tensor.register_hook ------------------------------------------------------------------------
def hooked_square_sum(lib, x, calls):
    """y = 2x with two hooks (the first replaces the gradient) and retain_grad; a hook on the leaf x."""
    y = x * 2
    y.retain_grad()
    y.register_hook(lambda g: (calls.append(("y first", values(g))), g * 10)[1])
    y.register_hook(lambda g: calls.append(("y second", values(g))))  # returns None: keeps the gradient
    x.register_hook(lambda g: (calls.append(("x", values(g))), g + 1)[1])
    (y * y).sum().backward()
    return y


def test_tensor_hooks_run_in_order_replace_the_gradient_and_retain_grad_sees_the_result():
    (x, tx), calls, torch_calls = both([1.0, 2.0]), [], []
    y, ty = hooked_square_sum(minigrad, x, calls), hooked_square_sum(torch, tx, torch_calls)
    assert calls == torch_calls == [("y first", [4.0, 8.0]), ("y second", [40.0, 80.0]), ("x", [80.0, 160.0])]
    assert values(y.grad) == values(ty.grad) == [40.0, 80.0]  # retain_grad runs after the hooks
    assert values(x.grad) == values(tx.grad) == [81.0, 161.0]  # the leaf's hook result is what accumulates


def test_a_leaf_hook_runs_once_on_the_gradient_summed_over_the_pass():
    for lib, (x, _) in ((minigrad, both([1.0, 2.0])), (torch, both([1.0, 2.0])[::-1])):
        seen = []
        x.register_hook(lambda g: seen.append(values(g)))
        (x * 2 + x * 3).sum().backward()
        assert seen == [[5.0, 5.0]], lib.__name__


def test_grad_returns_hooked_gradients_of_leaves_and_non_leaves():
    for lib in (minigrad, torch):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        y = x * 2
        y.register_hook(lambda g: g * 10)
        (gy,) = (minigrad.grad if lib is minigrad else torch.autograd.grad)((y * 3).sum(), y)
        x.register_hook(lambda g: g * 10)
        (gx,) = (minigrad.grad if lib is minigrad else torch.autograd.grad)((x * 3).sum(), x)
        assert values(gy) == values(gx) == [30.0, 30.0], lib.__name__


def test_a_removed_hook_no_longer_runs_and_a_handle_works_as_a_context_manager():
    x = minigrad.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    calls = []
    handle = y.register_hook(lambda g: calls.append("y"))
    with x.register_hook(lambda g: calls.append("x")):
        y.sum().backward(retain_graph=True)
    assert calls == ["y", "x"]
    handle.remove()
    handle.remove()  # twice is harmless, as in torch
    y.sum().backward()
    assert calls == ["y", "x"]
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 6.0])


def test_hooks_need_a_tensor_that_requires_grad_and_must_keep_the_shape():
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        minigrad.ones(2).register_hook(lambda g: g)
    x = minigrad.ones(2, requires_grad=True)
    y = x * 2
    y.register_hook(lambda g: g.sum())
    with pytest.raises(RuntimeError, match="shape"):
        y.sum().backward()


def test_hooks_on_both_paths_see_the_same_gradients(both_paths):
    """A hook on the output of a kernel (Linear, whose array backward runs outside reference mode) and
    on a leaf that a kernel feeds: the hooked values and the replaced gradient are those of the reference."""
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(shape) for shape in ((4, 3), (2, 3), (2,))]
    results = {}
    for lib in (minigrad, torch):
        x, w, b = (lib.tensor(a, requires_grad=True) for a in arrays)
        h = (F if lib is minigrad else torch.nn.functional).linear(x, w, b)
        seen = []
        h.register_hook(lambda g: (seen.append(values(g)), g * 2)[1])
        w.register_hook(lambda g: (seen.append(values(g)), g - 1)[1])
        (h.tanh() ** 2).sum().backward()
        results[lib] = seen + [values(x.grad), values(w.grad), values(b.grad)]
    assert len(results[minigrad]) == len(results[torch]) == 5
    for ours, theirs in zip(results[minigrad], results[torch]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_a_hooked_gradient_is_differentiated_under_create_graph():
    grads = {}
    for lib in (minigrad, torch):
        x = lib.tensor([0.5, -1.5], dtype=lib.float64, requires_grad=True)
        y = x ** 3
        y.register_hook(lambda g: g * y)  # the replacement itself depends on x
        grad = minigrad.grad if lib is minigrad else torch.autograd.grad
        (g,) = grad(y.sum(), x, create_graph=True)
        (gg,) = grad(g.sum(), x)
        grads[lib] = values(g), values(gg)
    np.testing.assert_allclose(grads[minigrad], grads[torch], rtol=1e-12)


def test_hooks_on_the_outputs_of_a_function_with_several_outputs():
    class SplitScale(minigrad.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2, x * 3

        @staticmethod
        def backward(ctx, g2, g3):
            return g2 * 2 + g3 * 3

    x = minigrad.tensor([1.0, 2.0], requires_grad=True)
    a, b = SplitScale.apply(x)
    a.register_hook(lambda g: g * 100)
    (a.sum() + b.sum()).backward()
    np.testing.assert_array_equal(x.grad.numpy(), [203.0, 203.0])
