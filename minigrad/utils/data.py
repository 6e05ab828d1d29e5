"""Datasets and batches, with the names and arguments of torch.utils.data (single-process only).

    dataset = TensorDataset(inputs, targets)           # item i: (inputs[i], targets[i])
    loader = DataLoader(dataset, batch_size=32, shuffle=True, generator=0)
    for x, y in loader:                                # x: (32, ...), y: (32, ...) tensors
        ...

A map-style dataset is anything with __len__ and __getitem__ (subclass `Dataset` to say so).
The DataLoader asks a sampler for indices (in order, or shuffled), groups them into batches
(`BatchSampler`), fetches the items and joins them with `collate_fn`: by default
`default_collate`, which stacks tensors, NumPy arrays and numbers into tensors with a new
first dimension and works through tuples, lists and dicts the way torch's does.

Shuffling. `generator` may be a seed (an int: the loader then owns a private generator
seeded with it, so a fresh loader with the same seed replays the same orders, epoch after
epoch, each epoch a new one) or a NumPy Generator (used and advanced as it is). Neither
touches minigrad's own random state. With no generator each epoch draws a fresh seed from
minigrad's CPU generator (the one minigrad.manual_seed seeds), as torch draws from its global
generator: reproducible under manual_seed, and it moves that generator on. torch's
generator must be a torch.Generator; the int seed is minigrad's shorthand for one.

Loading runs in this process: num_workers must be 0 (and the options that only mean
something with worker processes keep their defaults). pin_memory is accepted and does nothing.
"""
import collections.abc
import copy

from ..backend import host_numpy
from ..creation import randint, tensor
from ..ops import stack
from ..tensor import Tensor, float64

__all__ = ["Dataset", "TensorDataset", "Sampler", "SequentialSampler", "RandomSampler", "BatchSampler",
           "DataLoader", "default_collate", "default_convert"]


# -- datasets -------------------------------------------------------------------------------------
class Dataset:
    """A map-style dataset: subclasses give __getitem__(index) and (for a DataLoader) __len__()."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")


class TensorDataset(Dataset):
    """Item i is (tensors[0][i], tensors[1][i], ...): the tensors share their first dimension."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        for index, t in enumerate(tensors):
            if not isinstance(t, Tensor):
                raise TypeError(f"TensorDataset takes minigrad Tensors, got {type(t).__name__} at position {index}")
            if t.ndim == 0 or t.shape[0] != tensors[0].shape[0]:
                raise ValueError(f"TensorDataset: every tensor needs the same first dimension; tensor 0 has shape "
                                 f"{tuple(tensors[0].shape)}, tensor {index} {tuple(t.shape)}")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


# -- samplers: which indices, in which order ---------------------------------------------------------
class Sampler:
    """Yields dataset indices (or, for a batch sampler, lists of them)."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


def _own_generator(generator):
    """The host generator a sampler draws from: None (a new one per epoch), a seeded one, or the caller's."""
    if generator is None:
        return None
    if isinstance(generator, int) and not isinstance(generator, bool):
        return host_numpy.random.default_rng(generator)
    if callable(getattr(generator, "permutation", None)) and callable(getattr(generator, "integers", None)):
        return generator
    raise TypeError(f"generator must be None, an int seed or a NumPy Generator, got {type(generator).__name__}")


class RandomSampler(Sampler):
    """A random order of the indices (each once per pass), or num_samples draws with replacement.

    num_samples (default len(data_source)) may exceed the dataset's length without replacement:
    then whole permutations follow one another. See the module's docstring for `generator`.
    """

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        if not isinstance(replacement, bool):
            raise TypeError(f"replacement must be a bool, got {replacement!r}")
        self.data_source, self.replacement, self._num_samples = data_source, replacement, num_samples
        self.generator = generator
        self._generator = _own_generator(generator)
        if not isinstance(self.num_samples, int) or isinstance(self.num_samples, bool) or self.num_samples <= 0:
            raise ValueError(f"num_samples must be a positive int, got {self.num_samples!r}")

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def _epoch_generator(self):
        if self._generator is not None:
            return self._generator
        seed = int(randint(0, 2 ** 62, (), device="cpu").item())  # from minigrad's CPU generator
        return host_numpy.random.default_rng(seed)

    def __iter__(self):
        n, count = len(self.data_source), self.num_samples
        generator = self._epoch_generator()
        if self.replacement:
            yield from generator.integers(0, n, size=count).tolist()
            return
        for _ in range(count // n):
            yield from generator.permutation(n).tolist()
        yield from generator.permutation(n).tolist()[:count % n]

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Lists of batch_size indices from `sampler` (the last one shorter unless drop_last)."""

    def __init__(self, sampler, batch_size, drop_last):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last must be a bool, got {drop_last!r}")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last

    def __iter__(self):
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        full, rest = divmod(len(self.sampler), self.batch_size)
        return full if self.drop_last or not rest else full + 1


# -- collating: a list of items -> one batch ------------------------------------------------------
_HOST_DATA = (host_numpy.ndarray, host_numpy.generic)


def _is_text_array(array):
    """NumPy arrays of strings or objects, which torch's collate refuses too."""
    return array.dtype.kind in "SaUO"


def _collate_error(kind):
    return TypeError(f"default_collate: batch must contain tensors, NumPy arrays, numbers, dicts or lists; "
                     f"found {kind}")


def _rebuilt_sequence(elem, values):
    """A sequence of elem's type holding `values` (a list where the type cannot be built from one)."""
    try:
        return type(elem)(values)
    except TypeError:
        return values


def _rebuilt_mapping(elem, values):
    """A mapping of elem's type holding `values` (a plain dict where the type cannot be rebuilt)."""
    try:
        if isinstance(elem, collections.abc.MutableMapping):
            clone = copy.copy(elem)
            clone.update(values)
            return clone
        return type(elem)(values)
    except TypeError:
        return values


def default_collate(batch):
    """Join a list of items into one batch, as torch.utils.data.default_collate does.

    Tensors are stacked (a new first dimension); NumPy arrays and NumPy scalars become a
    stacked tensor of their dtype; Python floats a float64 tensor, ints an int64 tensor, bools
    a bool tensor; strings and bytes stay a list. Dicts give a dict of batches (same keys),
    namedtuples a namedtuple of batches, and tuples or lists a list of batches, one per
    position (the items' sequences must have one length).
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        return stack(batch, 0)
    if isinstance(elem, (str, bytes)):  # before NumPy: numpy.str_ is a str
        return batch
    if isinstance(elem, _HOST_DATA):  # arrays and scalars alike: stacked along a new first dimension
        if _is_text_array(elem):
            raise _collate_error(f"NumPy data of dtype {elem.dtype}")
        return tensor(host_numpy.stack(batch))
    if isinstance(elem, float):
        return tensor(batch, dtype=float64)
    if isinstance(elem, int):  # bools too
        return tensor(batch)
    if isinstance(elem, collections.abc.Mapping):
        return _rebuilt_mapping(elem, {key: default_collate([item[key] for item in batch]) for key in elem})
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a namedtuple
        return type(elem)(*(default_collate(list(samples)) for samples in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        if any(len(item) != len(elem) for item in batch):
            raise RuntimeError("default_collate: each sequence in the batch must have the same length")
        columns = [default_collate(list(samples)) for samples in zip(*batch)]
        return columns if isinstance(elem, tuple) else _rebuilt_sequence(elem, columns)
    raise _collate_error(type(elem).__name__)


def default_convert(data):
    """One item as it comes (batch_size=None): NumPy arrays and scalars become tensors, through tuples,
    lists and dicts; everything else stays as it is (torch's default_convert)."""
    if isinstance(data, (str, bytes)):
        return data
    if isinstance(data, _HOST_DATA):
        return data if _is_text_array(data) else tensor(data)
    if isinstance(data, collections.abc.Mapping):
        return _rebuilt_mapping(data, {key: default_convert(value) for key, value in data.items()})
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(value) for value in data))
    if isinstance(data, tuple):
        return [default_convert(value) for value in data]
    if isinstance(data, collections.abc.Sequence):
        return _rebuilt_sequence(data, [default_convert(value) for value in data])
    return data


# -- the loader -------------------------------------------------------------------------------------
class DataLoader:
    """Batches of a map-style dataset, in order or shuffled, joined by collate_fn (torch's arguments).

    batch_size=None turns batching off (each item passes through default_convert);
    batch_sampler (lists of indices) replaces batch_size, shuffle, sampler and drop_last;
    sampler (any iterable of indices) replaces shuffle.
    """

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False):
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be a non-negative int, got {num_workers!r}")
        if num_workers > 0:
            raise ValueError(f"minigrad's DataLoader loads in this process only: num_workers must be 0, got "
                             f"{num_workers}")
        if timeout < 0:
            raise ValueError(f"timeout must be non-negative, got {timeout}")
        for name, value in (("prefetch_factor", prefetch_factor), ("multiprocessing_context", multiprocessing_context)):
            if value is not None:
                raise ValueError(f"{name} only applies to worker processes, which minigrad's DataLoader does not use")
        if persistent_workers:
            raise ValueError("persistent_workers needs worker processes, which minigrad's DataLoader does not use")
        shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, "
                                 "and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None turns batching off and is mutually exclusive with drop_last")
        if sampler is None:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.dataset, self.num_workers, self.pin_memory = dataset, num_workers, pin_memory
        self.batch_size, self.drop_last, self.generator = batch_size, drop_last, generator
        self.sampler, self.batch_sampler = sampler, batch_sampler
        self.timeout, self.worker_init_fn = timeout, worker_init_fn
        if collate_fn is None:
            collate_fn = default_collate if batch_sampler is not None else default_convert
        self.collate_fn = collate_fn

    @property
    def _index_sampler(self):
        return self.batch_sampler if self.batch_sampler is not None else self.sampler

    def __iter__(self):
        if self.batch_sampler is None:
            for index in self.sampler:
                yield self.collate_fn(self.dataset[index])
            return
        for indices in self.batch_sampler:
            yield self.collate_fn([self.dataset[index] for index in indices])

    def __len__(self):
        return len(self._index_sampler)
