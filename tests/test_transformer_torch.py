"""Weight-for-weight parity with torch.nn.Transformer: same logits and the same gradient for every parameter.

Our model's sub-module names follow torch's (self_attn.in_proj_weight, multihead_attn, norm1..3), so the
copy is by name. torch.nn.Transformer has no embeddings or generator; the test adds the same ones around it.
torch always ends each stack with a LayerNorm; our post-LN model (the paper's) has none there, so for
post-LN torch's final norms are replaced by identity. Torch runs in train mode with dropout 0 (its eval
fast path zeroes padded positions).
"""
import math
import warnings

import numpy as np
import pytest

import minigrad
from transformer import Transformer
from transformer.torch_names import minigrad_name, torch_transformer_arguments

pytestmark = pytest.mark.usefixtures("both_paths")  # every test on the kernels and on the reference path

torch = pytest.importorskip("torch")

SRC = [[4, 5, 6, 7, 8, 3], [9, 5, 4, 3, 0, 0], [6, 3, 0, 0, 0, 0]]
TGT = [[2, 7, 8, 9, 4], [2, 5, 6, 0, 0], [2, 9, 0, 0, 0]]


class TorchReference(torch.nn.Module):
    """Our embeddings + positions + generator around torch.nn.Transformer: the PyTorch layout of
    transformer/torch_names.py (its child `transformer`), our model's weights copied in by that name map."""

    def __init__(self, model, dtype):
        super().__init__()
        c = model.config
        self.pad_id, self.scale = c["pad_id"], math.sqrt(c["d_model"])
        self.src_embed = torch.nn.Embedding(c["src_vocab_size"], c["d_model"], padding_idx=c["pad_id"])
        self.tgt_embed = torch.nn.Embedding(c["tgt_vocab_size"], c["d_model"], padding_idx=c["pad_id"])
        with warnings.catch_warnings():  # "enable_nested_tensor ... norm_first": irrelevant here
            warnings.simplefilter("ignore")
            self.transformer = torch.nn.Transformer(**{**torch_transformer_arguments(c), "dropout": 0.0})
        if not c["norm_first"]:
            self.transformer.encoder.norm = torch.nn.Identity()
            self.transformer.decoder.norm = torch.nn.Identity()
        self.generator = torch.nn.Linear(c["d_model"], c["tgt_vocab_size"])
        self.register_buffer("table", torch.tensor(model.positional.table.numpy()))
        self.to(dtype)
        ours = dict(model.named_parameters())
        with torch.no_grad():
            for name, parameter in self.named_parameters():
                parameter.copy_(torch.tensor(ours[minigrad_name(name)].detach().numpy()))

    def forward(self, src, tgt):
        src_pad, tgt_pad = src == self.pad_id, tgt == self.pad_id
        x = self.src_embed(src) * self.scale + self.table[:src.shape[1]]
        y = self.tgt_embed(tgt) * self.scale + self.table[:tgt.shape[1]]
        causal = torch.triu(torch.ones(tgt.shape[1], tgt.shape[1], dtype=torch.bool), 1)
        out = self.transformer(x, y, tgt_mask=causal, src_key_padding_mask=src_pad, tgt_key_padding_mask=tgt_pad,
                        memory_key_padding_mask=src_pad)
        return self.generator(out)


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-9), ("float32", 1e-4)])
@pytest.mark.parametrize("norm_first,activation", [(False, "relu"), (True, "relu"), (False, "gelu"), (True, "gelu")])
def test_logits_and_every_gradient_match_torch(dtype, tol, norm_first, activation):
    minigrad.manual_seed(0)
    model = Transformer(12, 11, d_model=16, n_heads=4, d_ff=24, n_encoder_layers=2, n_decoder_layers=2,
                        dropout=0.0, norm_first=norm_first, activation=activation, max_len=16)
    model.to(dtype=np.dtype(dtype))
    # Non-trivial LayerNorm and bias values, so that a swapped weight/bias cannot pass.
    rng = np.random.default_rng(1)
    with minigrad.no_grad():
        for parameter in model.parameters():
            if parameter.ndim == 1:
                parameter.copy_(rng.normal(1.0, 0.3, parameter.shape))
    reference = TorchReference(model, getattr(torch, dtype))

    src, tgt = np.array(SRC), np.array(TGT)
    projection = rng.standard_normal((3, 5, 11))
    logits = model(minigrad.tensor(src), minigrad.tensor(tgt))
    (logits * minigrad.tensor(projection, dtype=dtype)).sum().backward()
    torch_logits = reference(torch.tensor(src), torch.tensor(tgt))
    (torch_logits * torch.tensor(projection, dtype=getattr(torch, dtype))).sum().backward()

    assert logits.dtype == np.dtype(dtype)
    np.testing.assert_allclose(logits.detach().numpy(), torch_logits.detach().numpy(), rtol=tol, atol=tol)
    ours = dict(model.named_parameters())
    compared = 0
    for name, parameter in reference.named_parameters():
        expected = parameter.grad.numpy()
        got = ours[minigrad_name(name)].grad.numpy()
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol, err_msg=name)
        compared += 1
    assert compared == len(ours)
