"""Token embeddings scaled by sqrt(d_model), plus sinusoidal positions (section 3.4-3.5 of the paper).

    PE[pos, 2i]   = sin(pos / 10000^(2i / d_model))
    PE[pos, 2i+1] = cos(pos / 10000^(2i / d_model))

Positions count from 0. The table is a buffer (moves and casts with the model, is
not trained, is not saved: it is a pure function of max_len and d_model). During
incremental decoding the one new token sits at position `offset`, not 0.
"""
import math

import minigrad
import nn


def sinusoidal_table(max_len, d_model, dtype=None, device=None):
    """(max_len, d_model) table of sines (even columns) and cosines (odd columns); computed in float64."""
    xp = minigrad.backend.get_backend(device).xp
    position = xp.arange(max_len, dtype="float64")[:, None]                        # (L, 1)
    frequency = xp.exp(-math.log(10000.0) * xp.arange(0, d_model, 2) / d_model)   # (ceil(D/2),)
    angle = position * frequency                                                  # (L, ceil(D/2))
    table = xp.zeros((max_len, d_model), dtype="float64")
    table[:, 0::2] = xp.sin(angle)
    table[:, 1::2] = xp.cos(angle[:, :d_model // 2])
    return minigrad.tensor(table, dtype=dtype or minigrad.get_default_dtype(), device=device)


class PositionalEncoding(nn.Module):
    """x (B, T, D) -> dropout(x + PE[offset : offset + T])."""

    def __init__(self, d_model, max_len=512, dropout=0.1):
        super().__init__()
        self.max_len = max_len
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("table", sinusoidal_table(max_len, d_model), persistent=False)

    def forward(self, x, offset=0):
        length = x.shape[1]
        if offset + length > self.max_len:
            raise ValueError(f"sequence of length {offset + length} is longer than max_len={self.max_len}; "
                             "build the Transformer with a larger max_len (or cut the input)")
        return self.dropout(x + self.table[offset:offset + length])


class ScaledEmbedding(nn.Module):
    """Token ids (B, T) -> vectors (B, T, D) times sqrt(D), so they are not drowned by the positions (|PE| ~ 1)."""

    def __init__(self, vocab_size, d_model, pad_id=None):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.scale = math.sqrt(d_model)

    @property
    def weight(self):
        return self.embedding.weight

    def forward(self, ids):
        return self.embedding(ids) * self.scale
