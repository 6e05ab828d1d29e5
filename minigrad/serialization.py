"""Checkpoints: minigrad.save(obj, path) and minigrad.load(path), like torch.save / torch.load.

A checkpoint is one .npz archive: every tensor as a plain array (its own dtype), plus
one JSON document describing the structure around them -- nested dicts, lists and
tuples of tensors, numbers (ints of any size), strings, bools and None. Nothing in
the file is code: the arrays are read with pickling disabled and the structure with
a JSON parser, so a crafted file can fail to load but can never run anything
(torch.load's pickle format, by contrast, runs whatever the file asks for unless
weights_only=True).

Saving is atomic: the archive is written to a temporary file next to the target,
flushed to disk, then renamed over it, so a crash mid-write leaves the previous
checkpoint intact.
"""
import json
import os
import tempfile

from . import archive as _archive
from . import backend as _backend
from .autograd import no_grad
from .tensor import Tensor

FORMAT = "minigrad-checkpoint"
VERSION = 1
_KEY_TYPES = (str, int, float, bool, type(None))


class CheckpointError(RuntimeError):
    """A file that is not a readable minigrad checkpoint (foreign, truncated, crafted or damaged)."""


# -- saving ------------------------------------------------------------------------------------
def save(obj, path):
    """Write `obj` (tensors, numbers, strings, bools, None, nested in dicts/lists/tuples) to `path`.

    `path` is a file name (written atomically) or an open binary file. Tensors keep
    their dtype and remember their device and requires_grad; a tensor that appears
    twice is stored once and comes back as one tensor.
    """
    arrays = {}
    root = _encode(obj, arrays, {}, "obj")
    document = json.dumps({"format": FORMAT, "version": VERSION, "root": root})
    if hasattr(path, "write"):
        _archive.save_archive(path, document, arrays)
        return
    _write_atomically(os.fspath(path), document, arrays)


def _encode(obj, arrays, memo, where):
    """The JSON form of obj; tensors go to `arrays` and are referred to by name."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, Tensor):
        name = memo.get(id(obj))
        if name is None:
            name = memo[id(obj)] = f"tensor{len(memo)}"
            with no_grad():
                arrays[name] = obj.detach().numpy()
        return {"tensor": name, "device": str(obj.device), "requires_grad": obj.requires_grad}
    if isinstance(obj, dict):
        items = []
        for key, value in obj.items():
            if not isinstance(key, _KEY_TYPES):
                raise TypeError(f"minigrad.save: dict key {key!r} at {where} is a {type(key).__name__}; "
                                "keys must be strings, numbers, bools or None")
            items.append([key, _encode(value, arrays, memo, f"{where}[{key!r}]")])
        return {"dict": items}
    if isinstance(obj, (list, tuple)):
        kind = "list" if isinstance(obj, list) else "tuple"
        return {kind: [_encode(value, arrays, memo, f"{where}[{i}]") for i, value in enumerate(obj)]}
    if getattr(obj, "shape", None) == () and hasattr(obj, "item"):  # a NumPy scalar such as numpy.int64(3)
        return _encode(obj.item(), arrays, memo, where)
    raise TypeError(f"minigrad.save cannot store a {type(obj).__name__} (at {where}): a checkpoint holds only "
                    "tensors, numbers, strings, bools, None and dicts/lists/tuples of them -- never code")


def _write_atomically(path, document, arrays):
    directory = os.path.dirname(os.path.abspath(path))
    descriptor, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(descriptor, "wb") as file:
            _archive.save_archive(file, document, arrays)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, _file_mode(path))
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    _sync_directory(directory)


def _file_mode(path):
    """Keep an existing file's permissions; a new file gets the usual 0o666 minus the umask."""
    if os.path.exists(path):
        return os.stat(path).st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _sync_directory(directory):
    """Make the rename itself durable (best effort: not every OS can open a directory)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


# -- loading ------------------------------------------------------------------------------------
def load(path, map_location=None):
    """Read a checkpoint written by minigrad.save.

    Tensors go back to the device they were saved from, unless `map_location` says
    otherwise: a device name ("cpu" loads anywhere) or a dict {saved device: device}.
    Raises CheckpointError, naming the file, for anything that is not an intact
    minigrad checkpoint.
    """
    name = repr(getattr(path, "name", path)) if hasattr(path, "read") else repr(os.fspath(path))
    source = path if hasattr(path, "read") else os.fspath(path)
    if isinstance(source, str) and not os.path.exists(source):
        raise FileNotFoundError(f"minigrad.load: no such file: {name}")
    try:
        document, arrays = _archive.load_archive(source)
    except Exception as error:  # zip, npy-header, pickle-refused, truncation errors of many kinds
        reason = f"{type(error).__name__}: {error}"
        if "pickle" in str(error):
            reason = "it holds pickled Python objects, which minigrad never loads since unpickling can run code"
        raise CheckpointError(f"{name} is not a readable minigrad checkpoint ({reason})") from None
    if document is None:
        raise CheckpointError(f"{name} is a zip/.npz archive but not a minigrad checkpoint (it has no structure "
                              "document; a torch.save file, for instance, is not readable here)")
    try:
        header = json.loads(document)
    except ValueError as error:
        raise CheckpointError(f"{name}: the structure document is not valid JSON ({error})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT or "root" not in header:
        raise CheckpointError(f"{name} is not a minigrad checkpoint (unknown structure document)")
    if header.get("version") != VERSION:
        raise CheckpointError(f"{name} has checkpoint format version {header.get('version')!r}; "
                              f"this minigrad reads version {VERSION}")
    return _Decoder(name, arrays, map_location).decode(header["root"])


class _Decoder:
    def __init__(self, name, arrays, map_location):
        self.name, self.arrays, self.map_location = name, arrays, map_location
        self.tensors = {}  # array name -> Tensor, so a shared tensor comes back shared

    def fail(self, message):
        raise CheckpointError(f"{self.name}: {message}")

    def decode(self, node):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if not isinstance(node, dict) or len(node) == 0:
            self.fail(f"malformed structure node {node!r:.80}")
        if "tensor" in node:
            return self.tensor(node)
        if "list" in node and isinstance(node["list"], list):
            return [self.decode(item) for item in node["list"]]
        if "tuple" in node and isinstance(node["tuple"], list):
            return tuple(self.decode(item) for item in node["tuple"])
        if "dict" in node and isinstance(node["dict"], list):
            result = {}
            for pair in node["dict"]:
                if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], _KEY_TYPES)):
                    self.fail(f"malformed dict entry {pair!r:.80}")
                result[pair[0]] = self.decode(pair[1])
            return result
        self.fail(f"malformed structure node {node!r:.80}")

    def tensor(self, node):
        key = node["tensor"]
        if key in self.tensors:
            return self.tensors[key]
        array = self.arrays.get(key) if isinstance(key, str) else None
        if array is None:
            self.fail(f"the structure refers to an array {key!r} that the archive does not hold")
        if array.dtype.kind not in "biuf":
            self.fail(f"array {key!r} has unsupported dtype {array.dtype}")
        device = self.device_for(str(node.get("device", "cpu")))
        tensor = Tensor(array, device=device)
        if node.get("requires_grad") and tensor.dtype.kind == "f":
            tensor.requires_grad_(True)
        self.tensors[key] = tensor
        return tensor

    def device_for(self, saved):
        target = self.map_location
        if isinstance(target, dict):
            target = target.get(saved, saved)
        target = saved if target is None else str(getattr(target, "device", target))
        try:
            return _backend.get_backend(target)
        except (RuntimeError, ValueError) as error:
            raise RuntimeError(f"minigrad.load({self.name}): a tensor saved on {saved!r} cannot be placed on "
                               f"{target!r} ({error}); pass map_location='cpu' to load it on the CPU") from None
