"""transformer: the encoder-decoder of "Attention Is All You Need", built from nn and minigrad."""
from .masks import causal_mask, padding_mask  # noqa: F401
from .model import Transformer  # noqa: F401
from .decoding import Hypothesis, beam_search, greedy_decode  # noqa: F401
from .safetensors_io import load_safetensors, save_safetensors  # noqa: F401
