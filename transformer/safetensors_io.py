"""A trained translator as one .safetensors file: the weights, and in its metadata all else it needs to translate.

The tensors are the model's state_dict, by name (with tie_generator the tied matrix is listed under both its
names, as state_dict lists it). The metadata, a str -> str dict in the safetensors format, holds JSON:

    format          "minigrad-translator"
    format_version  "1"
    model_config    Transformer.config (what Transformer(**config) rebuilds)
    src_vocab       the source vocabulary, every token in id order (Vocab.to_list)
    tgt_vocab       the target vocabulary, the same way
    tokenizer       only if the writer passed one: its string as given, opaque here; `train.py export`
                    writes tokenizers.tokenizers_to_dict as JSON: each side's kind ("word", "char")
                    or its BPE alphabet and merges, {"joint": ...} for one BPE on both sides

Reading and writing go through the `safetensors` package's NumPy interface, an optional extra
(`pip install ".[interop]"`). To load the weights into PyTorch, see torch_names.py.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple, Optional

from .checkpoint import check_model_config
from .data import Vocab
from .errors import UsageError
from .model import Transformer

FORMAT = "minigrad-translator"
FORMAT_VERSION = "1"


class MissingExtraError(UsageError, ImportError):
    """The safetensors package is not installed: a usage error (one line from train.py) and an ImportError."""


class Exported(NamedTuple):
    """What `load_safetensors` returns."""

    model: Transformer          # in eval mode, with the file's dtype, on the device asked for
    config: dict                # its Transformer.config
    src_vocab: Vocab
    tgt_vocab: Vocab
    tokenizer: Optional[str]    # the writer's tokenizer string, or None


def _safetensors():
    """(safe_open, save_file) of the safetensors package, or one clear line saying how to get it."""
    try:
        from safetensors import safe_open
        from safetensors.numpy import save_file
    except ImportError:
        raise MissingExtraError('reading and writing .safetensors files needs the safetensors package: '
                                'pip install ".[interop]"') from None
    return safe_open, save_file


def check_available():
    """Nothing if the safetensors package is installed; MissingExtraError (one line) if not."""
    _safetensors()


def _tokens(vocab) -> list:
    return vocab.to_list() if isinstance(vocab, Vocab) else list(vocab)


def save_safetensors(path: str | Path, model: Transformer, src_vocab, tgt_vocab, tokenizer: str | None = None):
    """Write `model`'s weights and, as metadata, its config, both vocabularies (Vocab objects or token lists
    in id order) and the optional `tokenizer` string to `path`."""
    _, save_file = _safetensors()
    if tokenizer is not None and not isinstance(tokenizer, str):
        raise TypeError(f"tokenizer must be a string (JSON, say), got {type(tokenizer).__name__}")
    tensors = {}
    for name, tensor in model.state_dict().items():
        array = tensor.numpy()  # a host array (a copy from a GPU)
        tensors[name] = array if array.flags["C_CONTIGUOUS"] else array.copy()  # safetensors writes raw memory
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "model_config": json.dumps(model.config),
                "src_vocab": json.dumps(_tokens(src_vocab)), "tgt_vocab": json.dumps(_tokens(tgt_vocab))}
    if tokenizer is not None:
        metadata["tokenizer"] = tokenizer
    save_file(tensors, str(path), metadata=metadata)


def read_safetensors(path: str | Path) -> tuple[dict, dict]:
    """(tensors as NumPy arrays by name, metadata) of any .safetensors file; UsageError if it is not one."""
    safe_open, _ = _safetensors()
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            return {name: handle.get_tensor(name) for name in handle.keys()}, dict(handle.metadata() or {})
    except Exception as error:  # a truncated or foreign file: say so in one line
        raise UsageError(f"{path}: not a readable .safetensors file ({error})") from None


def load_safetensors(path: str | Path, device: str = "cpu") -> Exported:
    """The translator written by `save_safetensors`: the model (eval mode), its config, both vocabularies
    and the tokenizer string (None if none was written)."""
    tensors, metadata = read_safetensors(path)
    if metadata.get("format") != FORMAT:
        raise UsageError(f"{path}: a .safetensors file, but not a minigrad translator (no format={FORMAT!r} in its "
                         "metadata)")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise UsageError(f"{path}: format_version {metadata.get('format_version')!r}, this minigrad reads "
                         f"{FORMAT_VERSION!r}")
    try:
        config = json.loads(metadata["model_config"])
        src_vocab = Vocab.from_list(json.loads(metadata["src_vocab"]))
        tgt_vocab = Vocab.from_list(json.loads(metadata["tgt_vocab"]))
        check_model_config(config, vocab_sizes=(len(src_vocab), len(tgt_vocab)))  # before building anything
        if "generator.weight" not in tensors:
            raise ValueError("no tensor 'generator.weight'")
        model = Transformer(**config).to(device=device, dtype=tensors["generator.weight"].dtype)
        model.load_state_dict(tensors)
    except KeyError as error:
        raise UsageError(f"{path}: no {error} in its metadata") from None
    except (ValueError, TypeError, RuntimeError, RecursionError) as error:
        raise UsageError(f"{path}: {' '.join(str(error).split())}") from None
    model.eval()
    return Exported(model, config, src_vocab, tgt_vocab, metadata.get("tokenizer"))
