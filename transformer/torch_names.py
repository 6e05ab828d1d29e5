"""The name map between our Transformer's state_dict and PyTorch's layout of the same model.

The PyTorch layout is a module with four children (what `TORCH_LAYOUT` lists):

    src_embed    torch.nn.Embedding(src_vocab_size, d_model, padding_idx=pad_id)
    tgt_embed    torch.nn.Embedding(tgt_vocab_size, d_model, padding_idx=pad_id)
    transformer  torch.nn.Transformer(**torch_transformer_arguments(config)), batch_first=True
    generator    torch.nn.Linear(d_model, tgt_vocab_size)

and a forward that does what ours does around torch.nn.Transformer, none of it weights:
embeddings times sqrt(d_model), plus the sinusoidal table of transformer/positional.py
(positions from 0), key-padding masks from pad_id for the source, the target and the memory,
and a causal target mask (True = blocked).

Names: our sub-modules are named as torch's (self_attn.in_proj_weight, multihead_attn,
norm1..3), with two differences that the map undoes:
    src_embed.embedding.weight               <-> src_embed.weight          (and tgt_embed)
    encoder.layers.0.feed_forward.linear1.b  <-> transformer.encoder.layers.0.linear1.b  (linear2 too)
    everything else in the stacks X          <-> transformer.X
    generator.weight / generator.bias        <-> the same

Final norms: torch.nn.Transformer ends each stack with a LayerNorm (transformer.encoder.norm,
transformer.decoder.norm) in both modes. Pre-LN (norm_first=True) models have them too and they
map by name. Our post-LN model (the paper's) has none, and no LayerNorm weights can stand in for
one (LayerNorm with weight 1 and bias 0 still re-normalises its input, it is no identity), so the
map carries no final norm for post-LN, and the PyTorch module must have identity there:
`module.transformer.encoder.norm = module.transformer.decoder.norm = torch.nn.Identity()` before
loading (it then has no weights for them, and strict loading fits). A post-LN PyTorch state
that has final-norm weights is refused by `from_torch`, as it is not a model ours can be.

Shared weights: with share_embeddings our state has src_embed only, torch's has both
embeddings (one module under two names); with tie_generator both sides list generator.weight
and tgt_embed's weight. `from_torch` checks that what should be one tensor is one.

The values (NumPy arrays, torch or minigrad tensors) pass through untouched.
"""
import re

TORCH_CORE = "transformer."   # the torch.nn.Transformer child of the PyTorch layout
TORCH_LAYOUT = ("src_embed", "tgt_embed", "transformer", "generator")
_EMBEDDINGS = ("src_embed.", "tgt_embed.")
_FINAL_NORMS = (TORCH_CORE + "encoder.norm.", TORCH_CORE + "decoder.norm.")


def torch_name(name: str) -> str:
    """One of our state_dict names -> its name in the PyTorch layout."""
    if name.startswith(_EMBEDDINGS):
        prefix, rest = name.split(".", 1)
        if not rest.startswith("embedding."):
            raise KeyError(f"{name}: not a name of our Transformer's state_dict")
        return f"{prefix}.{rest[len('embedding.'):]}"
    if name.startswith("generator."):
        return name
    if name.startswith(("encoder.", "decoder.")):
        return TORCH_CORE + name.replace(".feed_forward.", ".", 1)
    raise KeyError(f"{name}: not a name of our Transformer's state_dict")


def minigrad_name(name: str) -> str:
    """A name of the PyTorch layout -> ours (the inverse of torch_name)."""
    if name.startswith(_EMBEDDINGS):
        prefix, rest = name.split(".", 1)
        return f"{prefix}.embedding.{rest}"
    if name.startswith("generator."):
        return name
    if name.startswith(TORCH_CORE):
        return re.sub(r"\.(linear[12])\.", r".feed_forward.\1.", name[len(TORCH_CORE):], count=1)
    raise KeyError(f"{name}: not a name of the PyTorch layout {TORCH_LAYOUT}")


def torch_transformer_arguments(config: dict) -> dict:
    """Keyword arguments of the torch.nn.Transformer that holds a model of our `config` (Transformer.config)."""
    return dict(d_model=config["d_model"], nhead=config["n_heads"], num_encoder_layers=config["n_encoder_layers"],
                num_decoder_layers=config["n_decoder_layers"], dim_feedforward=config["d_ff"],
                dropout=config["dropout"], activation=config["activation"], batch_first=True,
                norm_first=config["norm_first"])


def to_torch(state: dict, config: dict) -> dict:
    """Our state_dict (names -> values) -> the PyTorch layout's, for a model of `config`."""
    torch_state = {torch_name(name): value for name, value in state.items()}
    if config["share_embeddings"]:  # one module on our side, two names on torch's
        torch_state["tgt_embed.weight"] = torch_state["src_embed.weight"]
    return torch_state


def from_torch(state: dict, config: dict) -> dict:
    """A state_dict in the PyTorch layout -> ours, for a model of `config` (ValueError if it cannot be one)."""
    state = dict(state)
    if not config["norm_first"]:
        norms = [name for name in state if name.startswith(_FINAL_NORMS)]
        if norms:
            raise ValueError(f"{', '.join(norms)}: a post-LN model (norm_first=False) has no final norms; replace "
                             "them by torch.nn.Identity() in the PyTorch module (its final LayerNorms are no "
                             "identity, whatever their weights)")
    if config["share_embeddings"]:
        _check_same(state, "src_embed.weight", "tgt_embed.weight", "share_embeddings")
        del state["tgt_embed.weight"]
    if config["tie_generator"]:
        _check_same(state, "tgt_embed.weight" if "tgt_embed.weight" in state else "src_embed.weight",
                    "generator.weight", "tie_generator")
    return {minigrad_name(name): value for name, value in state.items()}


def _check_same(state, first, second, option):
    if first in state and second in state and bool((state[first] != state[second]).any()):
        raise ValueError(f"{option}: {first} and {second} should be one tensor, but they differ")
