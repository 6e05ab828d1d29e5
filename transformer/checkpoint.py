"""A training run's checkpoint: one file with everything needed to resume exactly, or to translate.

It holds the model, optimizer and schedule states, the vocabularies and tokenizers (BPE merges), the
model's config, the run's settings, the batch stream's position and minigrad's random states,
written with minigrad.save. Settings, tokenizers, data position and random states are stored as
JSON text, because they hold None, booleans and 128-bit generator states.

A checkpoint file is not trusted. minigrad.load refuses files that declare more than they hold;
here the run's own entries are checked for their kinds, and the model's configuration for sane,
consistent values before any model is built from it: positive sizes, d_model divisible by the
heads, the sizes of the vocabularies it was saved with, as many tensors and numbers as the file
holds for the model, and at most MAX_PARAMETERS numbers (parameters plus the positional table)
unless the caller allows more.
"""
from __future__ import annotations

import errno
import inspect
import json
from pathlib import Path

import minigrad
from minigrad.optim.optimizer import value_fits

from .batching import BatchStream
from .corpus import Corpus
from .data import Vocab
from .errors import UsageError
from .layers import ACTIVATIONS
from .model import Transformer
from .tokenizers import TOKENIZER_KINDS, Tokenizers, kind_name, tokenizers_from_dict, tokenizers_to_dict

CHECKPOINT_NAME = "last.ckpt"
MAX_PARAMETERS = 10**9  # numbers a checkpoint's model may declare (4 GB in float32) unless the caller raises it


def checkpoint_path(path: str | Path) -> Path:
    """A checkpoint file, or a run directory holding last.ckpt."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise UsageError(f"{path}: no checkpoint there")
    return path


def save_checkpoint(path: Path, model, optimizer, schedule, corpus: Corpus, settings: dict, step: int,
                    stream: BatchStream):
    """Everything needed to resume exactly, written to `path` (minigrad.save writes atomically, so a
    failed save leaves the previous checkpoint as it was)."""
    try:
        _save_state(path, model, optimizer, schedule, corpus, settings, step, stream)
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        raise UsageError(f"{path}: no space left on the device to save the checkpoint of step {step}; the previous "
                         "checkpoint is intact (saves are atomic): free some space, then --resume") from None


def _save_state(path, model, optimizer, schedule, corpus, settings, step, stream):
    minigrad.save({
        "format": "minigrad-translator", "version": 1,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "src_vocab": corpus.src_vocab.to_list(),
        "tgt_vocab": corpus.tgt_vocab.to_list(),
        "model_config": json.dumps(model.config),
        "settings": json.dumps(settings),
        "step": step,
        "data_position": json.dumps(stream.state_dict()),
        "minigrad_rng": json.dumps(minigrad.get_rng_state()),
        "tokenizers": json.dumps(tokenizers_to_dict(corpus.tokenizer)),
    }, str(path))


_JSON_ENTRIES = ("model_config", "settings", "data_position", "minigrad_rng")


def load_checkpoint(path: str | Path, max_parameters: int = MAX_PARAMETERS) -> dict:
    """The saved state, its JSON parts decoded, plus "path": the file it came from.

    Every entry is checked for its kind, and the model configuration as check_model_config checks it,
    so that what comes back can be restored without building a model the file does not hold.
    """
    path = checkpoint_path(path)
    try:
        state = minigrad.load(str(path))
    except Exception as error:  # a truncated, foreign or crafted file: say so in one line
        raise UsageError(f"{path}: not a readable checkpoint ({error})") from None
    if not isinstance(state, dict) or state.get("format") != "minigrad-translator":
        raise UsageError(f"{path}: not a train.py checkpoint")
    if state.get("version") != 1:
        raise UsageError(f"{path}: train.py checkpoint version {state.get('version')!r:.40}; this train.py reads "
                         "version 1")
    for key in ("model", "optimizer", "schedule", "src_vocab", "tgt_vocab", "step", *_JSON_ENTRIES):
        if key not in state:
            raise UsageError(f"{path}: not a complete train.py checkpoint (no {key!r})")
    problem = _entry_problem(state)
    if problem:
        raise UsageError(f"{path}: {problem}")
    for key in _JSON_ENTRIES:
        try:
            state[key] = json.loads(state[key])
        except (ValueError, RecursionError) as error:
            raise UsageError(f"{path}: {key!r} is not valid JSON ({error})") from None
        if key != "minigrad_rng" and not isinstance(state[key], dict):
            raise UsageError(f"{path}: {key!r} should be a JSON object, not {type(state[key]).__name__}")
    state["path"] = path
    state["tokenizers"] = _saved_tokenizers(state)
    _check_model(state, max_parameters)
    return state


def _saved_tokenizers(state: dict) -> Tokenizers:
    """The checkpoint's Tokenizers, checked against its settings' --tokenizer. A checkpoint written
    before BPE existed has no "tokenizers" entry: its word or char kind is in the settings alone."""
    path, kind = state["path"], state["settings"].get("tokenizer")
    if kind not in TOKENIZER_KINDS:
        raise UsageError(f"{path}: settings name tokenizer {kind!r:.40}, not one of {', '.join(TOKENIZER_KINDS)}")
    if "tokenizers" not in state:
        if kind == "bpe":
            raise UsageError(f"{path}: a --tokenizer bpe run, but the checkpoint holds no BPE merges ('tokenizers')")
        return Tokenizers(kind, kind)
    try:
        if not isinstance(state["tokenizers"], str):
            raise ValueError(f"it should be JSON text, not {type(state['tokenizers']).__name__}")
        tokenizers = tokenizers_from_dict(json.loads(state["tokenizers"]))
    except (ValueError, RecursionError) as error:
        raise UsageError(f"{path}: 'tokenizers' is malformed: {error}") from None
    if any(kind_name(side) != kind for side in tokenizers):
        raise UsageError(f"{path}: 'tokenizers' holds {'/'.join(map(kind_name, tokenizers))} tokenizers, but the "
                         f"settings say --tokenizer {kind}")
    return tokenizers


def _entry_problem(state: dict):
    """What is wrong with the kinds of a loaded checkpoint's entries, in words (None if nothing)."""
    if not isinstance(state["model"], dict):
        return f"'model' should be a dict of tensors, not {type(state['model']).__name__}"
    for key, value in state["model"].items():
        if not isinstance(key, str) or not isinstance(value, minigrad.Tensor):
            return f"'model' entry {key!r:.60} should be a tensor, not {type(value).__name__}"
    for key in ("optimizer", "schedule"):
        if not isinstance(state[key], dict):
            return f"{key!r} should be a dict, not {type(state[key]).__name__}"
    for key in ("src_vocab", "tgt_vocab"):
        if not isinstance(state[key], list) or not all(isinstance(token, str) for token in state[key]):
            return f"{key!r} should be a list of strings"
    if type(state["step"]) is not int or state["step"] < 0:
        return f"step {state['step']!r:.40} is not a step count (an int >= 0)"
    for key in _JSON_ENTRIES:
        if not isinstance(state[key], str):
            return f"{key!r} should be JSON text, not {type(state[key]).__name__}"
    return None


# -- the model's configuration ----------------------------------------------------------------------
_SIGNATURE = inspect.signature(Transformer.__init__).parameters
_POSITIVE = ("src_vocab_size", "tgt_vocab_size", "d_model", "n_heads", "d_ff", "max_len")
_COUNTS = ("n_encoder_layers", "n_decoder_layers")
_FLAGS = ("norm_first", "tie_generator", "share_embeddings")
_CHECKED = (*_POSITIVE, *_COUNTS, *_FLAGS, "dropout", "activation", "pad_id")


def check_model_config(config, max_parameters: int = MAX_PARAMETERS, model_state: dict | None = None,
                       vocab_sizes: tuple[int, int] | None = None) -> dict:
    """The complete Transformer config (defaults filled in) if `config` is sane; ValueError saying why not.

    Sane: only Transformer's settings, each of its kind (positive int sizes, int layer counts >= 0, bool
    flags, a dropout probability, a known activation, a pad id inside both vocabularies), d_model divisible
    by n_heads, one vocabulary size when the embeddings are shared; the (source, target) `vocab_sizes` and
    as many state tensors and numbers as `model_state` holds, if given; and at most `max_parameters`
    numbers, parameters plus positional table.
    """
    if not isinstance(config, dict):
        raise ValueError(f"model_config should be a JSON object, not {type(config).__name__}")
    for key in config:
        if key not in _SIGNATURE or key == "self":
            raise ValueError(f"model_config: unknown setting {key!r:.60}")
        if key not in _CHECKED:
            raise ValueError(f"model_config: setting {key!r} is one that transformer/checkpoint.py cannot check yet")
    for key in ("src_vocab_size", "tgt_vocab_size"):
        if key not in config:
            raise ValueError(f"model_config: no {key!r}")
    config = {key: config.get(key, _SIGNATURE[key].default) for key in _CHECKED}
    for key in _POSITIVE:
        if type(config[key]) is not int or config[key] < 1:
            raise ValueError(f"model_config: {key} {config[key]!r:.40} is not a positive int")
    for key in _COUNTS:
        if type(config[key]) is not int or config[key] < 0:
            raise ValueError(f"model_config: {key} {config[key]!r:.40} is not an int >= 0")
    for key in _FLAGS:
        if not isinstance(config[key], bool):
            raise ValueError(f"model_config: {key} {config[key]!r:.40} is not a bool")
    dropout = config["dropout"]
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
        raise ValueError(f"model_config: dropout {dropout!r:.40} is not a probability in [0, 1]")
    if config["activation"] not in ACTIVATIONS:
        raise ValueError(f"model_config: activation {config['activation']!r:.40} is not one of {sorted(ACTIVATIONS)}")
    if config["d_model"] % config["n_heads"]:
        raise ValueError(f"model_config: d_model {config['d_model']} is not divisible by n_heads {config['n_heads']}")
    sizes = config["src_vocab_size"], config["tgt_vocab_size"]
    if config["share_embeddings"] and sizes[0] != sizes[1]:
        raise ValueError(f"model_config: share_embeddings needs one vocabulary, but src_vocab_size {sizes[0]} and "
                         f"tgt_vocab_size {sizes[1]} differ")
    pad_id = config["pad_id"]
    if type(pad_id) is not int or not 0 <= pad_id < min(sizes):
        raise ValueError(f"model_config: pad_id {pad_id!r:.40} is not a token id of both vocabularies (sizes "
                         f"{sizes[0]} and {sizes[1]})")
    for key, size, side in zip(("src_vocab_size", "tgt_vocab_size"), vocab_sizes or (), ("source", "target")):
        if config[key] != size:
            raise ValueError(f"model_config: {key} {config[key]} but the checkpoint's {side} vocabulary has "
                             f"{size} tokens")
    parameters, tensors, elements = transformer_size(config)
    if model_state is not None:
        held = sum(tensor.numel() for tensor in model_state.values())
        if (len(model_state), held) != (tensors, elements):
            raise ValueError(f"model_config declares {parameters} parameters ({elements} numbers in {tensors} tensors "
                             f"of state), but the checkpoint holds {held} numbers in {len(model_state)} tensors")
    table = config["max_len"] * config["d_model"]
    if parameters + table > max_parameters:
        raise ValueError(f"model_config declares {parameters} parameters and a {config['max_len']}x{config['d_model']} "
                         f"positional table, {parameters + table} numbers in all, more than the {max_parameters} "
                         "allowed (pass max_parameters= to allow more)")
    return config


def transformer_size(config: dict) -> tuple[int, int, int]:
    """(parameters, state_dict tensors, state_dict numbers) of Transformer(**config), without building it.

    A tied generator shares the target embedding's weight: one parameter, two state_dict entries.
    tests/test_untrusted_checkpoints.py checks this against the model it describes.
    """
    d, d_ff, norm_first = config["d_model"], config["d_ff"], config["norm_first"]
    attention, feed_forward, norm = 4 * d * d + 4 * d, 2 * d * d_ff + d_ff + d, 2 * d
    encoder_layer, decoder_layer = attention + feed_forward + 2 * norm, 2 * attention + feed_forward + 3 * norm
    embeddings = 1 if config["share_embeddings"] else 2
    generator_weight = config["tgt_vocab_size"] * d
    parameters = (config["src_vocab_size"] * d + (0 if config["share_embeddings"] else generator_weight)
                  + config["n_encoder_layers"] * encoder_layer + config["n_decoder_layers"] * decoder_layer
                  + (2 * norm if norm_first else 0)
                  + (0 if config["tie_generator"] else generator_weight) + config["tgt_vocab_size"])
    tensors = (embeddings + 12 * config["n_encoder_layers"] + 18 * config["n_decoder_layers"]
               + (4 if norm_first else 0) + 2)
    return parameters, tensors, parameters + (generator_weight if config["tie_generator"] else 0)


def _check_model(state: dict, max_parameters: int):
    """check_model_config on a loaded state, with its vocabularies and model tensors, as one-line errors."""
    where = state.get("path", "checkpoint")
    try:
        check_model_config(state["model_config"], max_parameters, state["model"],
                           (len(state["src_vocab"]), len(state["tgt_vocab"])))
    except ValueError as error:
        raise UsageError(f"{where}: {error}") from None


def saved_vocabularies(state: dict) -> tuple[Vocab, Vocab]:
    """(source, target) vocabularies of a loaded checkpoint."""
    return Vocab.from_list(state["src_vocab"]), Vocab.from_list(state["tgt_vocab"])


def restore_model(state: dict, device: str, max_parameters: int = MAX_PARAMETERS):
    """(model in eval mode, source vocabulary, target vocabulary) of a loaded checkpoint.

    The configuration is checked (check_model_config) before the model is built."""
    _check_model(state, max_parameters)
    model = Transformer(**state["model_config"]).to(device)
    _restoring(state, model.load_state_dict, state["model"])
    model.eval()
    return (model, *saved_vocabularies(state))


def restore_training(state: dict, corpus: Corpus, model, optimizer, schedule, stream: BatchStream) -> int:
    """Put a loaded checkpoint's states back into a run built from its settings; returns its step.

    The corpus gets the vocabularies of the checkpoint, as saved, which are the ones the model was trained with.
    """
    _check_schedule_state(state, schedule.state_dict())
    corpus.src_vocab, corpus.tgt_vocab = saved_vocabularies(state)
    corpus.tokenizer = state["tokenizers"]
    _restoring(state, model.load_state_dict, state["model"])
    _restoring(state, optimizer.load_state_dict, state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    stream.load_state_dict(state["data_position"])
    minigrad.set_rng_state(state["minigrad_rng"])
    return state["step"]


def _restoring(state: dict, load, saved):
    """load(saved), a state that does not fit (shapes, kinds) reported as a one-line UsageError."""
    try:
        load(saved)
    except (RuntimeError, ValueError) as error:
        message = " ".join(str(error).split())
        raise UsageError(f"{state.get('path', 'checkpoint')}: {message}") from None


def _check_schedule_state(state: dict, own: dict):
    """A saved schedule state must have this schedule's keys, each the kind of value it has here
    (LRScheduler.load_state_dict takes whatever it is given into the schedule's attributes)."""
    where, saved = state.get("path", "checkpoint"), state["schedule"]
    for key in saved:
        if key not in own:
            raise UsageError(f"{where}: the schedule state has unknown key {key!r:.60}")
    for key, value in own.items():
        if key not in saved:
            raise UsageError(f"{where}: the schedule state has no {key!r}")
        if not value_fits(value, saved[key]):
            raise UsageError(f"{where}: the schedule state's {key} {saved[key]!r:.60} does not fit ({value!r} here)")
