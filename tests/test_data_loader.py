"""minigrad.utils.data: datasets, samplers, collation and the DataLoader, against torch.utils.data where
both define the result (no shuffling) and against the data itself and its seeds where they cannot
(shuffled orders come from different generators)."""
import collections

import numpy as np
import pytest

import minigrad
from minigrad.utils.data import (BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler, TensorDataset,
                                 default_collate, default_convert)

Pair = collections.namedtuple("Pair", "features label")


def _plain(obj):
    """A nested result of either library as plain Python: tensors as (dtype name, shape, values)."""
    if isinstance(obj, minigrad.Tensor):
        return ("tensor", str(obj.dtype), tuple(obj.shape), obj.numpy().tolist())
    if type(obj).__module__.startswith("torch") and hasattr(obj, "dtype"):
        return ("tensor", str(obj.dtype).replace("torch.", ""), tuple(obj.shape), obj.numpy().tolist())
    if isinstance(obj, dict):
        return {key: _plain(value) for key, value in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return (type(obj).__name__, [_plain(value) for value in obj])
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, [_plain(value) for value in obj])
    return obj


class _Items(Dataset):
    """A dataset of given items (anything default_collate takes)."""

    def __init__(self, items):
        self.items = items

    def __getitem__(self, index):
        return self.items[index]

    def __len__(self):
        return len(self.items)


class _Indices(Dataset):
    """Item i is i: a loader over it shows the order the sampler chose."""

    def __init__(self, n):
        self.n = n

    def __getitem__(self, index):
        return index

    def __len__(self):
        return self.n


def _sample_lists(make_tensor, rng):
    """Lists of items of every kind default_collate handles; make_tensor turns a NumPy array into a tensor of
    one library, so both libraries collate the same data."""
    arrays = [rng.standard_normal((2, 3)) for _ in range(4)]
    return {
        "tensor-and-int": [(make_tensor(a), i) for i, a in enumerate(arrays)],
        "dict": [{"x": a.astype(np.float32), "y": float(a[0, 0]), "name": f"s{i}", "flag": i % 2 == 0}
                 for i, a in enumerate(arrays)],
        "namedtuple": [Pair(make_tensor(a[0]), np.float32(a[1, 1])) for a in arrays],
        "lists-of-ints": [[i, 2 * i, 3 * i] for i in range(4)],
        "nested": [{"pair": (make_tensor(a), make_tensor(a[:, 0])), "ids": [np.int64(i), np.int64(-i)]}
                   for i, a in enumerate(arrays)],
        "int32-arrays": [np.arange(3, dtype=np.int32) + i for i in range(4)],
        "floats": [float(a[0, 1]) for a in arrays],
        "bools": [bool(a[0, 2] > 0) for a in arrays],
        "strings": [f"word{i}" for i in range(4)],
        "tensor-list": [[make_tensor(a[0]), make_tensor(a[1])] for a in arrays],
    }


@pytest.mark.parametrize("kind", list(_sample_lists(lambda a: a, np.random.default_rng(0))))
def test_default_collate_matches_torch(kind, rng):
    torch = pytest.importorskip("torch")
    from torch.utils.data import default_collate as torch_collate

    state = rng.bit_generator.state
    ours = default_collate(_sample_lists(minigrad.tensor, rng)[kind])
    rng.bit_generator.state = state
    theirs = torch_collate(_sample_lists(torch.tensor, rng)[kind])
    assert _plain(ours) == _plain(theirs)


@pytest.mark.parametrize("kind", ["dict", "namedtuple", "nested", "tensor-and-int", "int32-arrays"])
def test_default_convert_matches_torch(kind, rng):
    torch = pytest.importorskip("torch")
    from torch.utils.data import default_convert as torch_convert

    state = rng.bit_generator.state
    ours = [default_convert(item) for item in _sample_lists(minigrad.tensor, rng)[kind]]
    rng.bit_generator.state = state
    theirs = [torch_convert(item) for item in _sample_lists(torch.tensor, rng)[kind]]
    assert _plain(ours) == _plain(theirs)


BAD_BATCHES = [
    ("an-object", lambda: [object(), object()], TypeError),
    ("string-arrays", lambda: [np.array(["a", "b"]), np.array(["c", "d"])], TypeError),
    ("object-arrays", lambda: [np.array([None, 1]), np.array([2, None])], TypeError),
    ("ragged-sequences", lambda: [(1, 2), (3,)], RuntimeError),
]


@pytest.mark.parametrize("case_id,make,error", BAD_BATCHES, ids=[case[0] for case in BAD_BATCHES])
def test_default_collate_refuses_what_torch_refuses(case_id, make, error):
    with pytest.raises(error):
        default_collate(make())


@pytest.mark.parametrize("case_id,make,error", BAD_BATCHES, ids=[case[0] for case in BAD_BATCHES])
def test_torch_refuses_those_batches_the_same_way(case_id, make, error):
    pytest.importorskip("torch")
    from torch.utils.data import default_collate as torch_collate

    with pytest.raises(error):
        torch_collate(make())


def test_collating_tensors_keeps_the_graph():
    weights = minigrad.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    scales = (2.0, 3.0)
    batch = default_collate([weights[row] * scale for row, scale in enumerate(scales)])
    batch.sum().backward()  # d(sum)/d(weights[row]) = scale of that row
    assert weights.grad.numpy().tolist() == [[scale] * 2 for scale in scales]


# -- datasets -------------------------------------------------------------------------------------------
def test_tensor_dataset_items_are_rows_of_each_tensor(rng):
    inputs, targets = rng.standard_normal((7, 3)), rng.integers(0, 5, 7)
    dataset = TensorDataset(minigrad.tensor(inputs), minigrad.tensor(targets))
    assert len(dataset) == 7
    for i in range(7):
        x, y = dataset[i]
        assert x.numpy().tolist() == inputs[i].tolist() and y.item() == targets[i]


def test_tensor_dataset_needs_tensors_of_one_length():
    with pytest.raises(ValueError, match="first dimension"):
        TensorDataset(minigrad.zeros(4, 2), minigrad.zeros(5))
    with pytest.raises(ValueError):
        TensorDataset()
    with pytest.raises(TypeError):
        TensorDataset(np.zeros(3))


def test_a_dataset_without_getitem_says_so():
    with pytest.raises(NotImplementedError):
        Dataset()[0]


# -- the loader without shuffling, against torch ------------------------------------------------------------
def _both_loaders(torch, rng, n, **options):
    inputs, targets = rng.standard_normal((n, 2, 3)), rng.integers(0, 9, n)
    ours = DataLoader(TensorDataset(minigrad.tensor(inputs), minigrad.tensor(targets)), **options)
    theirs = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.tensor(inputs), torch.tensor(targets)),
                                         **options)
    return ours, theirs


@pytest.mark.parametrize("n", [10, 12])
@pytest.mark.parametrize("batch_size", [1, 3, 4, None])
@pytest.mark.parametrize("drop_last", [False, True])
def test_batches_in_order_match_torch(n, batch_size, drop_last, rng):
    torch = pytest.importorskip("torch")
    if batch_size is None and drop_last:
        pytest.skip("batch_size=None excludes drop_last (tested with the errors)")
    ours, theirs = _both_loaders(torch, rng, n, batch_size=batch_size, drop_last=drop_last)
    assert len(ours) == len(theirs)
    batches = [_plain(batch) for batch in ours]
    assert batches == [_plain(batch) for batch in theirs]
    assert len(batches) == len(ours)  # and len() counts what iterating gives


def test_the_default_batch_size_is_one_and_each_epoch_starts_over(rng):
    inputs = rng.standard_normal((5, 2))
    loader = DataLoader(TensorDataset(minigrad.tensor(inputs)))
    first = [batch[0].numpy().tolist() for batch in loader]
    assert first == [[row] for row in inputs.tolist()]
    assert [batch[0].numpy().tolist() for batch in loader] == first


def test_a_sampler_or_batch_sampler_picks_the_items_as_in_torch(rng):
    torch = pytest.importorskip("torch")
    order = [4, 0, 7, 7, 2, 9, 1]
    groups = [[3, 1], [0], [8, 8, 5, 2]]
    for options in (dict(sampler=order, batch_size=3), dict(sampler=order, batch_size=2, drop_last=True),
                    dict(batch_sampler=groups), dict(sampler=order, batch_size=None)):
        ours, theirs = _both_loaders(torch, rng, 10, **options)
        assert len(ours) == len(theirs)
        assert [_plain(batch) for batch in ours] == [_plain(batch) for batch in theirs]


def test_collate_fn_receives_the_list_of_items():
    seen = []
    loader = DataLoader(_Items(["a", "b", "c", "d", "e"]), batch_size=2, collate_fn=lambda items: seen.append(items)
                        or len(items))
    assert list(loader) == [2, 2, 1]
    assert seen == [["a", "b"], ["c", "d"], ["e"]]


def test_a_dataset_of_dicts_gives_dicts_of_batches(rng):
    items = [{"x": rng.standard_normal(3), "y": int(i)} for i in range(5)]
    batch = next(iter(DataLoader(_Items(items), batch_size=4)))
    assert set(batch) == {"x", "y"}
    assert batch["x"].numpy().tolist() == [item["x"].tolist() for item in items[:4]]
    assert batch["y"].numpy().tolist() == [item["y"] for item in items[:4]] and str(batch["y"].dtype) == "int64"


# -- shuffling -----------------------------------------------------------------------------------------
def _epochs(loader, count=3):
    return [[int(i) for batch in loader for i in batch.numpy().tolist()] for _ in range(count)]


def test_a_seed_replays_the_same_orders_and_each_epoch_is_a_new_permutation():
    n = 23
    orders = _epochs(DataLoader(_Indices(n), batch_size=5, shuffle=True, generator=11))
    assert orders == _epochs(DataLoader(_Indices(n), batch_size=5, shuffle=True, generator=11))
    assert all(sorted(order) == list(range(n)) for order in orders)
    assert len({tuple(order) for order in orders}) == len(orders)  # different across epochs
    assert orders[0] != list(range(n))
    assert orders != _epochs(DataLoader(_Indices(n), batch_size=5, shuffle=True, generator=12))


def test_a_seed_or_a_numpy_generator_leaves_minigrads_random_state_alone():
    for make_generator in (lambda: 3, lambda: np.random.default_rng(3)):
        before = minigrad.get_rng_state()
        orders = _epochs(DataLoader(_Indices(17), batch_size=4, shuffle=True, generator=make_generator()))
        assert minigrad.get_rng_state() == before
        minigrad.manual_seed(99)  # and minigrad's seed does not change them
        assert orders == _epochs(DataLoader(_Indices(17), batch_size=4, shuffle=True, generator=make_generator()))


def test_without_a_generator_shuffling_follows_minigrads_seed():
    minigrad.manual_seed(5)
    before = minigrad.get_rng_state()
    orders = _epochs(DataLoader(_Indices(17), batch_size=4, shuffle=True))
    assert minigrad.get_rng_state() != before  # each epoch drew its seed from minigrad's generator
    minigrad.manual_seed(5)
    assert _epochs(DataLoader(_Indices(17), batch_size=4, shuffle=True)) == orders
    minigrad.manual_seed(6)
    assert _epochs(DataLoader(_Indices(17), batch_size=4, shuffle=True)) != orders
    assert len({tuple(order) for order in orders}) == len(orders)


def test_shuffled_batches_hold_the_rows_of_the_indices_drawn(rng):
    inputs = rng.standard_normal((11, 3))
    tensors = TensorDataset(minigrad.tensor(inputs), minigrad.arange(11))
    for x, index in DataLoader(tensors, batch_size=4, shuffle=True, generator=0, drop_last=True):
        assert x.shape == (4, 3)
        assert x.numpy().tolist() == inputs[index.numpy()].tolist()
    assert len(DataLoader(tensors, batch_size=4, shuffle=True, drop_last=True)) == 2


def test_random_sampler_with_replacement_and_more_samples_than_items():
    drawn = list(RandomSampler(range(6), replacement=True, num_samples=50, generator=1))
    assert len(drawn) == 50 and set(drawn) <= set(range(6)) and len(set(drawn)) > 1
    assert drawn == list(RandomSampler(range(6), replacement=True, num_samples=50, generator=1))
    passes = list(RandomSampler(range(6), num_samples=15, generator=1))
    assert len(passes) == 15
    assert sorted(passes[:6]) == sorted(passes[6:12]) == list(range(6)) and len(set(passes[12:])) == 3


def test_samplers_lengths():
    assert list(SequentialSampler(range(4))) == [0, 1, 2, 3] and len(SequentialSampler(range(4))) == 4
    assert len(RandomSampler(range(9))) == 9 and len(RandomSampler(range(9), num_samples=4)) == 4
    assert list(BatchSampler(range(7), 3, drop_last=False)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert len(BatchSampler(range(7), 3, drop_last=False)) == 3 and len(BatchSampler(range(7), 3, True)) == 2


# -- bad arguments --------------------------------------------------------------------------------------------
LOADER_ERRORS = [
    ("negative-workers", dict(num_workers=-1)),
    ("shuffle-and-sampler", dict(shuffle=True, sampler=[0, 1])),
    ("batch_sampler-and-batch_size", dict(batch_sampler=[[0, 1]], batch_size=2)),
    ("batch_sampler-and-shuffle", dict(batch_sampler=[[0, 1]], shuffle=True)),
    ("batch_sampler-and-sampler", dict(batch_sampler=[[0, 1]], sampler=[0])),
    ("batch_sampler-and-drop_last", dict(batch_sampler=[[0, 1]], drop_last=True)),
    ("no-batching-and-drop_last", dict(batch_size=None, drop_last=True)),
    ("batch_size-0", dict(batch_size=0)),
    ("batch_size-float", dict(batch_size=2.0)),
    ("prefetch-without-workers", dict(prefetch_factor=2)),
    ("persistent-without-workers", dict(persistent_workers=True)),
    ("negative-timeout", dict(timeout=-1)),
]


@pytest.mark.parametrize("case_id,options", LOADER_ERRORS, ids=[case[0] for case in LOADER_ERRORS])
def test_bad_loader_arguments_raise_value_error(case_id, options):
    with pytest.raises(ValueError):
        DataLoader(_Indices(4), **options)


@pytest.mark.parametrize("case_id,options", LOADER_ERRORS, ids=[case[0] for case in LOADER_ERRORS])
def test_torch_refuses_those_loader_arguments_the_same_way(case_id, options):
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError):
        torch.utils.data.DataLoader(_Indices(4), **options)


def test_worker_processes_are_refused_clearly():
    with pytest.raises(ValueError, match="num_workers must be 0"):
        DataLoader(_Indices(4), num_workers=2)


def test_a_generator_must_be_a_seed_or_a_numpy_generator():
    with pytest.raises(TypeError, match="generator"):
        DataLoader(_Indices(4), shuffle=True, generator="seed")
    with pytest.raises(TypeError, match="generator"):
        RandomSampler(range(4), generator=True)
    with pytest.raises(ValueError, match="num_samples"):
        RandomSampler(range(0))
    with pytest.raises(TypeError, match="replacement"):
        RandomSampler(range(4), replacement=1)
