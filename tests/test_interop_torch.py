"""Weights that travel (transformer/safetensors_io.py, transformer/torch_names.py): a translator written as
.safetensors translates from that file alone, and its weights load into PyTorch's layout (and back) with the
same logits. The safetensors tests skip without the package, the PyTorch ones without torch."""
import json
import sys

import numpy as np
import pytest

import minigrad
from transformer import Transformer, beam_search, greedy_decode
from transformer.data import Vocab
from transformer.errors import UsageError
from transformer.safetensors_io import (MissingExtraError, load_safetensors, read_safetensors,
                                        save_safetensors)
from transformer.torch_names import (TORCH_CORE, from_torch, minigrad_name, to_torch, torch_name,
                                     torch_transformer_arguments)

SRC_WORDS, TGT_WORDS = [f"s{i}" for i in range(8)], [f"t{i}" for i in range(7)]
SRC_VOCAB, TGT_VOCAB = Vocab(SRC_WORDS), Vocab(TGT_WORDS)   # 12 and 11 tokens, as in test_transformer_torch
BPE = json.dumps({"kind": "bpe", "merges": [["s", "1"], ["t", "2"]], "note": "é 한"})

CONFIGS = {
    "post-LN": {},
    "pre-LN, tied generator": dict(norm_first=True, tie_generator=True),
    "gelu": dict(activation="gelu"),
}


def make_model(seed=0, dtype="float32", shared=False, **options):
    minigrad.manual_seed(seed)
    vocab = (len(SRC_VOCAB),) * 2 if shared else (len(SRC_VOCAB), len(TGT_VOCAB))
    model = Transformer(*vocab, d_model=16, n_heads=4, d_ff=24, n_encoder_layers=2, n_decoder_layers=2,
                        dropout=0.0, max_len=16, share_embeddings=shared, **options)
    model.to(dtype=np.dtype(dtype))
    rng = np.random.default_rng(seed + 1)
    with minigrad.no_grad():  # non-trivial norms and biases, so that a swapped weight or bias cannot pass
        for parameter in model.parameters():
            if parameter.ndim == 1:
                parameter.copy_(rng.normal(1.0, 0.3, parameter.shape))
        model.generator.weight.mul_(4.0)
    return model


@pytest.fixture
def safetensors():
    return pytest.importorskip("safetensors")


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


# -- the file ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("options", CONFIGS.values(), ids=CONFIGS.keys())
def test_a_saved_translator_translates_from_the_file_alone(safetensors, tmp_path, dtype, options):
    model = make_model(dtype=dtype, **options)
    path = tmp_path / "model.safetensors"
    save_safetensors(path, model, SRC_VOCAB, TGT_VOCAB.to_list(), tokenizer=BPE)   # a Vocab or its token list
    loaded = load_safetensors(path)
    assert loaded.config == model.config and loaded.tokenizer == BPE
    assert loaded.src_vocab.to_list() == SRC_VOCAB.to_list() and loaded.tgt_vocab.to_list() == TGT_VOCAB.to_list()
    again = loaded.model
    assert not again.training and again.generator.weight.dtype == np.dtype(dtype)
    ours, theirs = model.state_dict(), again.state_dict()
    assert list(theirs) == list(ours)
    for name in ours:
        np.testing.assert_array_equal(theirs[name].numpy(), ours[name].numpy(), err_msg=name)
    if options.get("tie_generator"):
        assert again.generator.weight is again.tgt_embed.weight
    src = minigrad.tensor([[4, 5, 6, 7, 3], [8, 9, 3, 0, 0]])
    model.eval()
    with minigrad.no_grad():
        np.testing.assert_array_equal(again(src, src[:, :4]).numpy(), model(src, src[:, :4]).numpy())
    assert greedy_decode(again, src, 8, 2, 3) == greedy_decode(model, src, 8, 2, 3)
    assert beam_search(again, src, 3, 8, 2, 3) == beam_search(model, src, 3, 8, 2, 3)


def test_the_file_holds_the_state_dict_names_and_json_metadata(safetensors, tmp_path):
    model = make_model(shared=True)
    save_safetensors(tmp_path / "m.safetensors", model, SRC_VOCAB, SRC_VOCAB)
    tensors, metadata = read_safetensors(tmp_path / "m.safetensors")
    assert sorted(tensors) == sorted(model.state_dict()) and "tgt_embed.embedding.weight" not in tensors
    assert all(isinstance(value, str) for value in metadata.values())
    assert json.loads(metadata["model_config"]) == model.config
    assert json.loads(metadata["src_vocab"]) == SRC_VOCAB.to_list() and "tokenizer" not in metadata
    assert metadata["format"] == "minigrad-translator" and load_safetensors(tmp_path / "m.safetensors").tokenizer is None


def test_foreign_and_broken_files_are_one_line_errors(safetensors, tmp_path):
    from safetensors.numpy import save_file
    save_file({"x": np.zeros(3, dtype=np.float32)}, str(tmp_path / "foreign.safetensors"))
    (tmp_path / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    cases = {"foreign.safetensors": "not a minigrad translator", "broken.safetensors": "not a readable .safetensors",
             "absent.safetensors": "no such file"}
    for name, message in cases.items():
        with pytest.raises(UsageError, match=message) as error:
            load_safetensors(tmp_path / name)
        assert "\n" not in str(error.value)
    with pytest.raises(TypeError, match="tokenizer must be a string"):
        save_safetensors(tmp_path / "m.safetensors", make_model(), SRC_VOCAB, TGT_VOCAB, tokenizer={"merges": []})


def test_without_the_safetensors_package_one_line_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "safetensors", None)  # `import safetensors` now raises ImportError
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    for call in (lambda: save_safetensors(tmp_path / "m.safetensors", make_model(), SRC_VOCAB, TGT_VOCAB),
                 lambda: load_safetensors(tmp_path / "m.safetensors")):
        with pytest.raises(MissingExtraError, match=r'pip install "\.\[interop\]"') as error:
            call()
        assert isinstance(error.value, ImportError) and isinstance(error.value, UsageError)
        assert "\n" not in str(error.value)


# -- the name map --------------------------------------------------------------------------------
@pytest.mark.parametrize("options", [{}, dict(norm_first=True), dict(tie_generator=True),
                                     dict(share_embeddings=True, tie_generator=True)])
def test_the_name_map_goes_there_and_back(options):
    shared = options.pop("share_embeddings", False)
    model = make_model(shared=shared, **options)
    state = model.state_dict()
    for name in state:
        assert minigrad_name(torch_name(name)) == name
    torch_state = to_torch(state, model.config)
    assert "transformer.encoder.layers.1.linear2.bias" in torch_state and "tgt_embed.weight" in torch_state
    assert ("transformer.decoder.norm.weight" in torch_state) == model.config["norm_first"]
    back = from_torch(torch_state, model.config)
    assert list(back) == list(state) and all(back[name] is state[name] for name in state)


def test_the_name_map_refuses_what_our_model_cannot_be():
    model = make_model()
    torch_state = to_torch(model.state_dict(), model.config)
    extra = dict(torch_state, **{"transformer.encoder.norm.weight": torch_state["generator.bias"]})
    with pytest.raises(ValueError, match="post-LN model .* has no final norms; replace them by torch.nn.Identity"):
        from_torch(extra, model.config)
    tied = make_model(tie_generator=True)
    torch_state = to_torch(tied.state_dict(), tied.config)
    torch_state["generator.weight"] = minigrad.zeros(*torch_state["generator.weight"].shape)
    with pytest.raises(ValueError, match="tie_generator: tgt_embed.weight and generator.weight should be one"):
        from_torch(torch_state, tied.config)
    for name in ("positional.table", "encoder"):
        with pytest.raises(KeyError):
            torch_name(name)
    with pytest.raises(KeyError):
        minigrad_name("core.encoder.layers.0.linear1.weight")


@pytest.mark.parametrize("norm_first", [False, True])
def test_the_map_names_every_weight_of_a_bare_torch_transformer(torch, norm_first):
    import warnings
    model = make_model(norm_first=norm_first)
    with warnings.catch_warnings():  # "enable_nested_tensor ... norm_first": irrelevant here
        warnings.simplefilter("ignore")
        core = torch.nn.Transformer(**torch_transformer_arguments(model.config))
    if not norm_first:  # what the map asks of the PyTorch module for a post-LN model
        core.encoder.norm = core.decoder.norm = torch.nn.Identity()
    mapped = {name: tuple(value.shape) for name, value in to_torch(model.state_dict(), model.config).items()}
    expected = {TORCH_CORE + name: tuple(value.shape) for name, value in core.state_dict().items()}
    assert {name: shape for name, shape in mapped.items() if name.startswith(TORCH_CORE)} == expected


# -- PyTorch: there and back, the same logits ----------------------------------------------------
def torch_module(torch, options, dtype, seed):
    """test_transformer_torch's TorchReference (the PyTorch layout: embeddings + positions + generator around
    torch.nn.Transformer), with the weights of a model of ours made from `seed`. It copies weights by parameter,
    so it is built untied (the shapes are the same)."""
    from test_transformer_torch import TorchReference
    untied = {name: value for name, value in options.items() if name != "tie_generator"}
    return TorchReference(make_model(seed=seed, dtype=dtype, **untied), getattr(torch, dtype))


def logits_of_both(torch, model, reference, dtype):
    from test_transformer_torch import SRC, TGT
    model.eval()
    with minigrad.no_grad():
        ours = model(minigrad.tensor(SRC), minigrad.tensor(TGT)).numpy()
    with torch.no_grad():
        theirs = reference(torch.tensor(SRC), torch.tensor(TGT)).numpy()
    assert ours.dtype == theirs.dtype == np.dtype(dtype)
    return ours, theirs


PARITY = pytest.mark.parametrize("dtype,tol", [("float64", 1e-9), ("float32", 1e-4)])
LAYOUTS = pytest.mark.parametrize("options", CONFIGS.values(), ids=CONFIGS.keys())


@pytest.mark.usefixtures("both_paths")
@PARITY
@LAYOUTS
def test_an_exported_model_loaded_into_pytorch_gives_the_same_logits(safetensors, torch, tmp_path, dtype, tol,
                                                                       options):
    model = make_model(dtype=dtype, **options)
    save_safetensors(tmp_path / "m.safetensors", model, SRC_VOCAB, TGT_VOCAB)
    reference = torch_module(torch, options, dtype, seed=7)  # other weights to start with
    tensors, metadata = read_safetensors(tmp_path / "m.safetensors")
    torch_state = to_torch(tensors, json.loads(metadata["model_config"]))
    result = reference.load_state_dict({name: torch.from_numpy(value)
                                        for name, value in torch_state.items()}, strict=False)
    assert result.unexpected_keys == [] and result.missing_keys == ["table"]
    ours, theirs = logits_of_both(torch, model, reference, dtype)
    np.testing.assert_allclose(theirs, ours, rtol=tol, atol=tol)


@pytest.mark.usefixtures("both_paths")
@PARITY
@LAYOUTS
def test_pytorch_weights_loaded_into_our_model_give_the_same_logits(safetensors, torch, tmp_path, dtype, tol,
                                                                     options):
    reference = torch_module(torch, options, dtype, seed=7)
    torch.manual_seed(0)
    with torch.no_grad():  # weights of PyTorch's own, none of them ours
        for name, parameter in reference.named_parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.3 + (1.0 if parameter.ndim == 1 else 0.0))
        if options.get("tie_generator"):
            reference.generator.weight.copy_(reference.tgt_embed.weight)
    torch_state = {name: value.numpy() for name, value in reference.state_dict().items()
                   if name != "table"}  # the positions: no weight
    fresh = make_model(seed=5, dtype=dtype, **options)
    fresh.load_state_dict(from_torch(torch_state, fresh.config))
    save_safetensors(tmp_path / "m.safetensors", fresh, SRC_VOCAB, TGT_VOCAB)  # and through the file
    ours, theirs = logits_of_both(torch, load_safetensors(tmp_path / "m.safetensors").model, reference, dtype)
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol)
