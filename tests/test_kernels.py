"""The fast layer against the reference: every kernel of minigrad/kernels gives the values and the
gradients that minigrad.functional's composition of primitive ops gives, its create_graph backward is
exact to second order, and the engine, not the op, chooses which backward runs."""
import os
import subprocess
import sys

import numpy as np
import pytest

import minigrad
import minigrad.functional as F
from minigrad.kernels.attention import Attention
from minigrad.kernels.cross_entropy import CrossEntropy
from minigrad.kernels.dropout import Dropout, ReluDropout
from minigrad.kernels.layer_norm import LayerNorm
from minigrad.kernels.linear import Linear
from minigrad.kernels.residual_exit import DropoutAddLayerNorm
from transformer import Transformer

RNG = np.random.default_rng(0)


def leaf(*shape):
    return minigrad.tensor(RNG.standard_normal(shape), requires_grad=True)


def graph_node_types(tensor):
    """The class of every node in the graph below `tensor`."""
    seen, stack, types = set(), [tensor.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen or not isinstance(node, minigrad.Function):
            continue
        seen.add(node)
        types.add(type(node))
        stack.extend(node.edges)
    return types


def is_kernel(node_type):
    return node_type.__module__.startswith("minigrad.kernels")


def seeded(function, seed=11):
    """`function` drawing the same dropout masks at every call (gradcheck calls it many times)."""
    def call(*inputs):
        minigrad.manual_seed(seed)
        return function(*inputs)
    return call


CASES = {  # name -> (the kernel it must use, function of the inputs, input shapes)
    "linear 3-D": (Linear, lambda x, w, b: F.linear(x, w, b), [(2, 3, 4), (5, 4), (5,)]),
    "linear no bias": (Linear, lambda x, w: F.linear(x, w), [(3, 4), (2, 4)]),
    "layer_norm": (LayerNorm, lambda x, w, b: F.layer_norm(x, 6, w, b), [(2, 3, 6), (6,), (6,)]),
    "layer_norm two dims, no affine": (LayerNorm, lambda x: F.layer_norm(x, (3, 4)), [(2, 3, 4)]),
    "dropout": (Dropout, lambda x: F.dropout(x, 0.3), [(4, 5, 6)]),
    "relu_dropout": (ReluDropout, lambda x: F.relu_dropout(x, 0.4), [(3, 5, 8)]),
    "residual exit": (DropoutAddLayerNorm,
                      lambda x, r, w, b: F.dropout_add_layer_norm(x, r, 0.3, 8, w, b), [(3, 5, 8), (3, 5, 8), (8,), (8,)]),
    "residual exit, eval": (DropoutAddLayerNorm,
                            lambda x, r: F.dropout_add_layer_norm(x, r, 0.3, (4, 6), training=False),
                            [(2, 3, 4, 6), (2, 3, 4, 6)]),
    "cross_entropy smoothed, ignored targets": (
        CrossEntropy,
        lambda x: F.cross_entropy(x, minigrad.tensor([1, 4, -100, 0, 4, 2]), label_smoothing=0.1), [(6, 5)]),
    "cross_entropy sum": (CrossEntropy,
                          lambda x: F.cross_entropy(x, minigrad.tensor([1, 4, 0]), reduction="sum"), [(3, 5)]),
    "cross_entropy none, (N, C, d)": (
        CrossEntropy,
        lambda x: F.cross_entropy(x, minigrad.tensor([[1, 3], [0, 2]]), ignore_index=3, label_smoothing=0.2,
                                  reduction="none"), [(2, 4, 2)]),
    "self-attention, padding mask, dropout": (
        Attention,
        lambda q: F.multi_head_attention(q, None, 2, minigrad.tensor([[[[False, False, True]]], [[[True] * 3]]]),
                                         dropout_p=0.3)[0], [(2, 3, 12)]),
    "cross-attention, causal-shaped mask": (
        Attention,
        lambda q, kv: F.multi_head_attention(q, kv, 2, minigrad.tensor(np.triu(np.ones((3, 4), bool), 2)))[0],
        [(2, 3, 4), (2, 4, 8)]),
}


@pytest.mark.parametrize("name", CASES)
def test_kernel_matches_the_reference_in_value_and_gradient(name):
    kernel_type, function, shapes = CASES[name]
    function = seeded(function)
    inputs = [leaf(*shape) for shape in shapes]
    fast = function(*inputs)
    assert kernel_type in graph_node_types(fast)
    with minigrad.set_reference_mode(True):
        reference = function(*inputs)
    assert not any(is_kernel(t) for t in graph_node_types(reference)), "reference mode used a kernel"
    np.testing.assert_allclose(fast.detach().numpy(), reference.detach().numpy(), rtol=1e-12, atol=1e-13)
    upstream = minigrad.tensor(RNG.standard_normal(fast.shape))
    fast_grads = minigrad.grad((fast * upstream).sum(), inputs)
    reference_grads = minigrad.grad((reference * upstream).sum(), inputs)
    for ours, theirs in zip(fast_grads, reference_grads):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", CASES)
def test_kernel_has_exact_first_and_second_derivatives(name):
    _, function, shapes = CASES[name]
    inputs = [leaf(*shape) for shape in shapes]
    assert minigrad.gradcheck(seeded(function), inputs)
    assert minigrad.gradgradcheck(seeded(function), inputs)


def test_kernel_and_reference_agree_in_float32():
    x, w, b = (minigrad.tensor(RNG.standard_normal(s), dtype=minigrad.float32, requires_grad=True)
               for s in [(4, 7, 32), (32,), (32,)])
    fast = F.layer_norm(x, 32, w, b)
    with minigrad.set_reference_mode(True):
        reference = F.layer_norm(x, 32, w, b)
    assert fast.dtype == reference.dtype == minigrad.float32
    np.testing.assert_allclose(fast.detach().numpy(), reference.detach().numpy(), rtol=1e-5, atol=1e-5)


# -- the engine picks the path ------------------------------------------------------------------
class Square(minigrad.Function):
    """x * x with both backwards, counting which one the engine calls."""
    calls = []

    def forward(self, x):
        self.save_for_backward(x)
        return x * x

    def backward(self, grad):
        Square.calls.append("tensor ops")
        (x,) = self.saved_tensors
        return 2 * x * grad

    def backward_arrays(self, grad):
        Square.calls.append("arrays")
        (x,) = self.saved_arrays
        return 2 * x * grad


@pytest.mark.parametrize("reference, create_graph, expected", [
    (False, False, "arrays"), (False, True, "tensor ops"), (True, False, "tensor ops"), (True, True, "tensor ops")])
def test_the_engine_chooses_the_array_backward_only_when_no_graph_is_recorded(reference, create_graph, expected):
    Square.calls.clear()
    x = minigrad.tensor([1.0, -2.0, 3.0], requires_grad=True)
    with minigrad.set_reference_mode(reference):
        (gx,) = minigrad.grad(Square.apply(x).sum(), [x], create_graph=create_graph)
    assert Square.calls == [expected]
    np.testing.assert_array_equal(gx.detach().numpy(), [2.0, -4.0, 6.0])
    assert (gx.grad_fn is not None) == create_graph


def test_reference_mode_is_a_switch_and_a_context():
    assert not minigrad.is_reference_mode()
    with minigrad.set_reference_mode(True):
        assert minigrad.is_reference_mode()
        with minigrad.set_reference_mode(False):
            assert not minigrad.is_reference_mode()
        assert minigrad.is_reference_mode()
    assert not minigrad.is_reference_mode()
    minigrad.set_reference_mode(True)
    try:
        assert minigrad.is_reference_mode()
    finally:
        minigrad.set_reference_mode(False)


def test_the_environment_variable_turns_reference_mode_on():
    code = "import minigrad; print(minigrad.is_reference_mode())"
    for value, expected in [("1", "True"), ("0", "False"), ("", "False")]:
        env = dict(os.environ, MINIGRAD_REFERENCE=value)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == expected


def test_grad_runs_only_the_part_of_the_graph_that_leads_to_its_inputs():
    Square.calls.clear()
    x = minigrad.tensor([1.0, 2.0], requires_grad=True)
    hidden = Square.apply(x)  # below the input asked for: its backward must not run
    middle = hidden * 3
    (g,) = minigrad.grad((middle * middle).sum(), [middle])
    assert Square.calls == []
    np.testing.assert_allclose(g.numpy(), 2 * middle.detach().numpy())


# -- the whole model on both paths ------------------------------------------------------------------
def _training_step(reference, norm_first):
    """Loss, node types and every parameter's gradient of one float64 training step (dropout on)."""
    minigrad.manual_seed(3)
    model = Transformer(13, 11, d_model=8, n_heads=2, d_ff=16, n_encoder_layers=2, n_decoder_layers=2,
                        dropout=0.2, norm_first=norm_first)
    src = minigrad.tensor([[4, 5, 6, 3], [7, 8, 3, 0]])
    tgt_in, tgt_out = minigrad.tensor([[2, 5, 6], [2, 9, 0]]), minigrad.tensor([[5, 6, 3], [9, 3, 0]])
    with minigrad.set_reference_mode(reference):
        logits = model(src, tgt_in)
        loss = F.cross_entropy(logits.reshape(-1, 11), tgt_out.reshape(-1), ignore_index=0, label_smoothing=0.1)
        kinds = graph_node_types(loss)
        loss.backward()
    return loss.item(), kinds, {name: p.grad.numpy() for name, p in model.named_parameters()}


@pytest.mark.parametrize("norm_first", [False, True])
def test_a_transformer_training_step_is_the_same_on_both_paths(norm_first):
    previous = minigrad.get_default_dtype()
    minigrad.set_default_dtype(minigrad.float64)
    try:
        fast_loss, fast_kinds, fast_grads = _training_step(False, norm_first)
        reference_loss, reference_kinds, reference_grads = _training_step(True, norm_first)
    finally:
        minigrad.set_default_dtype(previous)
    assert any(is_kernel(t) for t in fast_kinds)
    assert not any(is_kernel(t) for t in reference_kinds)
    assert fast_loss == pytest.approx(reference_loss, rel=1e-12)
    for name in fast_grads:
        np.testing.assert_allclose(fast_grads[name], reference_grads[name], rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("name, options", [("Adam", {}), ("Adam", {"weight_decay": 0.1, "amsgrad": True}),
                                           ("AdamW", {"weight_decay": 0.1})])
def test_the_adam_kernel_makes_the_reference_update(name, options):
    def three_steps(reference):
        params = [minigrad.tensor(np.linspace(-1, 1, 600).reshape(20, 30), requires_grad=True),
                  minigrad.tensor(np.linspace(0.5, 2, 30), requires_grad=True), minigrad.tensor(1.5, requires_grad=True)]
        optimizer = getattr(minigrad.optim, name)(params, lr=0.01, **options)
        with minigrad.set_reference_mode(reference):
            for _ in range(3):
                optimizer.zero_grad()
                sum((p * p * p).sum() for p in params).backward()
                optimizer.step()
        return [p.detach().numpy() for p in params]

    for fast, reference in zip(three_steps(False), three_steps(True)):
        np.testing.assert_allclose(fast, reference, rtol=1e-13, atol=1e-15)


DEPENDENT = {  # a kernel whose arguments are computed from one another, or are one tensor twice
    "residual exit, sub-layer of the residual": lambda r: F.dropout_add_layer_norm((r * 1.5).tanh(), r, 0.0, 8),
    "residual exit with dropout": lambda r: F.dropout_add_layer_norm((r * 1.5).tanh(), r, 0.3, 8),
    "linear of its own weight": lambda w: F.linear(w * 2, w),
    "one tensor twice": lambda r: F.dropout_add_layer_norm(r, r, 0.0, 8),
    "attention, keys and values computed from the queries": lambda r: (
        lambda q: F.multi_head_attention(q, q.repeat(1, 1, 2).tanh(), 2)[0])(r * 2),
}


@pytest.mark.parametrize("name", DEPENDENT)
def test_create_graph_through_a_kernel_whose_arguments_depend_on_each_other(name):
    """The kernel's Tensor-op backward gives partial derivatives: the outer pass adds the paths between
    its arguments, as it does for the reference's ops."""
    r = leaf(2, 3, 8) if "linear" not in name else leaf(8, 8)
    weights = minigrad.tensor(RNG.standard_normal(r.shape))  # a weighted sum: a layer norm's plain sum is constant
    function = seeded(lambda r: (DEPENDENT[name](r) * weights).sum())
    (fast,) = minigrad.grad(function(r), [r], create_graph=True)
    with minigrad.set_reference_mode(True):
        (reference,) = minigrad.grad(function(r), [r], create_graph=True)
    np.testing.assert_allclose(fast.detach().numpy(), reference.detach().numpy(), rtol=1e-10, atol=1e-12)
    (fast_second,) = minigrad.grad((fast * fast).sum(), [r])
    with minigrad.set_reference_mode(True):
        (reference_second,) = minigrad.grad((reference * reference).sum(), [r])
    np.testing.assert_allclose(fast_second.numpy(), reference_second.numpy(), rtol=1e-9, atol=1e-11)
    assert minigrad.gradgradcheck(function, [r])


def test_reference_mode_switched_on_between_forward_and_backward():
    """A graph recorded with kernels can be differentiated with reference mode on (the kernels' Tensor-op
    backwards run, each only over its own recomputed ops)."""
    r = leaf(2, 3, 8)
    out = (F.dropout_add_layer_norm((r * 1.5).tanh(), r, 0.0, 8) * minigrad.tensor(RNG.standard_normal(r.shape))).sum()
    (fast,) = minigrad.grad(out, [r], retain_graph=True)
    with minigrad.set_reference_mode(True):
        (reference,) = minigrad.grad(out, [r])
    np.testing.assert_allclose(fast.numpy(), reference.numpy(), rtol=1e-12)
