"""Our Transformer translator rebuilt in PyTorch, with our weights, and trained with train.py's recipe:
the reference trainer of benchmarks/time_to_accuracy.py.

The module is transformer/torch_names.py's PyTorch layout (src_embed, tgt_embed, transformer,
generator), so our state_dict goes in with `to_torch` and comes back with `from_torch`; its forward
does what our model does around torch.nn.Transformer: embeddings times sqrt(d_model), the
sinusoidal positions, dropout, the padding and causal masks. The recipe is train.py's: Adam
(0.9, 0.98, eps 1e-9) under the paper's warmup schedule, label smoothing, gradient clipping.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from transformer.optimizer import peak_rate
from transformer.positional import sinusoidal_table
from transformer.torch_names import from_torch, to_torch, torch_transformer_arguments


class TorchTranslator(torch.nn.Module):
    """A model of our `config` (Transformer.config) in the PyTorch layout, holding our model's weights."""

    def __init__(self, config: dict, state: dict):
        super().__init__()
        if config["tie_generator"] or config["share_embeddings"]:
            raise ValueError("TorchTranslator: tied or shared weights are not built here (train.py uses neither)")
        d_model, self.pad_id = config["d_model"], config["pad_id"]
        self.scale = math.sqrt(d_model)
        self.src_embed = torch.nn.Embedding(config["src_vocab_size"], d_model, padding_idx=self.pad_id)
        self.tgt_embed = torch.nn.Embedding(config["tgt_vocab_size"], d_model, padding_idx=self.pad_id)
        with warnings.catch_warnings():     # "enable_nested_tensor is True, but ... norm_first": irrelevant
            warnings.simplefilter("ignore")
            self.transformer = torch.nn.Transformer(**torch_transformer_arguments(config))
        if not config["norm_first"]:        # our post-LN stacks end without a LayerNorm (see torch_names)
            self.transformer.encoder.norm = self.transformer.decoder.norm = torch.nn.Identity()
        self.generator = torch.nn.Linear(d_model, config["tgt_vocab_size"])
        self.dropout = torch.nn.Dropout(config["dropout"])
        table = sinusoidal_table(config["max_len"], d_model).numpy()
        self.register_buffer("positions", torch.from_numpy(np.array(table)), persistent=False)
        self.load_state_dict({name: torch.from_numpy(np.array(value.numpy() if hasattr(value, "numpy") else value))
                              for name, value in to_torch(state, config).items()})

    def embed(self, embedding, ids):
        return self.dropout(embedding(ids) * self.scale + self.positions[:ids.shape[1]])

    def forward(self, src, tgt_in):
        """src (B, S), tgt_in (B, T) int64 ids -> logits (B, T, tgt_vocab)."""
        src_pad, tgt_pad = src == self.pad_id, tgt_in == self.pad_id
        causal = torch.triu(torch.ones(tgt_in.shape[1], tgt_in.shape[1], dtype=torch.bool), 1)
        hidden = self.transformer(self.embed(self.src_embed, src), self.embed(self.tgt_embed, tgt_in),
                                  tgt_mask=causal, src_key_padding_mask=src_pad, tgt_key_padding_mask=tgt_pad,
                                  memory_key_padding_mask=src_pad)
        return self.generator(hidden)

    def our_state(self, config: dict) -> dict:
        """The weights as our state_dict (names -> NumPy arrays), for a model of `config`."""
        return {name: value.detach().numpy().copy()
                for name, value in from_torch(self.state_dict(), config).items()}


class TorchTrainer:
    """One update per call, as train.py's train_step: forward, label-smoothed loss, backward, clip, Adam."""

    def __init__(self, model: TorchTranslator, settings: dict):
        self.model, self.settings = model, settings
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1.0, betas=(0.9, 0.98), eps=1e-9)
        d_model, warmup = settings["d_model"], settings["warmup"]
        factor = peak_rate(settings) / (d_model ** -0.5 * warmup ** -0.5)
        if settings["schedule"] != "noam":
            raise ValueError("TorchTrainer: only the paper's schedule (--schedule noam, train.py's default)")
        # the rate of update n (from 1), as minigrad's NoamLR; LambdaLR passes n - 1
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: factor * d_model ** -0.5 * min((step + 1) ** -0.5,
                                                                        (step + 1) * warmup ** -1.5))
        self.loss = torch.nn.CrossEntropyLoss(ignore_index=model.pad_id, label_smoothing=settings["label_smoothing"])
        model.train()

    def step(self, batch) -> float:
        src, tgt_in, tgt_out = (torch.from_numpy(np.asarray(ids, dtype=np.int64))
                                for ids in (batch.src, batch.tgt_in, batch.tgt_out))
        logits = self.model(src, tgt_in)
        loss = self.loss(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1))
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.settings["clip"] or math.inf)
        self.optimizer.step()
        self.schedule.step()
        return loss.item()
