"""nn.MultiheadAttention is torch.nn.MultiheadAttention: the constructor, the parameter names (so a torch
state_dict loads unchanged), forward's signature and torch's mask meanings -- a bool key_padding_mask is True at
keys to IGNORE, a bool attn_mask is True where attention is NOT allowed (the opposite of
scaled_dot_product_attention's), float masks are added to the scores -- with the same outputs, weights and
gradients. F.multi_head_attention_forward, the function behind it, is gradchecked and gradgradchecked."""
import contextlib
import math
import warnings

import numpy as np
import pytest

import fake_gpu
import minigrad
import minigrad.functional as F
import nn

torch = pytest.importorskip("torch")

E, H, L, S, N = 8, 2, 3, 4, 2
KDIM, VDIM = 5, 6
RNG = np.random.default_rng(2026)


def _masks(L):
    """Random masks in torch's meaning for L queries and S keys, with key 0 always allowed: no query is left
    without a key (torch's weights for such a query are NaN; ours are 0, tested below)."""
    padding = RNG.random((N, S)) < 0.4
    padding[:, 0] = False
    blocked = RNG.random((L, S)) < 0.4
    blocked[:, 0] = False
    per_head = RNG.random((N * H, L, S)) < 0.4
    per_head[:, :, 0] = False
    causal = np.triu(np.ones((L, S), dtype=bool), 1)
    return {"padding": padding, "blocked": blocked, "per_head": per_head, "causal": causal,
            "padding_float": RNG.standard_normal((N, S)), "additive": RNG.standard_normal((L, S)),
            "additive_per_head": RNG.standard_normal((N * H, L, S))}


MASKS = {L: _masks(L), S: _masks(S)}  # by query length: cross-attention has L queries, self-attention S


def _pair(**config):
    """A torch MultiheadAttention with random weights (biases included) and ours with its state_dict loaded."""
    theirs = torch.nn.MultiheadAttention(E, H, dtype=torch.float64, **config)
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.tensor(0.5 * RNG.standard_normal(tuple(p.shape))))
    ours = nn.MultiheadAttention(E, H, **config).double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    result = ours.load_state_dict({name: minigrad.tensor(value.numpy()) for name, value in theirs.state_dict().items()})
    assert result.missing_keys == result.unexpected_keys == []
    return ours, theirs


def _inputs(attention, batch_first, unbatched, config):
    """query, key and value arrays; which of them are one object is given by `attention`."""
    def shaped(length, width):
        if unbatched:
            return RNG.standard_normal((length, width))
        return RNG.standard_normal((N, length, width) if batch_first else (length, N, width))
    query = shaped(L if attention != "self" else S, E)
    if attention == "self":
        return query, "q", "q"
    key = shaped(S, config.get("kdim") or E)
    if attention == "shared":
        return query, key, "k"
    return query, key, shaped(S, config.get("vdim") or E)


def _call(module, lib, arrays, masks, options):
    """Run one module on its own tensors made from the same arrays; returns (output, weights, input leaves)."""
    leaves = {}
    for name, array in zip("qkv", arrays):
        if isinstance(array, str):
            leaves[name] = leaves[array]  # the same tensor object: self-attention, or key is value
        else:
            leaves[name] = lib.tensor(array, requires_grad=True)
    length = arrays[0].shape[1 if options.get("batch_first_input") else 0]
    mask_args = {name: lib.tensor(MASKS[length][key]) for name, key in masks.items()}
    if options.get("unbatched") and "key_padding_mask" in mask_args:
        mask_args["key_padding_mask"] = mask_args["key_padding_mask"][0]
    if options.get("unbatched") and "attn_mask" in mask_args and mask_args["attn_mask"].ndim == 3:
        mask_args["attn_mask"] = mask_args["attn_mask"][:H]
    kwargs = {k: v for k, v in options.items() if k not in ("unbatched", "batch_first_input")}
    output, weights = module(leaves["q"], leaves["k"], leaves["v"], **mask_args, **kwargs)
    return output, weights, leaves


SCENARIOS = [  # (id, constructor config, attention, masks, forward options)
    ("self_masks_weights_averaged", {}, "self", {"key_padding_mask": "padding", "attn_mask": "blocked"}, {}),
    ("self_masks_weights_per_head", {}, "self", {"key_padding_mask": "padding", "attn_mask": "blocked"},
     {"average_attn_weights": False}),
    ("self_masks_no_weights", {}, "self", {"key_padding_mask": "padding", "attn_mask": "blocked"},
     {"need_weights": False}),
    ("self_batch_first", {"batch_first": True}, "self", {"key_padding_mask": "padding", "attn_mask": "blocked"},
     {}),
    ("self_batch_first_per_head", {"batch_first": True}, "self", {"key_padding_mask": "padding"},
     {"average_attn_weights": False}),
    ("self_batch_first_no_weights", {"batch_first": True}, "self",
     {"key_padding_mask": "padding", "attn_mask": "blocked"}, {"need_weights": False}),
    ("self_no_masks", {}, "self", {}, {}),
    ("self_no_masks_no_weights", {"batch_first": True}, "self", {}, {"need_weights": False}),
    ("cross_key_is_value_per_head_mask", {"batch_first": True}, "shared",
     {"key_padding_mask": "padding", "attn_mask": "per_head"}, {"average_attn_weights": False}),
    ("cross_key_is_value_no_weights", {}, "shared", {"attn_mask": "per_head"}, {"need_weights": False}),
    ("cross_three_inputs", {}, "cross", {"key_padding_mask": "padding", "attn_mask": "blocked"}, {}),
    ("kdim_vdim", {"kdim": KDIM, "vdim": VDIM}, "cross", {"key_padding_mask": "padding"}, {}),
    ("kdim_vdim_batch_first_no_weights", {"kdim": KDIM, "vdim": VDIM, "batch_first": True}, "cross",
     {"key_padding_mask": "padding", "attn_mask": "blocked"}, {"need_weights": False}),
    ("float_masks", {}, "self", {"key_padding_mask": "padding_float", "attn_mask": "additive"}, {}),
    ("float_masks_no_weights", {"batch_first": True}, "self",
     {"key_padding_mask": "padding_float", "attn_mask": "additive_per_head"}, {"need_weights": False}),
    ("bool_padding_float_attn_mask", {}, "self", {"key_padding_mask": "padding", "attn_mask": "additive"}, {}),
    ("bool_padding_float_attn_mask_no_weights", {}, "self", {"key_padding_mask": "padding", "attn_mask": "additive"},
     {"need_weights": False}),
    ("no_bias", {"bias": False}, "shared", {"key_padding_mask": "padding"}, {}),
    ("add_bias_kv", {"add_bias_kv": True}, "self", {"key_padding_mask": "padding", "attn_mask": "blocked"}, {}),
    ("add_bias_kv_no_weights", {"add_bias_kv": True, "batch_first": True}, "cross",
     {"key_padding_mask": "padding", "attn_mask": "per_head"}, {"need_weights": False}),
    ("add_zero_attn", {"add_zero_attn": True}, "self", {"key_padding_mask": "padding", "attn_mask": "additive"},
     {"average_attn_weights": False}),
    ("bias_kv_and_zero_attn", {"add_bias_kv": True, "add_zero_attn": True, "kdim": KDIM, "vdim": VDIM}, "cross",
     {"key_padding_mask": "padding", "attn_mask": "blocked"}, {}),
    ("bias_kv_and_zero_attn_no_weights", {"add_bias_kv": True, "add_zero_attn": True}, "self",
     {"key_padding_mask": "padding_float", "attn_mask": "blocked"}, {"need_weights": False}),
    ("causal_hint_uses_sdpa_causal", {}, "self", {"attn_mask": "causal"}, {"need_weights": False, "is_causal": True}),
    ("causal_hint_with_zero_attn", {"add_zero_attn": True}, "self", {"attn_mask": "causal"},
     {"need_weights": False, "is_causal": True}),
    ("causal_hint_with_weights", {}, "self", {"attn_mask": "causal"}, {"is_causal": True}),
    ("causal_hint_with_padding", {"batch_first": True}, "self", {"attn_mask": "causal", "key_padding_mask": "padding"},
     {"need_weights": False, "is_causal": True}),
    ("unbatched", {}, "cross", {"key_padding_mask": "padding", "attn_mask": "per_head"},
     {"unbatched": True, "average_attn_weights": False}),
    ("unbatched_no_weights", {"batch_first": True}, "self", {"key_padding_mask": "padding"},
     {"unbatched": True, "need_weights": False}),
]


@pytest.mark.parametrize("config,attention,masks,options", [s[1:] for s in SCENARIOS], ids=[s[0] for s in SCENARIOS])
def test_matches_torch_with_torchs_weights(config, attention, masks, options):
    ours, theirs = _pair(**config)
    arrays = _inputs(attention, config.get("batch_first", False), options.get("unbatched", False), config)
    options = dict(options, batch_first_input=config.get("batch_first", False) and not options.get("unbatched"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's warning about a bool key_padding_mask with a float attn_mask
        expected, expected_weights, their_leaves = _call(theirs, torch, arrays, masks, options)
    out, weights, our_leaves = _call(ours, minigrad, arrays, masks, options)
    assert out.shape == tuple(expected.shape)
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    if expected_weights is None:
        assert weights is None
    else:
        assert weights.shape == tuple(expected_weights.shape)
        np.testing.assert_allclose(weights.detach().numpy(), expected_weights.detach().numpy(), rtol=1e-10,
                                   atol=1e-12)
    upstream = RNG.standard_normal(tuple(expected.shape))
    total = (out * minigrad.tensor(upstream)).sum()
    their_total = (expected * torch.tensor(upstream)).sum()
    if weights is not None:  # the weights' gradient flows back too
        weight_upstream = RNG.standard_normal(weights.shape)
        total = total + (weights * minigrad.tensor(weight_upstream)).sum()
        their_total = their_total + (expected_weights * torch.tensor(weight_upstream)).sum()
    total.backward()
    their_total.backward()
    for name in our_leaves:
        np.testing.assert_allclose(our_leaves[name].grad.numpy(), their_leaves[name].grad.numpy(), rtol=1e-9,
                                   atol=1e-12, err_msg=name)
    their_params = dict(theirs.named_parameters())
    assert set(dict(ours.named_parameters())) == set(their_params)
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), their_params[name].grad.numpy(), rtol=1e-9, atol=1e-12,
                                   err_msg=name)


def test_both_paths_match_torch(both_paths):
    """With the fused kernels (linear, dropout) and in reference mode alike."""
    ours, theirs = _pair(batch_first=True)
    arrays = _inputs("self", True, False, {})
    masks = {"key_padding_mask": "padding", "attn_mask": "blocked"}
    for options in ({"batch_first_input": True}, {"batch_first_input": True, "need_weights": False}):
        out, weights, leaves = _call(ours, minigrad, arrays, masks, options)
        expected, expected_weights, their_leaves = _call(theirs, torch, arrays, masks, options)
        np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
        out.sum().backward()
        expected.sum().backward()
        np.testing.assert_allclose(leaves["q"].grad.numpy(), their_leaves["q"].grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("device", [d for d in fake_gpu.device_params() if d != "cpu"])
@pytest.mark.parametrize("config,options", [({}, {}), ({"add_bias_kv": True, "add_zero_attn": True, "kdim": KDIM},
                                                       {"need_weights": False}),
                                            ({"vdim": VDIM}, {"average_attn_weights": False})])
def test_runs_on_a_gpu_without_host_traffic(device, config, options):
    ours, _ = _pair(batch_first=True, **config)
    arrays = _inputs("cross", True, False, config)
    masks = {"key_padding_mask": "padding", "attn_mask": "additive_per_head"}
    expected, expected_weights, cpu_leaves = _call(ours, minigrad, arrays, masks, dict(options, batch_first_input=True))
    expected.sum().backward()
    cpu_grads = {name: p.grad.numpy() for name, p in ours.named_parameters()}
    ours.zero_grad()
    ours.to(device)
    leaves = {name: minigrad.tensor(a, device=device, requires_grad=True) for name, a in zip("qkv", arrays)}
    mask_args = {name: minigrad.tensor(MASKS[L][key], device=device) for name, key in masks.items()}
    with fake_gpu.no_host_traffic() if device.startswith("fakegpu") else contextlib.nullcontext():
        out, weights = ours(leaves["q"], leaves["k"], leaves["v"], **mask_args, **options)
        out.sum().backward()
    assert out.device == leaves["q"].device
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    if expected_weights is not None:
        np.testing.assert_allclose(weights.detach().numpy(), expected_weights.detach().numpy(), rtol=1e-10,
                                   atol=1e-12)
    for name in leaves:
        np.testing.assert_allclose(leaves[name].grad.numpy(), cpu_leaves[name].grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), cpu_grads[name], rtol=1e-10, atol=1e-12, err_msg=name)


# -- the module: names, init, state_dict both ways ----------------------------------------------------------
@pytest.mark.parametrize("config", [{}, {"bias": False}, {"kdim": KDIM, "vdim": VDIM}, {"add_bias_kv": True},
                                    {"kdim": KDIM, "add_bias_kv": True, "bias": False}])
def test_parameters_have_torchs_names_shapes_and_init(config):
    ours = nn.MultiheadAttention(E, H, **config)
    theirs = torch.nn.MultiheadAttention(E, H, **config)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for name in ("in_proj_weight", "in_proj_bias", "q_proj_weight", "k_proj_weight", "v_proj_weight", "bias_k",
                 "bias_v"):
        assert (getattr(ours, name) is None) == (getattr(theirs, name) is None), name
    if ours.in_proj_bias is not None:  # torch's init: zero biases, Xavier-uniform projections
        assert (ours.in_proj_bias.detach().numpy() == 0).all() and (ours.out_proj.bias.detach().numpy() == 0).all()
    weights = [w for w in (ours.in_proj_weight, ours.q_proj_weight, ours.k_proj_weight) if w is not None]
    for w in weights:
        bound = math.sqrt(6.0 / (w.shape[0] + w.shape[1]))
        largest = np.abs(w.detach().numpy()).max()
        assert 0.5 * bound < largest <= bound
    assert (ours.embed_dim, ours.num_heads, ours.head_dim, ours.kdim, ours.vdim, ours._qkv_same_embed_dim,
            ours.batch_first, ours.dropout, ours.add_zero_attn) == \
        (theirs.embed_dim, theirs.num_heads, theirs.head_dim, theirs.kdim, theirs.vdim, theirs._qkv_same_embed_dim,
         theirs.batch_first, theirs.dropout, theirs.add_zero_attn)


def test_our_state_dict_loads_into_torch_and_to_moves_everything():
    ours = nn.MultiheadAttention(E, H, kdim=KDIM, vdim=VDIM, add_bias_kv=True)
    theirs = torch.nn.MultiheadAttention(E, H, kdim=KDIM, vdim=VDIM, add_bias_kv=True)
    theirs.load_state_dict({name: torch.tensor(value.numpy()) for name, value in ours.state_dict().items()})
    for name, value in theirs.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), ours.state_dict()[name].numpy(), err_msg=name)
    ours.to(minigrad.float64)
    assert all(p.dtype == minigrad.float64 for p in ours.parameters()) and len(list(ours.parameters())) == 8


def test_dropout_while_training_returns_the_dropped_weights_as_torch(rng):
    """torch returns the attention weights after dropout; the output is those weights applied to the values."""
    module = nn.MultiheadAttention(E, H, dropout=0.5, batch_first=True).double()
    x = minigrad.tensor(rng.standard_normal((N, S, E)))
    out, weights = module(x, x, x, average_attn_weights=False)
    kept = weights.detach().numpy()
    assert (kept == 0).mean() > 0.2 and (kept > 1).any()  # dropped, and the survivors scaled by 1 / (1 - p)
    values = F.linear(x, module.in_proj_weight[2 * E:], module.in_proj_bias[2 * E:])
    context = F.merge_heads(weights @ F.split_heads(values, 1, H)[0])
    np.testing.assert_allclose(out.detach().numpy(), module.out_proj(context).detach().numpy(), rtol=1e-12)
    module.eval()  # no dropout: torch's values
    theirs = torch.nn.MultiheadAttention(E, H, dropout=0.5, batch_first=True, dtype=torch.float64).eval()
    theirs.load_state_dict({name: torch.tensor(value.numpy()) for name, value in module.state_dict().items()})
    expected, expected_weights = theirs(*[torch.tensor(x.numpy())] * 3)
    out, weights = module(x, x, x)
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(weights.detach().numpy(), expected_weights.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("need_weights", [True, False])
def test_a_query_with_every_key_masked_gets_zeros_not_nan(need_weights):
    ours, _ = _pair(batch_first=True)
    x = minigrad.tensor(RNG.standard_normal((N, S, E)), requires_grad=True)
    blocked = np.zeros((S, S), dtype=bool)
    blocked[1] = True  # query 1 may attend to nothing
    out, weights = ours(x, x, x, attn_mask=minigrad.tensor(blocked), need_weights=need_weights)
    np.testing.assert_allclose(out.detach().numpy()[:, 1], np.broadcast_to(ours.out_proj.bias.detach().numpy(), (N, E)),
                               rtol=1e-12)
    if need_weights:
        assert (weights.detach().numpy()[:, 1] == 0).all()
    out.sum().backward()
    assert np.isfinite(x.grad.numpy()).all()


# -- the function: derivatives, static keys, errors --------------------------------------------------------
def _function_inputs(separate, bias_kv):
    tensors = {
        "query": RNG.standard_normal((L, N, E)), "key": RNG.standard_normal((S, N, KDIM if separate else E)),
        "value": RNG.standard_normal((S, N, VDIM if separate else E)),
        "in_proj_bias": RNG.standard_normal(3 * E), "out_proj_weight": RNG.standard_normal((E, E)) / 3,
        "out_proj_bias": RNG.standard_normal(E)}
    if separate:
        tensors.update(q_proj_weight=RNG.standard_normal((E, E)) / 3, k_proj_weight=RNG.standard_normal((E, KDIM)) / 3,
                       v_proj_weight=RNG.standard_normal((E, VDIM)) / 3)
    else:
        tensors["in_proj_weight"] = RNG.standard_normal((3 * E, E)) / 3
    if bias_kv:
        tensors.update(bias_k=RNG.standard_normal((1, 1, E)), bias_v=RNG.standard_normal((1, 1, E)))
    return {name: minigrad.tensor(a, requires_grad=True) for name, a in tensors.items()}


@pytest.mark.parametrize("separate,bias_kv,zero_attn,need_weights", [(False, False, False, True),
                                                                     (False, False, False, False),
                                                                     (True, True, True, True),
                                                                     (True, False, True, False)])
def test_function_has_exact_first_and_second_derivatives(separate, bias_kv, zero_attn, need_weights):
    tensors = _function_inputs(separate, bias_kv)
    names = list(tensors)
    padding = minigrad.tensor(MASKS[L]["padding"])
    additive = minigrad.tensor(MASKS[L]["additive"])

    def function(*inputs):
        t = dict(zip(names, inputs))
        return F.multi_head_attention_forward(
            t["query"], t["key"], t["value"], E, H, t.get("in_proj_weight"), t["in_proj_bias"], t.get("bias_k"),
            t.get("bias_v"), zero_attn, 0.0, t["out_proj_weight"], t["out_proj_bias"], key_padding_mask=padding,
            attn_mask=additive, need_weights=need_weights, use_separate_proj_weight=separate,
            q_proj_weight=t.get("q_proj_weight"), k_proj_weight=t.get("k_proj_weight"),
            v_proj_weight=t.get("v_proj_weight"), average_attn_weights=False)

    inputs = [tensors[name] for name in names]
    assert minigrad.gradcheck(function, inputs)
    assert minigrad.gradgradcheck(function, inputs)


@pytest.mark.parametrize("zero_attn", [False, True])
def test_function_with_static_keys_and_values_matches_torch(zero_attn):
    tensors = _function_inputs(False, False)
    static_k, static_v = RNG.standard_normal((N * H, S + 1, E // H)), RNG.standard_normal((N * H, S + 1, E // H))
    padding = RNG.random((N, S + 1)) < 0.3
    padding[:, 0] = False

    def run(f, lib, t):
        return f.multi_head_attention_forward(
            t["query"], t["key"], t["value"], E, H, t["in_proj_weight"], t["in_proj_bias"], None, None, zero_attn, 0.0,
            t["out_proj_weight"], t["out_proj_bias"], key_padding_mask=lib.tensor(padding),
            static_k=lib.tensor(static_k), static_v=lib.tensor(static_v))

    theirs = {name: torch.tensor(t.detach().numpy(), requires_grad=True) for name, t in tensors.items()}
    (out, weights), (expected, expected_weights) = run(F, minigrad, tensors), run(torch.nn.functional, torch, theirs)
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(weights.detach().numpy(), expected_weights.detach().numpy(), rtol=1e-10, atol=1e-12)
    out.sum().backward()
    expected.sum().backward()
    for name in ("query", "in_proj_weight", "out_proj_weight"):
        np.testing.assert_allclose(tensors[name].grad.numpy(), theirs[name].grad.numpy(), rtol=1e-9, atol=1e-12)


def _module_call(**kwargs):
    module = nn.MultiheadAttention(E, H)
    x = minigrad.randn(L, N, E)
    args = {"query": x, "key": x, "value": x}
    args.update(kwargs)
    return lambda: module(**args)


ERRORS = [
    (lambda: nn.MultiheadAttention(E, 3), ValueError, "MultiheadAttention: embed_dim=8 is not divisible by "
                                                      "num_heads=3"),
    (lambda: nn.MultiheadAttention(0, 2), ValueError, "MultiheadAttention: embed_dim and num_heads must be positive"),
    (_module_call(query=minigrad.randn(2, 3, 4, E)), ValueError,
     r"multi_head_attention_forward: query of shape \(2, 3, 4, 8\) must be 2-D \(L, E\) or 3-D"),
    (_module_call(key=minigrad.randn(S, E)), ValueError, r"query of shape \(3, 2, 8\) needs key and value of 3 dims"),
    (_module_call(key=minigrad.randn(S, N, E)), ValueError, r"key of shape \(4, 2, 8\) and value of shape "
                                                            r"\(3, 2, 8\) do not match"),
    (_module_call(query=minigrad.randn(L, N, 6), key=minigrad.randn(L, N, 6), value=minigrad.randn(L, N, 6)),
     ValueError, r"query of shape \(3, 2, 6\) has embedding dim 6; expected embed_dim_to_check=8"),
    (_module_call(key_padding_mask=minigrad.zeros(N, L + 1, dtype=minigrad.bool)), ValueError,
     r"key_padding_mask of shape \(2, 4\) does not fit 2 sequences of 3 keys \(expected \(2, 3\)\)"),
    (_module_call(key_padding_mask=minigrad.zeros(L, dtype=minigrad.bool)), ValueError,
     r"key_padding_mask of shape \(3,\) must be \(N, S\)"),
    (_module_call(attn_mask=minigrad.zeros(L, L + 1, dtype=minigrad.bool)), ValueError,
     r"attn_mask of shape \(3, 4\) must be \(L, S\) = \(3, 3\) or \(N \* num_heads, L, S\) = \(4, 3, 3\)"),
    (_module_call(attn_mask=minigrad.zeros(L, L, dtype=minigrad.int64)), TypeError,
     "attn_mask must be a bool or floating-point tensor, got int64"),
    (_module_call(is_causal=True), ValueError, "is_causal is a hint that attn_mask is the causal mask"),
]


@pytest.mark.parametrize("call,error,message", ERRORS)
def test_errors_name_the_function_and_the_shapes(call, error, message):
    with pytest.raises(error, match=message):
        call()
