"""A training run's checkpoint: one file with everything needed to resume exactly, or to translate.

It holds the model, optimizer and schedule states, the vocabularies, the model's config, the run's
settings, the batch stream's position and minigrad's random states, written with minigrad.save.
Settings, data position and random states are stored as JSON text, because they hold None,
booleans and 128-bit generator states.
"""
from __future__ import annotations

import json
from pathlib import Path

import minigrad

from .batching import BatchStream
from .corpus import Corpus
from .data import Vocab
from .errors import UsageError
from .model import Transformer

CHECKPOINT_NAME = "last.ckpt"


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
    """Everything needed to resume exactly, written to `path` (minigrad.save writes atomically)."""
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
    }, str(path))


def load_checkpoint(path: str | Path) -> dict:
    """The saved state, its JSON parts decoded, plus "path": the file it came from."""
    path = checkpoint_path(path)
    try:
        state = minigrad.load(str(path))
    except Exception as error:  # a truncated or foreign file: say so in one line
        raise UsageError(f"{path}: not a readable checkpoint ({error})") from None
    if not isinstance(state, dict) or state.get("format") != "minigrad-translator":
        raise UsageError(f"{path}: not a train.py checkpoint")
    for key in ("model_config", "settings", "data_position", "minigrad_rng"):
        state[key] = json.loads(state[key])
    state["path"] = path
    return state


def saved_vocabularies(state: dict) -> tuple[Vocab, Vocab]:
    """(source, target) vocabularies of a loaded checkpoint."""
    return Vocab.from_list(state["src_vocab"]), Vocab.from_list(state["tgt_vocab"])


def restore_model(state: dict, device: str):
    """(model in eval mode, source vocabulary, target vocabulary) of a loaded checkpoint."""
    model = Transformer(**state["model_config"]).to(device)
    model.load_state_dict(state["model"])
    model.eval()
    return (model, *saved_vocabularies(state))


def restore_training(state: dict, corpus: Corpus, model, optimizer, schedule, stream: BatchStream) -> int:
    """Put a loaded checkpoint's states back into a run built from its settings; returns its step.

    The corpus gets the vocabularies of the checkpoint, as saved, which are the ones the model was trained with.
    """
    corpus.src_vocab, corpus.tgt_vocab = saved_vocabularies(state)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    stream.load_state_dict(state["data_position"])
    minigrad.set_rng_state(state["minigrad_rng"])
    return state["step"]
