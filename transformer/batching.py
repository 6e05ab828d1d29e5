"""Training batches for as long as training runs, epoch after epoch, resumable mid-epoch, and the
tensors one batch becomes on a device.

The batches themselves (padding, bucketing by length) come from data.make_batches; this module
adds the order over many epochs and the position a checkpoint stores.
"""
from __future__ import annotations

import copy
import math

import minigrad

from .corpus import Corpus
from .data import batch_order_generator, make_batches


class BatchStream:
    """Training batches forever, each epoch reshuffled (and re-bucketed) by one NumPy generator.

    Its position is (epoch, index of the next batch) plus the generator's state at the start of
    that epoch: a resumed run rebuilds the epoch from that state, which gives the very same
    batches, and skips to the index. The generator then ends up where the uninterrupted run's is.
    """

    def __init__(self, corpus: Corpus, batch_size: int, seed: int):
        self.corpus, self.batch_size = corpus, batch_size
        self.rng = batch_order_generator(seed)
        self.epoch, self.index = 0, 0
        self._batches = None
        self._epoch_start_state = None

    def _start_epoch(self):
        self._epoch_start_state = copy.deepcopy(self.rng.bit_generator.state)
        vocab = self.corpus.tgt_vocab
        self._batches = make_batches(self.corpus.train_src, self.corpus.train_tgt, self.batch_size, vocab.pad_id,
                                     vocab.bos_id, vocab.eos_id, shuffle=True, rng=self.rng)

    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.corpus.train_src) / self.batch_size)

    def next(self):
        if self._batches is None:
            self._start_epoch()
        batch = self._batches[self.index]
        self.index += 1
        if self.index == len(self._batches):
            self.epoch, self.index, self._batches = self.epoch + 1, 0, None
        return batch

    @property
    def epochs_done(self) -> float:
        return self.epoch + self.index / self.batches_per_epoch()

    def state_dict(self) -> dict:
        start = self._epoch_start_state if self._batches is not None else self.rng.bit_generator.state
        return {"epoch": self.epoch, "index": self.index, "epoch_start_rng": copy.deepcopy(start)}

    def load_state_dict(self, state: dict):
        self.epoch, self.index = state["epoch"], state["index"]
        self.rng.bit_generator.state = state["epoch_start_rng"]
        self._batches = None
        if self.index:
            self._start_epoch()


def batch_tensors(batch, device):
    """(src, tgt_in, tgt_out) of a data.Batch as tensors on `device`."""
    return (minigrad.tensor(batch.src, device=device), minigrad.tensor(batch.tgt_in, device=device),
            minigrad.tensor(batch.tgt_out, device=device))
