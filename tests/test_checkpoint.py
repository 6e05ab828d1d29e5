"""Checkpoints of a run (transformer/checkpoint.py): a restored run goes on exactly as the saved one
would have, a restored model translates as the saved one did, and bad paths say so in one line."""
import numpy as np
import pytest

import minigrad
from transformer.batching import BatchStream, batch_tensors
from transformer.checkpoint import (CHECKPOINT_NAME, checkpoint_path, load_checkpoint, restore_model,
                                    restore_training, save_checkpoint)
from transformer.corpus import prepare_corpus
from transformer.data import Vocab
from transformer.errors import UsageError
from transformer.losses import token_losses
from transformer.model import Transformer
from transformer.optimizer import build_optimizer
from transformer.run_settings import TRAIN_DEFAULTS

SETTINGS = {**TRAIN_DEFAULTS, "task": "copy", "train_size": 24, "valid_size": 4, "d_model": 8, "heads": 2,
            "d_ff": 16, "layers": 1, "batch_size": 4, "warmup": 2, "max_len": 16, "steps": 10, "device": "cpu"}


def new_run(seed):
    """A tiny run as train.py builds one; `seed` sets the initial weights (dropout 0.1 stays on)."""
    corpus = prepare_corpus(SETTINGS)
    stream = BatchStream(corpus, SETTINGS["batch_size"], SETTINGS["seed"])
    minigrad.manual_seed(seed)
    model = Transformer(len(corpus.src_vocab), len(corpus.tgt_vocab), d_model=8, n_heads=2, d_ff=16,
                        n_encoder_layers=1, n_decoder_layers=1, max_len=16)
    optimizer, schedule = build_optimizer(model, SETTINGS, SETTINGS["steps"])
    return corpus, stream, model, optimizer, schedule


def train_steps(n, corpus, stream, model, optimizer, schedule):
    losses = []
    for _ in range(n):
        src, tgt_in, tgt_out = batch_tensors(stream.next(), "cpu")
        loss, _, _ = token_losses(model(src, tgt_in), tgt_out, model.pad_id, 0.1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return losses


def test_a_restored_run_goes_on_exactly(tmp_path):
    corpus, stream, model, optimizer, schedule = run = new_run(seed=0)
    train_steps(3, *run)
    save_checkpoint(tmp_path / CHECKPOINT_NAME, model, optimizer, schedule, corpus, SETTINGS, 3, stream)
    expected = train_steps(4, *run)                       # crosses the epoch boundary after step 6

    other = new_run(seed=1)                              # other weights, generators, position
    o_corpus, o_stream, o_model, o_optimizer, o_schedule = other
    o_corpus.src_vocab = o_corpus.tgt_vocab = Vocab([])
    assert restore_training(load_checkpoint(tmp_path), o_corpus, o_model, o_optimizer, o_schedule, o_stream) == 3
    assert o_corpus.src_vocab.to_list() == corpus.src_vocab.to_list()
    assert o_corpus.tgt_vocab.to_list() == corpus.tgt_vocab.to_list()
    assert train_steps(4, *other) == expected
    assert len(set(expected)) > 1


def test_the_saved_state_comes_back_as_it_was(tmp_path):
    corpus, stream, model, optimizer, schedule = run = new_run(seed=0)
    train_steps(2, *run)
    settings = {**SETTINGS, "beam": None, "skip_bad_lines": True}
    save_checkpoint(tmp_path / "a.ckpt", model, optimizer, schedule, corpus, settings, 2, stream)
    state = load_checkpoint(tmp_path / "a.ckpt")
    assert state["path"] == tmp_path / "a.ckpt" and state["step"] == 2
    assert state["settings"] == settings                  # None and booleans survive
    assert state["model_config"] == model.config
    assert state["data_position"]["epoch"] == 0 and state["data_position"]["index"] == 2
    assert state["schedule"]["last_epoch"] == schedule.state_dict()["last_epoch"] == 2

    restored, src_vocab, tgt_vocab = restore_model(state, "cpu")
    assert not restored.training
    assert src_vocab.to_list() == corpus.src_vocab.to_list() and tgt_vocab.to_list() == corpus.tgt_vocab.to_list()
    model.eval()
    src, tgt_in, _ = batch_tensors(stream.next(), "cpu")
    with minigrad.no_grad():
        np.testing.assert_array_equal(restored(src, tgt_in).numpy(), model(src, tgt_in).numpy())


def test_checkpoint_path_takes_a_file_or_a_run_directory(tmp_path):
    with pytest.raises(UsageError, match="no checkpoint there"):
        checkpoint_path(tmp_path)
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"")
    assert checkpoint_path(tmp_path) == tmp_path / CHECKPOINT_NAME
    assert checkpoint_path(str(tmp_path / CHECKPOINT_NAME)) == tmp_path / CHECKPOINT_NAME
    with pytest.raises(UsageError, match="no checkpoint there"):
        checkpoint_path(tmp_path / "other.ckpt")


def test_foreign_and_broken_files_are_refused_in_one_line(tmp_path):
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UsageError, match="broken.ckpt: not a readable checkpoint"):
        load_checkpoint(broken)
    foreign = tmp_path / "foreign.ckpt"
    minigrad.save({"weights": minigrad.zeros(2)}, str(foreign))
    with pytest.raises(UsageError, match="foreign.ckpt: not a train.py checkpoint"):
        load_checkpoint(foreign)
