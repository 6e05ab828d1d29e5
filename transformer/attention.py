"""Multi-head attention (section 3.2 of the paper).

    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O,
    head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V) = softmax(Q W_i^Q (K W_i^K)^T / sqrt(d_k) + mask) V W_i^V

Shapes (B batch, H heads, T queries, S keys, D = H * d_k):

    query (B, T, D), key/value (B, S, D)
      -> projections: one GEMM for q, k and v together in self-attention (D -> 3D),
         one for k and v together in cross-attention (D -> 2D)
      -> F.multi_head_attention: heads split (B, H, T, d_k), scores q k^T / sqrt(d_k) (B, H, T, S),
         masked softmax, dropout, weighted sum of the values, heads merged (B, T, D)
      -> output projection (B, T, D)

The parameters are laid out as torch.nn.MultiheadAttention's: `in_proj_weight` (3D, D) holds
the q, k and v projections stacked by rows (head h uses rows h*d_k:(h+1)*d_k of each block),
`in_proj_bias` (3D,), and `out_proj`.

Incremental decoding keeps the projected keys and values side by side, (B, S, 2D), in
`cache["kv"]`: the decoder's self-attention appends each new token's, cross-attention projects
the encoder's memory once. The heads are split inside F.multi_head_attention, at every call.
"""
import minigrad.functional as F
import nn
from minigrad import cat


class MultiHeadAttention(nn.Module):
    """Self-attention (`forward(x, x, ...)` with the same tensor) or cross-attention (queries from the decoder,
    keys and values from the encoder's memory)."""

    def __init__(self, d_model, n_heads, dropout=0.0):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.d_head, self.dropout = d_model, n_heads, d_model // n_heads, dropout
        projection = nn.Linear(d_model, 3 * d_model)
        self.in_proj_weight, self.in_proj_bias = projection.weight, projection.bias  # (3D, D), (3D,)
        self.out_proj = nn.Linear(d_model, d_model)
        self.reset_parameters()

    def reset_parameters(self):
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    # -- projections ---------------------------------------------------------------------------
    def project_self(self, x):
        """A self-attention input x (B, T, D) -> q, k, v side by side (B, T, 3D): one (D -> 3D) GEMM."""
        return F.linear(x, self.in_proj_weight, self.in_proj_bias)

    def project_query(self, x):
        """Decoder states (B, T, D) -> queries (B, T, D), with the first block of rows."""
        width = self.d_model
        return F.linear(x, self.in_proj_weight[:width], self.in_proj_bias[:width])

    def project_key_value(self, memory):
        """The encoder's memory (B, S, D) -> k, v side by side (B, S, 2D): one (D -> 2D) GEMM, once per source
        when decoding."""
        width = self.d_model
        return F.linear(memory, self.in_proj_weight[width:], self.in_proj_bias[width:])

    # -- attention ----------------------------------------------------------------------------
    def forward(self, query, key_value, mask=None, cache=None):
        """query (B,T,D); key_value (B,S,D) (pass `query` itself for self-attention); mask (..,T,S), True = blocked.

        With a `cache` dict (incremental decoding), self-attention appends this step's keys/values to the
        cached ones, and cross-attention projects the memory's keys/values only once.
        Returns (output (B,T,D), weights (B,H,T,S)).
        """
        if key_value is query:
            queries, keys_values = self.project_self(query), None  # q, k, v side by side
            if cache is not None:  # this step's keys/values join the earlier tokens'
                queries, keys_values = queries[..., :self.d_model], queries[..., self.d_model:]
                if "kv" in cache:
                    keys_values = cat([cache["kv"], keys_values], dim=1)
                cache["kv"] = keys_values
        else:
            queries = self.project_query(query)
            if cache is None:
                keys_values = self.project_key_value(key_value)
            else:
                if "kv" not in cache:
                    cache["kv"] = self.project_key_value(key_value)
                keys_values = cache["kv"]
        context, weights = F.multi_head_attention(queries, keys_values, self.n_heads, mask, self.dropout,
                                                  self.training)
        return self.out_proj(context), weights

    def extra_repr(self):
        return f"d_model={self.d_model}, n_heads={self.n_heads}, dropout={self.dropout}"
