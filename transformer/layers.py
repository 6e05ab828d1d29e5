"""Encoder and decoder layers (section 3.1 of the paper), and the stacks made of them.

Each sub-layer (attention or feed-forward) is wrapped in a residual connection and a
LayerNorm, in one of two orders:

    post-LN (norm_first=False, the paper and torch's default):  x = norm(x + dropout(sublayer(x)))
    pre-LN  (norm_first=True, the Annotated Transformer):       x = x + dropout(sublayer(norm(x)))

The post-LN exit is one function, F.dropout_add_layer_norm (`residual_exit` below), and the
feed-forward block's relu and dropout are F.relu_dropout: each has a reference composition of
primitive ops in minigrad.functional and a fused kernel beside it.

A pre-LN stack leaves its output un-normalised, so it ends with a final LayerNorm;
a post-LN stack already ends in a norm and, as in the paper, has no extra one
(torch.nn.Transformer adds one in both modes; see docs/transformer.md).

Sub-module names follow torch.nn.TransformerEncoderLayer / TransformerDecoderLayer
(self_attn, multihead_attn, linear1, linear2, norm1..3) so weights map one to one.
"""
import minigrad.functional as F
import nn

from .attention import MultiHeadAttention

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


def _activation(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


def residual_exit(x, sublayer_output, dropout, norm):
    """norm(x + dropout(sublayer_output)), the post-LN exit of a sub-layer, with the two modules' settings
    (their forward methods, and hooks on them, are not called)."""
    return F.dropout_add_layer_norm(sublayer_output, x, dropout.p, norm.normalized_shape, norm.weight, norm.bias,
                                    norm.eps, training=dropout.training)


class FeedForward(nn.Module):
    """Position-wise FFN(x) = linear2(dropout(act(linear1(x)))): (B, T, D) -> (B, T, d_ff) -> (B, T, D).

    With relu, dropout(relu(.)) is one call, F.relu_dropout, with the dropout module's settings."""

    def __init__(self, d_model, d_ff, dropout, activation):
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)
        self.activation = _activation(activation)

    def forward(self, x):
        hidden = self.linear1(x)
        if self.activation is F.relu:
            hidden = F.relu_dropout(hidden, self.dropout.p, self.dropout.training)
        else:
            hidden = self.dropout(self.activation(hidden))
        return self.linear2(hidden)


class EncoderLayer(nn.Module):
    """Self-attention over the source, then the feed-forward block."""

    def __init__(self, d_model, n_heads, d_ff, dropout=0.1, activation="relu", norm_first=False):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.feed_forward = FeedForward(d_model, d_ff, dropout, activation)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x, src_mask):
        """x (B, S, D), src_mask (B, 1, 1, S) -> (B, S, D) and the attention weights (B, H, S, S)."""
        if self.norm_first:
            h = self.norm1(x)
            attended, weights = self.self_attn(h, h, src_mask)
            x = x + self.dropout1(attended)
            x = x + self.dropout2(self.feed_forward(self.norm2(x)))
        else:
            attended, weights = self.self_attn(x, x, src_mask)
            x = residual_exit(x, attended, self.dropout1, self.norm1)
            x = residual_exit(x, self.feed_forward(x), self.dropout2, self.norm2)
        return x, weights


class DecoderLayer(nn.Module):
    """Masked self-attention over the target prefix, cross-attention over the encoder output, feed-forward."""

    def __init__(self, d_model, n_heads, d_ff, dropout=0.1, activation="relu", norm_first=False):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.multihead_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.feed_forward = FeedForward(d_model, d_ff, dropout, activation)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout1, self.dropout2, self.dropout3 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, y, memory, tgt_mask, src_mask, cache=None):
        """y (B, T, D), memory (B, S, D), tgt_mask (B, 1, T, T), src_mask (B, 1, 1, S) -> (B, T, D), weights.

        `cache` (a dict, incremental decoding) holds this layer's self- and cross-attention caches,
        cache["self"] and cache["cross"], each with the projected keys/values side by side in "kv".
        """
        self_cache = cross_cache = None
        if cache is not None:
            self_cache, cross_cache = cache.setdefault("self", {}), cache.setdefault("cross", {})
        if self.norm_first:
            h = self.norm1(y)
            attended, self_weights = self.self_attn(h, h, tgt_mask, self_cache)
            y = y + self.dropout1(attended)
            attended, cross_weights = self.multihead_attn(self.norm2(y), memory, src_mask, cross_cache)
            y = y + self.dropout2(attended)
            y = y + self.dropout3(self.feed_forward(self.norm3(y)))
        else:
            attended, self_weights = self.self_attn(y, y, tgt_mask, self_cache)
            y = residual_exit(y, attended, self.dropout1, self.norm1)
            attended, cross_weights = self.multihead_attn(y, memory, src_mask, cross_cache)
            y = residual_exit(y, attended, self.dropout2, self.norm2)
            y = residual_exit(y, self.feed_forward(y), self.dropout3, self.norm3)
        return y, self_weights, cross_weights


class Encoder(nn.Module):
    """A stack of encoder layers (plus a final LayerNorm when pre-LN)."""

    def __init__(self, n_layers, d_model, n_heads, d_ff, dropout, activation, norm_first):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(d_model, n_heads, d_ff, dropout, activation, norm_first)
                                    for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model) if norm_first else None

    def forward(self, x, src_mask, attention=None):
        """x (B, S, D) -> memory (B, S, D); appends each layer's weights to the `attention` list if given."""
        for layer in self.layers:
            x, weights = layer(x, src_mask)
            if attention is not None:
                attention.append(weights.detach())
        return self.norm(x) if self.norm is not None else x


class Decoder(nn.Module):
    """A stack of decoder layers (plus a final LayerNorm when pre-LN)."""

    def __init__(self, n_layers, d_model, n_heads, d_ff, dropout, activation, norm_first):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(d_model, n_heads, d_ff, dropout, activation, norm_first)
                                    for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model) if norm_first else None

    def forward(self, y, memory, tgt_mask, src_mask, cache=None, attention=None):
        """y (B, T, D) -> (B, T, D). `cache`: a list with one dict per layer; `attention`: dict of lists."""
        for index, layer in enumerate(self.layers):
            y, self_weights, cross_weights = layer(y, memory, tgt_mask, src_mask,
                                                   cache[index] if cache is not None else None)
            if attention is not None:
                attention["decoder"].append(self_weights.detach())
                attention["cross"].append(cross_weights.detach())
        return self.norm(y) if self.norm is not None else y
