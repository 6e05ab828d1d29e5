"""Checkpoints: minigrad.save(obj, path) and minigrad.load(path), like torch.save / torch.load.

A checkpoint is one .npz archive: every tensor as a plain array (its own dtype), plus
one JSON document describing the structure around them -- nested dicts, lists and
tuples of tensors, numbers (ints of any size), strings, bools and None. Nothing in
the file is code: the arrays are read with pickling disabled and the structure with
a JSON parser, so a crafted file can fail to load but can never run anything
(torch.load's pickle format, by contrast, runs whatever the file asks for unless
weights_only=True). Nor can it exhaust memory: what each array declares is checked
against what the file holds before anything is allocated (minigrad.archive), and only
the arrays the structure refers to are read.

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
MAX_DEPTH = 100  # dicts/lists/tuples nested in one another; deeper is refused by save and by load
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
    root = _encode(obj, arrays, {}, "obj", 0)
    document = json.dumps({"format": FORMAT, "version": VERSION, "root": root})
    if hasattr(path, "write"):
        _archive.save_archive(path, document, arrays)
        return
    _write_atomically(os.fspath(path), document, arrays)


def _encode(obj, arrays, memo, where, depth):
    """The JSON form of obj (`depth` containers down); tensors go to `arrays` and are referred to by name."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, Tensor):
        name = memo.get(id(obj))
        if name is None:
            name = memo[id(obj)] = f"tensor{len(memo)}"
            with no_grad():
                arrays[name] = obj.detach().numpy()
        return {"tensor": name, "device": str(obj.device), "requires_grad": obj.requires_grad}
    if isinstance(obj, (dict, list, tuple)) and depth >= MAX_DEPTH:
        raise ValueError(f"minigrad.save: {where:.200} is nested more than {MAX_DEPTH} deep (dicts, lists and "
                         f"tuples in one another); a checkpoint holds at most {MAX_DEPTH} levels")
    if isinstance(obj, dict):
        items = []
        for key, value in obj.items():
            if not isinstance(key, _KEY_TYPES):
                raise TypeError(f"minigrad.save: dict key {key!r} at {where} is a {type(key).__name__}; "
                                "keys must be strings, numbers, bools or None")
            items.append([key, _encode(value, arrays, memo, f"{where}[{key!r}]", depth + 1)])
        return {"dict": items}
    if isinstance(obj, (list, tuple)):
        kind = "list" if isinstance(obj, list) else "tuple"
        return {kind: [_encode(value, arrays, memo, f"{where}[{i}]", depth + 1) for i, value in enumerate(obj)]}
    if getattr(obj, "shape", None) == () and hasattr(obj, "item"):  # a NumPy scalar such as numpy.int64(3)
        return _encode(obj.item(), arrays, memo, where, depth)
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

    The file is not trusted: each array it refers to is checked against what the file holds
    before anything is allocated for it, arrays nothing refers to are never read, and one
    load allocates at most some 100 times the file's size (see minigrad.archive). Every
    failure, whatever its cause, is a CheckpointError naming the file and what is wrong
    (a missing file's is also a FileNotFoundError).
    """
    name = repr(getattr(path, "name", path)) if hasattr(path, "read") else repr(os.fspath(path))
    source = path if hasattr(path, "read") else os.fspath(path)
    if isinstance(source, str) and not os.path.exists(source):
        raise CheckpointNotFoundError(f"minigrad.load: no such file: {name}")
    try:
        with _archive.ArchiveReader(source) as archive:
            return _read_checkpoint(name, archive, map_location)
    except CheckpointError:
        raise
    except _archive.ArchiveError as error:
        raise CheckpointError(f"{name} is not a readable minigrad checkpoint: {error}") from None
    except Exception as error:  # anything else a crafted or damaged file provokes, running out of memory included
        raise CheckpointError(f"{name} is not a readable minigrad checkpoint ({type(error).__name__}: {error})") \
            from None


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """minigrad.load was given a path where there is no file."""


def _read_checkpoint(name, archive, map_location):
    document = archive.document()
    if document is None:
        raise CheckpointError(f"{name} is a zip/.npz archive but not a minigrad checkpoint (it has no structure "
                              "document; a torch.save file, for instance, is not readable here)")
    try:
        header = json.loads(document)
    except RecursionError:
        raise CheckpointError(f"{name}: the structure document is nested too deeply to parse") from None
    except ValueError as error:
        raise CheckpointError(f"{name}: the structure document is not valid JSON ({error})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT or "root" not in header:
        raise CheckpointError(f"{name} is not a minigrad checkpoint (unknown structure document)")
    if header.get("version") != VERSION:
        raise CheckpointError(f"{name} has checkpoint format version {header.get('version')!r}; "
                              f"this minigrad reads version {VERSION}")
    for key in _referenced_arrays(header["root"]):
        if key in archive:
            archive.check(key)  # every array's entry and header first, so a bad one fails before any is read
    return _Decoder(name, archive, map_location).decode(header["root"])


def _referenced_arrays(root):
    """The names of the arrays a structure refers to, in order, each once (found without recursion)."""
    names, stack = {}, [root]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(reversed(node))
        elif isinstance(node, dict):
            if isinstance(node.get("tensor"), str):
                names.setdefault(node["tensor"], None)
            stack.extend(reversed(list(node.values())))
    return list(names)


_CONTAINERS = ("list", "tuple", "dict")
_TENSOR_KEYS = {"tensor", "device", "requires_grad"}


class _Decoder:
    def __init__(self, name, archive, map_location):
        self.name, self.archive, self.map_location = name, archive, map_location
        self.tensors = {}  # array name -> Tensor, so a shared tensor comes back shared

    def fail(self, message):
        raise CheckpointError(f"{self.name}: {message}")

    def decode(self, node, depth=0):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, dict) and "tensor" in node:
            return self.tensor(node)
        if not (isinstance(node, dict) and len(node) == 1 and next(iter(node)) in _CONTAINERS
                and isinstance(next(iter(node.values())), list)):
            self.fail(f"malformed structure node {node!r:.80}")
        if depth >= MAX_DEPTH:
            self.fail(f"the structure is nested more than {MAX_DEPTH} deep")
        if "list" in node:
            return [self.decode(item, depth + 1) for item in node["list"]]
        if "tuple" in node:
            return tuple(self.decode(item, depth + 1) for item in node["tuple"])
        result = {}
        for pair in node["dict"]:
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], _KEY_TYPES)):
                self.fail(f"malformed dict entry {pair!r:.80}")
            result[pair[0]] = self.decode(pair[1], depth + 1)
        return result

    def tensor(self, node):
        key = node["tensor"]
        if key in self.tensors:
            return self.tensors[key]
        if key not in self.archive:
            self.fail(f"the structure refers to an array {key!r} that the archive does not hold")
        unknown = sorted(map(str, set(node) - _TENSOR_KEYS))
        if unknown:
            self.fail(f"tensor {key!r} has unknown keys {unknown}")
        saved, requires_grad = node.get("device", "cpu"), node.get("requires_grad", False)
        if not isinstance(saved, str):
            self.fail(f"tensor {key!r} has device {saved!r:.40}, not a device name")
        if not isinstance(requires_grad, bool):
            self.fail(f"tensor {key!r} has requires_grad {requires_grad!r:.40}, not a bool")
        device = self.device_for(saved)
        tensor = Tensor(self.archive.array(key), device=device)
        if requires_grad and tensor.dtype.kind == "f":
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
            self.fail(f"a tensor saved on {saved!r} cannot be placed on {target!r} ({error}); pass "
                      "map_location='cpu' to load it on the CPU")
