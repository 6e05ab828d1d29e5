"""The Transformer model: masks, causality, padding invariance, gradients, options and their errors."""
import math

import numpy as np
import pytest

import minigrad
import nn
from transformer import Transformer, causal_mask, padding_mask
from minigrad.functional import masked_softmax
from transformer.attention import MultiHeadAttention
from transformer.positional import sinusoidal_table

pytestmark = pytest.mark.usefixtures("both_paths")  # every test on the kernels and on the reference path

PAD, BOS, EOS = 0, 2, 3


def tiny(dtype="float64", **options):
    settings = dict(d_model=16, n_heads=4, d_ff=32, n_encoder_layers=2, n_decoder_layers=2, dropout=0.0, max_len=32)
    settings.update(options)
    minigrad.manual_seed(0)
    return Transformer(13, 11, **settings).to(dtype=np.dtype(dtype))


def ids(rows):
    return minigrad.tensor(np.array(rows, dtype=np.int64))


# -- masks --------------------------------------------------------------------------------
def test_padding_mask_marks_pad_keys_in_a_broadcastable_shape():
    mask = padding_mask(ids([[5, 6, 0], [7, 0, 0]]), 0)
    assert mask.shape == (2, 1, 1, 3) and mask.dtype == np.bool_
    assert mask.detach().numpy()[:, 0, 0].tolist() == [[False, False, True], [False, True, True]]


def test_causal_mask_blocks_exactly_the_future():
    mask = causal_mask(4).detach().numpy()
    for i in range(4):
        for j in range(4):
            assert mask[i, j] == (j > i)


def test_positional_table_follows_the_formula_from_position_zero():
    table = sinusoidal_table(7, 6, dtype=minigrad.float64).detach().numpy()
    for pos in range(7):
        for i in range(3):
            angle = pos / 10000 ** (2 * i / 6)
            assert table[pos, 2 * i] == pytest.approx(math.sin(angle), abs=1e-12)
            assert table[pos, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-12)


# -- the properties a correct model must have ------------------------------------------------
@pytest.mark.parametrize("norm_first", [False, True])
def test_a_future_target_token_does_not_change_earlier_logits(norm_first):
    model = tiny(norm_first=norm_first)
    src = ids([[4, 5, 6, 7, EOS], [8, 9, EOS, PAD, PAD]])
    tgt = np.array([[BOS, 5, 6, 7, 8, 9], [BOS, 4, 4, 5, PAD, PAD]])
    changed = tgt.copy()
    changed[:, 3] = [10, 10]
    before, after = model(src, ids(tgt)).detach().numpy(), model(src, ids(changed)).detach().numpy()
    np.testing.assert_array_equal(before[:, :3], after[:, :3])
    assert np.abs(before[:, 3:] - after[:, 3:]).max() > 1e-3  # ... while it does change its own and later ones


@pytest.mark.parametrize("norm_first", [False, True])
def test_padding_the_source_or_target_leaves_real_positions_unchanged(norm_first):
    model = tiny(norm_first=norm_first)
    src, tgt = [[4, 5, 6, 7, EOS], [8, 9, EOS, PAD, PAD]], [[BOS, 5, 6, 7], [BOS, 4, PAD, PAD]]
    plain = model(ids(src), ids(tgt)).detach().numpy()
    padded = model(ids([row + [PAD] * 3 for row in src]), ids([row + [PAD] * 2 for row in tgt])).detach().numpy()
    np.testing.assert_allclose(padded[:, :4], plain, rtol=0, atol=1e-12)
    memory_plain = model.encode(ids(src)).detach().numpy()
    memory_padded = model.encode(ids([row + [PAD] * 3 for row in src])).detach().numpy()
    np.testing.assert_allclose(memory_padded[:, :5], memory_plain, rtol=0, atol=1e-12)


@pytest.mark.parametrize("norm_first", [False, True])
def test_tiny_model_gradients_match_finite_differences(norm_first):
    """1+1 layers, d_model 8, 2 heads, float64: d(<v, logits>)/d(every parameter) vs central differences."""
    minigrad.manual_seed(1)
    model = Transformer(7, 6, d_model=8, n_heads=2, d_ff=12, n_encoder_layers=1, n_decoder_layers=1, dropout=0.0,
                        norm_first=norm_first, activation="gelu", max_len=8).double()
    slots = [(module, name) for _, module in model.named_modules() for name in module._parameters]
    params = [module._parameters[name] for module, name in slots]
    src, tgt = ids([[4, 5, 6, EOS], [5, EOS, PAD, PAD]]), ids([[BOS, 4, 5], [BOS, 5, PAD]])
    keep = (tgt != PAD).unsqueeze(-1).double()

    def logits_of(*values):
        for (module, name), value in zip(slots, values):
            module._parameters[name] = value
        return model(src, tgt) * keep  # logits at pad targets use the pad embedding row, which never learns

    try:
        assert minigrad.gradcheck(logits_of, params, max_full_size=0, n_directions=3)
    finally:
        for (module, name), value in zip(slots, params):
            module._parameters[name] = value


def test_all_masked_rows_give_no_nan_forward_or_backward():
    model = tiny()
    src = ids([[PAD, PAD, PAD], [4, 5, EOS]])   # the first source is all padding: its keys are all blocked
    logits = model(src, ids([[BOS, 4], [BOS, 5]]))
    assert np.isfinite(logits.detach().numpy()).all()
    logits.sum().backward()
    for name, parameter in model.named_parameters():
        assert np.isfinite(parameter.grad.detach().numpy()).all(), name


def test_masked_softmax_rows_and_gradients():
    scores = minigrad.tensor(np.random.default_rng(0).standard_normal((2, 3, 4)), requires_grad=True)
    mask = minigrad.tensor(np.array([[False, False, True, True]] * 2 + [[True] * 4]).reshape(1, 3, 4))
    weights = masked_softmax(scores, mask, 0.5).detach().numpy()
    np.testing.assert_array_equal(weights[:, 0, 2:], 0)
    np.testing.assert_allclose(weights[:, :2].sum(-1), 1, atol=1e-12)
    np.testing.assert_array_equal(weights[:, 2], 0)       # all blocked: zeros, not NaN
    assert minigrad.gradcheck(lambda s: masked_softmax(s, mask, 0.5), [scores])


def test_return_attention_gives_per_layer_weights_that_respect_the_masks():
    model = tiny(n_encoder_layers=2, n_decoder_layers=3)
    src, tgt = ids([[4, 5, EOS, PAD], [6, 7, 8, EOS]]), ids([[BOS, 4, 5], [BOS, 6, 7]])
    logits, attention = model(src, tgt, return_attention=True)
    np.testing.assert_array_equal(logits.detach().numpy(), model(src, tgt).detach().numpy())
    assert [a.shape for a in attention["encoder"]] == [(2, 4, 4, 4)] * 2
    assert [a.shape for a in attention["decoder"]] == [(2, 4, 3, 3)] * 3
    assert [a.shape for a in attention["cross"]] == [(2, 4, 3, 4)] * 3
    for weights in attention["encoder"] + attention["cross"]:
        w = weights.detach().numpy()
        np.testing.assert_allclose(w.sum(-1), 1, atol=1e-12)
        np.testing.assert_array_equal(w[0, ..., 3], 0)       # the pad key of sentence 0
    for weights in attention["decoder"]:
        np.testing.assert_array_equal(weights.detach().numpy()[..., np.triu_indices(3, 1)[0], np.triu_indices(3, 1)[1]], 0)


def test_embeddings_are_scaled_by_sqrt_d_model_and_positions_added():
    model = tiny()
    x = model.positional(model.src_embed(ids([[4, 5]])))
    expected = model.src_embed.weight.detach().numpy()[[4, 5]] * 4.0 + model.positional.table.detach().numpy()[:2]
    np.testing.assert_allclose(x.detach().numpy()[0], expected, atol=1e-12)


# -- options ------------------------------------------------------------------------------------
def test_config_rebuilds_the_same_architecture():
    model = Transformer(13, 11, d_model=16, n_heads=2, d_ff=20, n_encoder_layers=1, n_decoder_layers=3,
                        norm_first=True, activation="gelu", tie_generator=True, max_len=40, pad_id=1)
    clone = Transformer(**model.config)
    assert clone.config == model.config
    assert {k: v.shape for k, v in clone.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert len(clone.decoder.layers) == 3 and len(clone.encoder.layers) == 1


def test_final_norms_exist_only_in_pre_ln():
    assert tiny(norm_first=True).encoder.norm is not None and tiny(norm_first=True).decoder.norm is not None
    assert tiny(norm_first=False).encoder.norm is None and tiny(norm_first=False).decoder.norm is None


def test_tied_generator_and_shared_embeddings_are_one_parameter():
    minigrad.manual_seed(0)
    model = Transformer(11, 11, d_model=8, n_heads=2, d_ff=8, n_encoder_layers=1, n_decoder_layers=1,
                        tie_generator=True, share_embeddings=True)
    assert model.generator.weight is model.tgt_embed.weight is model.src_embed.weight
    names = [name for name, _ in model.named_parameters()]
    assert len(names) == len(set(id(p) for p in model.parameters()))
    model(ids([[4, 5]]), ids([[BOS, 6]])).sum().backward()
    assert model.generator.weight.grad is not None


def test_share_embeddings_needs_one_vocabulary():
    with pytest.raises(ValueError, match="share_embeddings.*13.*11"):
        Transformer(13, 11, d_model=8, n_heads=2, share_embeddings=True)


def test_sequences_longer_than_max_len_are_refused_clearly():
    model = tiny(max_len=6)
    with pytest.raises(ValueError, match="longer than max_len=6"):
        model(ids([[4] * 7]), ids([[BOS, 4]]))


def test_bad_heads_and_activation_are_refused():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="activation"):
        Transformer(5, 5, d_model=8, n_heads=2, activation="tanh")


def test_dropout_is_active_in_train_mode_only():
    model = tiny(dropout=0.3)
    src, tgt = ids([[4, 5, EOS]]), ids([[BOS, 4]])
    model.train()
    assert not np.array_equal(model(src, tgt).detach().numpy(), model(src, tgt).detach().numpy())
    model.eval()
    np.testing.assert_array_equal(model(src, tgt).detach().numpy(), model(src, tgt).detach().numpy())


def test_float32_model_stays_float32():
    model = tiny("float32")
    logits = model(ids([[4, 5, EOS]]), ids([[BOS, 4]]))
    assert logits.dtype == np.float32
    assert all(p.dtype == np.float32 for p in model.parameters()) and model.positional.table.dtype == np.float32


def test_attention_parameters_use_torch_multihead_layout():
    attention = MultiHeadAttention(8, 2)
    shapes = {name: tuple(p.shape) for name, p in attention.named_parameters()}
    assert shapes == {"in_proj_weight": (24, 8), "in_proj_bias": (24,), "out_proj.weight": (8, 8),
                      "out_proj.bias": (8,)}
    assert isinstance(attention.in_proj_weight, nn.Parameter)


def test_dropout_add_layer_norm_falls_back_to_the_composed_ops():
    """A broadcast residual and p = 1 take the composed path (same numbers, torch's broadcasting); a p
    outside [0, 1] is an error in eval mode too, as in torch."""
    F = minigrad.functional
    x = minigrad.tensor(np.random.default_rng(5).standard_normal((2, 3, 4)), requires_grad=True)
    row = minigrad.tensor(np.arange(4.0))
    out = F.dropout_add_layer_norm(x, row, 0.5, 4, training=False)
    np.testing.assert_allclose(out.detach().numpy(), F.layer_norm(row + x, 4).detach().numpy(), rtol=1e-12)
    out = F.dropout_add_layer_norm(x, row, 0.5, 4, training=True)  # broadcast residual while training
    assert out.shape == (2, 3, 4) and type(out.grad_fn).__name__ != "DropoutAddLayerNorm"
    out = F.dropout_add_layer_norm(x, x * 2, 1.0, 4, training=True)  # everything dropped
    np.testing.assert_allclose(out.detach().numpy(), F.layer_norm(x * 2, 4).detach().numpy(), rtol=1e-12)
    assert type(out.grad_fn).__name__ != "DropoutAddLayerNorm"
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match="p must be in"):
            F.dropout_add_layer_norm(x, x, p, 4, training=False)


def test_dropout_add_layer_norm_backward_twice_with_retain_graph():
    F = minigrad.functional
    rng = np.random.default_rng(6)
    x, residual = (minigrad.tensor(rng.standard_normal((4, 8)), requires_grad=True) for _ in range(2))
    weight = minigrad.tensor(rng.standard_normal(8), requires_grad=True)
    y = (F.dropout_add_layer_norm(x, residual, 0.3, 8, weight) ** 2).sum()
    y.backward(retain_graph=True)
    first = [t.grad.numpy().copy() for t in (x, residual, weight)]
    y.backward()
    for t, once in zip((x, residual, weight), first):
        np.testing.assert_allclose(t.grad.numpy(), 2 * once, rtol=1e-12)
