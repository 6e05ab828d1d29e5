"""Tensor.register_post_accumulate_grad_hook: hook(leaf) once per backward, after leaf.grad holds the
pass's whole gradient, and during the pass (what lets DistributedDataParallel overlap its all-reduces)."""
import numpy as np
import pytest

import minigrad


def test_runs_once_per_backward_after_grad_is_accumulated(rng):
    w = minigrad.tensor(rng.standard_normal((3, 2)), requires_grad=True)
    x = minigrad.tensor(rng.standard_normal((4, 3)))
    seen = []
    w.register_post_accumulate_grad_hook(lambda leaf: seen.append(leaf.grad.numpy().copy()))
    for _ in range(2):
        (x @ w).sum().backward()
    one_pass = x.numpy().T @ np.ones((4, 2))
    assert len(seen) == 2
    np.testing.assert_allclose(seen[0], one_pass, rtol=1e-6)
    np.testing.assert_allclose(seen[1], 2 * one_pass, rtol=1e-6)   # the accumulated .grad, as in torch


def test_a_leaf_used_twice_runs_its_hook_once_with_the_sum(rng):
    w = minigrad.tensor(rng.standard_normal(5), requires_grad=True)
    calls = []
    w.register_post_accumulate_grad_hook(lambda leaf: calls.append(leaf.grad.numpy().copy()))
    ((w * 2.0).sum() + (w * w).sum()).backward()
    assert len(calls) == 1
    np.testing.assert_allclose(calls[0], 2.0 + 2 * w.detach().numpy(), rtol=1e-6)


def test_runs_as_soon_as_the_leaf_is_done_not_after_the_pass(rng):
    """The last layer's weight is finished first: its hook runs while the first layer's gradient
    is still to come."""
    w1 = minigrad.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    w2 = minigrad.tensor(rng.standard_normal((4, 2)), requires_grad=True)
    x = minigrad.tensor(rng.standard_normal((5, 3)))
    order = []
    w2.register_post_accumulate_grad_hook(lambda leaf: order.append(("w2", w1.grad is None)))
    w1.register_post_accumulate_grad_hook(lambda leaf: order.append(("w1", w2.grad is None)))
    (minigrad.relu(x @ w1) @ w2).sum().backward()
    assert order == [("w2", True), ("w1", False)]


def test_same_gradients_with_and_without_the_hooks(rng):
    def grads(hooked):
        minigrad.manual_seed(0)
        w1 = minigrad.tensor(np.arange(12.0).reshape(3, 4) / 7, requires_grad=True)
        b = minigrad.tensor(np.ones(4), requires_grad=True)
        x = minigrad.tensor(np.linspace(-1, 1, 15).reshape(5, 3))
        if hooked:
            for leaf in (w1, b):
                leaf.register_post_accumulate_grad_hook(lambda leaf: None)
        (minigrad.tanh(x @ w1 + b) ** 2).mean().backward()
        return w1.grad.numpy(), b.grad.numpy()

    for plain, hooked in zip(grads(False), grads(True)):
        np.testing.assert_array_equal(plain, hooked)


def test_removed_hook_does_not_run_and_grad_does_not_run_it():
    w = minigrad.tensor([1.0, 2.0], requires_grad=True)
    calls = []
    handle = w.register_post_accumulate_grad_hook(lambda leaf: calls.append(1))
    minigrad.grad((w * w).sum(), w)       # grad() accumulates nothing, so no post-accumulate hook
    assert calls == []
    handle.remove()
    (w * w).sum().backward()
    assert calls == []


def test_refused_on_non_leaves_and_on_tensors_without_grad():
    w = minigrad.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="non-leaf"):
        (w * 2).register_post_accumulate_grad_hook(lambda leaf: None)
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        minigrad.tensor([1.0]).register_post_accumulate_grad_hook(lambda leaf: None)


def test_matches_torch(rng):
    torch = pytest.importorskip("torch")
    data = rng.standard_normal((3, 3))
    results = []
    for lib in (minigrad, torch):
        w = lib.tensor(data, requires_grad=True)
        seen = []
        w.register_post_accumulate_grad_hook(lambda leaf: seen.append(leaf.grad.detach().numpy().copy()))
        ((w @ w).sum() * 3).backward()
        results.append(seen)
    assert len(results[0]) == len(results[1]) == 1
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12)
