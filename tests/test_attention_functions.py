"""F.scaled_dot_product_attention keeps torch's signature and mask meaning (a bool attn_mask is True where
attention is ALLOWED); F.masked_softmax and F.multi_head_attention keep the project's own True-means-blocked
masks under names of their own."""
import numpy as np
import pytest

import minigrad
import minigrad.functional as F

RNG = np.random.default_rng(7)
SHAPES = dict(query=(2, 3, 4, 5), key=(2, 3, 6, 5), value=(2, 3, 6, 7))
ALLOWED = RNG.random((4, 6)) < 0.6
ALLOWED[2] = False  # a query with no allowed key


def inputs():
    return {name: minigrad.tensor(RNG.standard_normal(shape), requires_grad=True) for name, shape in SHAPES.items()}


MASKS = {
    "none": {},
    "bool": {"attn_mask": ALLOWED},
    "float": {"attn_mask": RNG.standard_normal((4, 6))},
    "causal": {"is_causal": True},
    "scale": {"scale": 0.3, "attn_mask": ALLOWED},
}


def _ours(case):
    options = dict(MASKS[case])
    if "attn_mask" in options:
        options["attn_mask"] = minigrad.tensor(options["attn_mask"])
    return options


@pytest.mark.parametrize("case", MASKS)
def test_matches_torch_in_value_and_gradient(case):
    torch = pytest.importorskip("torch")
    ours = inputs()
    theirs = {name: torch.tensor(t.detach().numpy(), requires_grad=True) for name, t in ours.items()}
    out = F.scaled_dot_product_attention(ours["query"], ours["key"], ours["value"], **_ours(case))
    options = {k: torch.tensor(v) if k == "attn_mask" else v for k, v in MASKS[case].items()}
    expected = torch.nn.functional.scaled_dot_product_attention(theirs["query"], theirs["key"], theirs["value"],
                                                                **options)
    if case in ("bool", "scale"):  # torch's row with no allowed key: NaN or zeros by version; ours is zeros
        np.testing.assert_array_equal(out.detach().numpy()[:, :, 2], 0)
        expected = expected.nan_to_num(0.0)
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    upstream = RNG.standard_normal(out.shape)
    (out * minigrad.tensor(upstream)).sum().backward()
    (expected * torch.tensor(upstream)).sum().backward()
    for name in ours:
        np.testing.assert_allclose(ours[name].grad.numpy(), np.nan_to_num(theirs[name].grad.numpy()), rtol=1e-9,
                                   atol=1e-12, err_msg=name)


@pytest.mark.parametrize("case", MASKS)
def test_exact_first_and_second_derivatives(case):
    tensors = inputs()
    function = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **_ours(case))  # noqa: E731
    assert minigrad.gradcheck(function, list(tensors.values()))
    assert minigrad.gradgradcheck(function, list(tensors.values()))


def test_a_bool_mask_means_allowed_here_and_blocked_in_masked_softmax():
    t = inputs()
    allowed = minigrad.tensor(ALLOWED)
    torch_style = F.scaled_dot_product_attention(t["query"], t["key"], t["value"], attn_mask=allowed)
    weights = F.masked_softmax(t["query"] @ t["key"].mT, ~allowed, 1 / np.sqrt(5))
    np.testing.assert_allclose(torch_style.detach().numpy(), (weights @ t["value"]).detach().numpy(), rtol=1e-12)
    assert (weights.detach().numpy()[..., ~ALLOWED] == 0).all()


def test_is_causal_and_attn_mask_together_are_refused():
    t = inputs()
    with pytest.raises(ValueError, match="not both"):
        F.scaled_dot_product_attention(t["query"], t["key"], t["value"], attn_mask=minigrad.tensor(ALLOWED),
                                       is_causal=True)


def test_mismatched_shapes_name_the_op_and_the_shapes():
    t = inputs()
    with pytest.raises(ValueError, match=r"scaled_dot_product_attention.*\(2, 3, 4, 5\).*\(2, 3, 5, 5\)"):
        F.scaled_dot_product_attention(t["query"], minigrad.randn(2, 3, 5, 5, dtype=minigrad.float64), t["value"])


@pytest.mark.parametrize("reference", [False, True])
def test_multi_head_attention_is_sdpa_on_each_head_with_blocked_masks(reference):
    """The project's packed multi-head function equals torch-style sdpa on the split heads."""
    queries = minigrad.tensor(RNG.standard_normal((2, 3, 12)))
    blocked = minigrad.tensor(np.array([[False, False, True], [False, True, True]])[:, None, None, :])
    with minigrad.set_reference_mode(reference):
        context, weights = F.multi_head_attention(queries, None, 2, blocked)
    q, k, v = F.split_heads(queries, 3, 2)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=~blocked)
    np.testing.assert_allclose(context.detach().numpy(), F.merge_heads(expected).detach().numpy(), rtol=1e-12)
    assert weights.shape == (2, 2, 3, 3) and (weights.detach().numpy()[1, :, :, 1:] == 0).all()


@pytest.mark.parametrize("reference", [False, True])
def test_multi_head_attention_with_every_weight_dropped_gives_zeros(reference):
    queries = minigrad.tensor(RNG.standard_normal((2, 3, 12)), requires_grad=True)
    with minigrad.set_reference_mode(reference):
        context, weights = F.multi_head_attention(queries, None, 2, dropout_p=1.0, training=True)
        context.sum().backward()
    assert (context.detach().numpy() == 0).all() and (queries.grad.numpy() == 0).all()
    np.testing.assert_allclose(weights.numpy().sum(-1), 1, rtol=1e-12)


@pytest.mark.parametrize("reference", [False, True])
def test_multi_head_attention_weights_carry_no_graph_on_either_path(reference):
    queries = minigrad.tensor(RNG.standard_normal((2, 3, 12)), requires_grad=True)
    with minigrad.set_reference_mode(reference):
        context, weights = F.multi_head_attention(queries, None, 2)
    assert context.requires_grad and not weights.requires_grad
