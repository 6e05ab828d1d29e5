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


# -- nn.Module's forward pre-hooks and forward hooks ------------------------------------------------
def forward_hook_calls(base, lib):
    calls = []

    class Scale(base):
        def forward(self, x, scale=1.0):
            calls.append(("forward", values(x), scale))
            return x * scale

    module = Scale()
    first = module.register_forward_pre_hook(lambda m, args: (calls.append(("pre", len(args))), args[0] + 1)[1])
    module.register_forward_pre_hook(
        lambda m, args, kwargs: (calls.append(("pre kw", dict(kwargs))), (args, {"scale": 10.0}))[1], with_kwargs=True)
    module.register_forward_pre_hook(lambda m, args: calls.append("prepended"), prepend=True)
    module.register_forward_hook(
        lambda m, args, out: (calls.append(("hook", values(args[0]), values(out))), out * 2)[1])
    module.register_forward_hook(lambda m, args, kwargs, out: calls.append(("hook kw", dict(kwargs), values(out))),
                                 with_kwargs=True)
    out = module(lib.tensor([1.0, 2.0]), scale=3.0)
    first.remove()
    again = module(lib.tensor([1.0, 2.0]))
    return calls, values(out), values(again)


def test_forward_pre_hooks_and_forward_hooks_replace_args_and_outputs_as_torch():
    ours, theirs = forward_hook_calls(nn.Module, minigrad), forward_hook_calls(torch.nn.Module, torch)
    assert ours == theirs
    calls, out, again = ours
    assert calls[:6] == ["prepended", ("pre", 1), ("pre kw", {"scale": 3.0}), ("forward", [2.0, 3.0], 10.0),
                         ("hook", [2.0, 3.0], [20.0, 30.0]), ("hook kw", {"scale": 10.0}, [40.0, 60.0])]
    assert out == [40.0, 60.0] and again == [20.0, 40.0]


def test_removing_every_hook_empties_the_tables():
    layer = nn.Linear(2, 2)
    handles = [layer.register_forward_pre_hook(lambda m, a: None), layer.register_forward_hook(lambda m, a, o: None),
               layer.register_full_backward_hook(lambda m, gi, go: None),
               layer.register_forward_hook(lambda m, a, k, o: None, with_kwargs=True)]
    for handle in handles:
        handle.remove()
    assert not (layer._forward_pre_hooks or layer._forward_hooks or layer._backward_hooks
                or layer._forward_hooks_with_kwargs)
    assert not nn.Linear(2, 2)._forward_hooks  # another module's tables are its own
    out = layer(minigrad.ones(1, 2))
    assert out.grad_fn is not None and type(out.grad_fn).__name__ == "Linear"  # no hook node in the graph


# -- nn.Module.register_full_backward_hook ------------------------------------------------------------
def full_backward_hook_calls(base, lib):
    """A module of (a, b, c) -> (a * b, a + b) where b needs no gradient and c is not a Tensor."""
    calls = []

    class ProductAndSum(base):
        def forward(self, a, b, c=None):
            return a * b, a + b

    module = ProductAndSum()
    module.register_full_backward_hook(
        lambda m, grad_input, grad_output: calls.append(([values(g) for g in grad_input],
                                                         [values(g) for g in grad_output])))
    a, b = lib.tensor([1.0, 2.0], requires_grad=True), lib.tensor([3.0, 4.0])
    product, total = module(a, b, 5)
    product.sum().backward()  # the second output is not used: its grad_output is None
    product, total = module(a, b)
    (product.sum() * 2 + total.sum()).backward()
    return calls, values(a.grad)


def test_full_backward_hook_sees_grad_input_and_grad_output_as_torch():
    ours, theirs = full_backward_hook_calls(nn.Module, minigrad), full_backward_hook_calls(torch.nn.Module, torch)
    assert ours == theirs
    assert ours[0] == [([[3.0, 4.0], [0.0, 0.0], None], [[1.0, 1.0], None]),
                       ([[7.0, 9.0], [0.0, 0.0]], [[2.0, 2.0], [1.0, 1.0]])]


def linear_pair(rng):
    torch.manual_seed(0)          # the same weights every run, whatever ran before
    ours, theirs = nn.Linear(3, 2), torch.nn.Linear(3, 2)
    with minigrad.no_grad():
        ours.weight.copy_(theirs.weight.detach().numpy())
        ours.bias.copy_(theirs.bias.detach().numpy())
    return ours, theirs


def test_full_backward_hook_replaces_grad_input_as_torch(both_paths):
    rng = np.random.default_rng(0)
    x_array = rng.standard_normal((4, 3)).astype(np.float32)
    results = []
    for lib, layer in zip((minigrad, torch), linear_pair(rng)):
        seen = []
        layer.register_full_backward_hook(
            lambda m, grad_input, grad_output: (seen.append((values(grad_input[0]), values(grad_output[0]))),
                                                (grad_input[0] * 10,))[1])
        x = lib.tensor(x_array, requires_grad=True)
        (layer(x).tanh() ** 2).sum().backward()
        results.append((seen, values(x.grad), values(layer.weight.grad)))
    (ours, x_grad, w_grad), (theirs, torch_x_grad, torch_w_grad) = results
    # float32 sums in another order: relative agreement, and for entries near 0 (where a relative
    # tolerance means nothing) agreement to float32 rounding of the O(1) terms summed.
    np.testing.assert_allclose(ours[0][0], theirs[0][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours[0][1], theirs[0][1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x_grad, torch_x_grad, rtol=1e-5, atol=1e-5)  # ten times the hooked grad_input
    np.testing.assert_allclose(x_grad, np.array(ours[0][0]) * 10, rtol=1e-6)
    np.testing.assert_allclose(w_grad, torch_w_grad, rtol=1e-5)  # the parameters' gradients are not grad_input


def test_full_backward_hook_when_no_input_requires_grad():
    for lib, layer in zip((minigrad, torch), linear_pair(None)):
        seen = []
        handle = layer.register_full_backward_hook(lambda m, gi, go: seen.append((gi, values(go[0]))))
        with pytest.warns(UserWarning, match="no inputs require gradients"):
            layer(lib.ones(1, 3)).sum().backward()
        assert seen == [((None,), [[1.0, 1.0]])], lib.__name__
        handle.remove()
        layer.register_full_backward_hook(lambda m, gi, go: (lib.ones(1, 3),))
        with pytest.warns(UserWarning), pytest.raises(RuntimeError, match="should always return None"):
            layer(lib.ones(1, 3)).sum().backward()


def hook_order_in_a_sequential(torch_nn, lib, layers):
    model = torch_nn.Sequential(*layers)
    order = []
    for name, module in model.named_children():
        module.register_forward_hook(lambda m, args, out, name=name: order.append(("forward", name)))
        module.register_full_backward_hook(
            lambda m, gi, go, name=name: order.append(("backward", name, values(go[0]))))
    model.register_full_backward_hook(lambda m, gi, go: order.append(("backward", "model", values(go[0]))))
    x = lib.tensor(np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3), requires_grad=True)
    (model(x) ** 2).sum().backward()
    return order


def test_backward_hooks_of_nested_modules_run_in_torchs_order_with_torchs_values():
    ours_layers, theirs_layers = linear_pair(None)
    ours = hook_order_in_a_sequential(nn, minigrad, [ours_layers, nn.Tanh()])
    theirs = hook_order_in_a_sequential(torch.nn, torch, [theirs_layers, torch.nn.Tanh()])
    assert [step[:2] for step in ours] == [step[:2] for step in theirs] == [
        ("forward", "0"), ("forward", "1"), ("backward", "1"), ("backward", "0"), ("backward", "model")]
    for our_step, their_step in zip(ours, theirs):
        if len(our_step) == 3:
            np.testing.assert_allclose(our_step[2], their_step[2], rtol=1e-5)
