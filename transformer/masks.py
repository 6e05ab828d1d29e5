"""Attention masks as broadcastable bool tensors, True = blocked (as torch.nn.MultiheadAttention's
bool masks; torch's and minigrad's F.scaled_dot_product_attention take True = allowed instead).

They are built once per forward pass and broadcast over heads (and queries), never
repeated per head:

    padding_mask(src, pad_id)                 (B, 1, 1, S)  key j of sentence b is padding
    causal_mask(T, device)                    (T, T)        key j lies in query i's future (j > i)
    padding_mask(tgt, pad_id) | causal_mask   (B, 1, T, T)  the decoder's self-attention mask
"""
import minigrad


def padding_mask(ids, pad_id):
    """(B, S) token ids -> (B, 1, 1, S) bool, True where the token is padding (a key nobody may attend to)."""
    if ids.ndim != 2:
        raise ValueError(f"padding_mask: expected (batch, length) ids, got shape {tuple(ids.shape)}")
    batch, length = ids.shape
    return (ids == pad_id).reshape(batch, 1, 1, length)


def causal_mask(T, device=None):
    """(T, T) bool, True above the diagonal: query i may look at keys 0..i only."""
    position = minigrad.arange(T, device=device)
    return position.unsqueeze(0) > position.unsqueeze(1)  # [i, j] = j > i
