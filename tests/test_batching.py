"""The batch stream (transformer/batching.py): every pair once an epoch, a new order each epoch,
and a position that a checkpoint can store and a resumed run can pick up mid-epoch."""
import json

import numpy as np

import minigrad
from transformer.batching import BatchStream, batch_tensors
from transformer.corpus import Corpus
from transformer.data import Vocab


def small_corpus(n=23):
    pairs = [([i % 7 + 4] * (1 + i % 5), [i % 3 + 4] * (1 + i % 4)) for i in range(n)]
    vocab = Vocab([str(i) for i in range(4, 11)])
    return Corpus(None, None, vocab, vocab, [s for s, _ in pairs], [t for _, t in pairs], "word")


def test_batch_stream_resumes_mid_epoch():
    corpus = small_corpus()
    reference = BatchStream(corpus, 4, seed=5)
    expected = [reference.next() for _ in range(20)]            # 6 batches an epoch: crosses 3 epochs
    for cut in (0, 3, 6, 11):
        first = BatchStream(corpus, 4, seed=5)
        got = [first.next() for _ in range(cut)]
        second = BatchStream(corpus, 4, seed=99)
        second.load_state_dict(json.loads(json.dumps(first.state_dict())))
        got += [second.next() for _ in range(20 - cut)]
        for a, b in zip(expected, got):
            np.testing.assert_array_equal(a.src, b.src)
            np.testing.assert_array_equal(a.tgt_out, b.tgt_out)
    order = [[tuple(map(tuple, b.src)) for b in expected[e * 6:(e + 1) * 6]] for e in range(3)]
    assert order[0] != order[1] != order[2], "each epoch should be shuffled anew"


def test_every_pair_once_an_epoch_and_the_epoch_count():
    corpus = small_corpus()
    stream = BatchStream(corpus, 4, seed=1)
    assert stream.batches_per_epoch() == 6                      # ceil(23 / 4)
    for epoch in range(2):
        seen = []
        for i in range(6):
            assert stream.epochs_done == epoch + i / 6
            batch = stream.next()
            for row in batch.tgt_out:                           # target + <eos>, then padding
                ids = row.tolist()
                seen.append(tuple(ids[:ids.index(corpus.tgt_vocab.eos_id)]))
        assert stream.epoch == epoch + 1 and stream.index == 0
        assert sorted(seen) == sorted(tuple(t) for t in corpus.train_tgt)


def test_a_position_saved_at_an_epoch_boundary_starts_the_next_epoch():
    corpus = small_corpus()
    stream = BatchStream(corpus, 4, seed=2)
    for _ in range(6):
        stream.next()
    state = json.loads(json.dumps(stream.state_dict()))
    assert (state["epoch"], state["index"]) == (1, 0)
    resumed = BatchStream(corpus, 4, seed=2)
    resumed.load_state_dict(state)
    assert resumed.epochs_done == 1.0
    np.testing.assert_array_equal(resumed.next().src, stream.next().src)


def test_batch_tensors_hold_the_batch_arrays():
    batch = BatchStream(small_corpus(), 4, seed=0).next()
    src, tgt_in, tgt_out = batch_tensors(batch, "cpu")
    for tensor, array in ((src, batch.src), (tgt_in, batch.tgt_in), (tgt_out, batch.tgt_out)):
        assert isinstance(tensor, minigrad.Tensor) and tensor.device == "cpu"
        np.testing.assert_array_equal(tensor.numpy(), array)
