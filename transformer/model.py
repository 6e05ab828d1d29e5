"""The encoder-decoder Transformer of "Attention Is All You Need", end to end.

    src (B, S) ids --ScaledEmbedding+PositionalEncoding--> (B, S, D) --Encoder--> memory (B, S, D)
    tgt_in (B, T) ids --ScaledEmbedding+PositionalEncoding--> (B, T, D) --Decoder(memory)--> (B, T, D)
        --generator--> logits (B, T, tgt_vocab)

Masks are made here, once per forward, from `pad_id` (see masks.py) and broadcast
over heads by every layer.
"""
import minigrad
import nn

from .layers import Decoder, Encoder
from .masks import causal_mask, padding_mask
from .positional import PositionalEncoding, ScaledEmbedding


class Transformer(nn.Module):
    def __init__(self, src_vocab_size, tgt_vocab_size, d_model=512, n_heads=8, d_ff=2048, n_encoder_layers=6,
                 n_decoder_layers=6, dropout=0.1, norm_first=False, activation="relu", tie_generator=False,
                 share_embeddings=False, max_len=512, pad_id=0):
        super().__init__()
        self.config = dict(src_vocab_size=src_vocab_size, tgt_vocab_size=tgt_vocab_size, d_model=d_model,
                           n_heads=n_heads, d_ff=d_ff, n_encoder_layers=n_encoder_layers,
                           n_decoder_layers=n_decoder_layers, dropout=dropout, norm_first=norm_first,
                           activation=activation, tie_generator=tie_generator, share_embeddings=share_embeddings,
                           max_len=max_len, pad_id=pad_id)
        if share_embeddings and src_vocab_size != tgt_vocab_size:
            raise ValueError(f"share_embeddings needs one vocabulary for both sides, but src_vocab_size="
                             f"{src_vocab_size} and tgt_vocab_size={tgt_vocab_size}")
        self.d_model, self.pad_id, self.max_len = d_model, pad_id, max_len
        self.src_embed = ScaledEmbedding(src_vocab_size, d_model, pad_id)
        self.tgt_embed = self.src_embed if share_embeddings else ScaledEmbedding(tgt_vocab_size, d_model, pad_id)
        self.positional = PositionalEncoding(d_model, max_len, dropout)
        self.encoder = Encoder(n_encoder_layers, d_model, n_heads, d_ff, dropout, activation, norm_first)
        self.decoder = Decoder(n_decoder_layers, d_model, n_heads, d_ff, dropout, activation, norm_first)
        self.generator = nn.Linear(d_model, tgt_vocab_size)
        self.reset_parameters()
        if tie_generator:
            self.generator.weight = self.tgt_embed.weight  # one Parameter, two uses: (V, D) either way

    def reset_parameters(self):
        """Xavier-uniform on every matrix (the Annotated Transformer's recipe); padding rows back to zero."""
        for parameter in self.parameters():
            if parameter.ndim > 1:
                nn.init.xavier_uniform_(parameter)
        with minigrad.no_grad():
            for embed in (self.src_embed, self.tgt_embed):
                embed.weight[self.pad_id] = 0

    # -- the three entry points --------------------------------------------------------------
    def encode(self, src, src_mask=None, attention=None):
        """src (B, S) ids -> memory (B, S, D)."""
        if src_mask is None:
            src_mask = padding_mask(src, self.pad_id)
        return self.encoder(self.positional(self.src_embed(src)), src_mask, attention)

    def decode_hidden(self, tgt_in, memory, src, src_mask=None, attention=None):
        """tgt_in (B, T) ids, memory (B, S, D), src (B, S) ids -> decoder output (B, T, D), before the generator."""
        if src_mask is None:
            src_mask = padding_mask(src, self.pad_id)
        tgt_mask = padding_mask(tgt_in, self.pad_id) | causal_mask(tgt_in.shape[1], tgt_in.device)  # (B,1,T,T)
        return self.decoder(self.positional(self.tgt_embed(tgt_in)), memory, tgt_mask, src_mask, attention=attention)

    def decode(self, tgt_in, memory, src, src_mask=None, attention=None):
        """tgt_in (B, T) ids, memory (B, S, D), src (B, S) ids -> logits (B, T, tgt_vocab)."""
        return self.generator(self.decode_hidden(tgt_in, memory, src, src_mask, attention))

    def forward(self, src, tgt_in, return_attention=False):
        """src (B, S), tgt_in (B, T) int64 ids -> logits (B, T, tgt_vocab) [, attention weights by layer]."""
        attention = {"encoder": [], "decoder": [], "cross": []} if return_attention else None
        src_mask = padding_mask(src, self.pad_id)                                            # (B, 1, 1, S)
        memory = self.encode(src, src_mask, attention["encoder"] if attention is not None else None)
        logits = self.decode(tgt_in, memory, src, src_mask, attention)
        return (logits, attention) if return_attention else logits

    # -- incremental decoding ------------------------------------------------------------------
    def new_cache(self):
        """Empty per-layer key/value caches for `decode_step`."""
        return [{} for _ in self.decoder.layers]

    def decode_step(self, tokens, memory, src_mask, cache, position):
        """One decoding step: tokens (B,) at `position` -> logits (B, tgt_vocab).

        Earlier positions live in `cache` (their projected self-attention keys/values, and the
        memory's cross-attention ones), so the step costs one token's work; the new token needs
        no causal mask (every cached key is in its past).
        """
        y = self.positional(self.tgt_embed(tokens.reshape(-1, 1)), offset=position)  # (B, 1, D)
        y = self.decoder(y, memory, None, src_mask, cache=cache)
        return self.generator(y).reshape(tokens.shape[0], -1)

    @staticmethod
    def reorder_cache(cache, index):
        """Keep cache rows `index` (B',) ids into the batch: how beam search follows the surviving beams.

        Only the self-attention keys/values are reordered: the cross-attention ones are the memory's,
        the same for every beam of a sentence, and beam search moves beams only within a sentence."""
        for layer in cache:
            entry = layer.get("self")
            if entry:
                entry["kv"] = entry["kv"][index]
