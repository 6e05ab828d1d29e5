"""Checkpoint files on disk: a text document and named host arrays in one .npz archive.

minigrad.serialization decides what goes into the document and the arrays; this module only
writes and reads them, with NumPy (reached through the backend's host module), never pickle.

Reading trusts nothing the file says until it is checked against what the file holds, and
allocates nothing before that. An archive is opened with `zipfile` and each member is read
only when asked for (members nothing refers to are never read). Before a member's data is
read, what its zip entry and its .npy header declare must agree with the file:

* the entry's stored bytes lie inside the file, are neither encrypted nor compressed by a
  method other than the two NumPy writes (stored, deflate), and a stored entry expands to
  exactly its stored size;
* a member over EXPANSION_FREE_BYTES (1 MiB) expands at most MAX_EXPANSION (100) times its
  compressed size. minigrad.save never compresses (1-fold); trained tensors deflate some
  1.1-fold (floats) to 10-fold (small ints, bools); 100-fold and more is a long run of one
  byte, which is what a zip bomb holds (a deflated file with over 1 MiB of zeros in one
  tensor is refused too: save it uncompressed). The structure document, which becomes
  Python objects some 20 times the size of its text, may expand at most
  MAX_DOCUMENT_EXPANSION (10) times (minigrad.save stores it uncompressed);
* all the members one reader reads together expand to at most MAX_EXPANSION times the
  file's size plus EXPANSION_FREE_BYTES (so that many small members, or several entries
  sharing one compressed stream, cannot add up to a bomb either);
* the .npy header (at most HEADER_LIMIT bytes) declares a version NumPy writes (1.0, 2.0), at
  most 64 dimensions of non-negative sizes and a dtype a tensor can have (bool, 8-64 bit
  integers, float16/32/64; an object dtype would need unpickling and is refused), and the
  size it declares, shape times item size, is exactly the data the member holds.

So the arrays one reader reads take at most 100 times the file's size (plus 1 MiB), whatever
the file says. zipfile itself never decompresses past an entry's declared size and checks
each entry's CRC. (The zip directory is parsed whole when the archive is opened: its size is
bounded by the file's.)
"""
import contextlib
import os
import zipfile
import zlib

from .backend.host import host_numpy as numpy

_DOCUMENT_NAME = "__document__"
MAX_EXPANSION = 100
MAX_DOCUMENT_EXPANSION = 10
EXPANSION_FREE_BYTES = 1 << 20
HEADER_LIMIT = 1 << 16
MAX_DIMENSIONS = 64
_ALLOWED_DTYPES = frozenset("?bBhHiIlLqQefd")  # numpy.dtype(...).char: bool, integers, float16/32/64
_READ_CHUNK = 1 << 20


class ArchiveError(ValueError):
    """What is wrong with an archive, in words (minigrad.serialization adds the file's name)."""


def save_archive(file, document, arrays):
    """Write a text document and named host arrays into an open binary file as one .npz archive."""
    for name, array in arrays.items():
        if array.dtype.kind not in "biuf":
            raise TypeError(f"save_archive: array {name!r} has dtype {array.dtype}, which would need pickling")
    encoded = numpy.frombuffer(document.encode("utf-8"), dtype=numpy.uint8)
    numpy.savez(file, **{_DOCUMENT_NAME: encoded}, **arrays)


def load_archive(file):
    """(document or None, {name: host array}) with every member read, each checked as ArchiveReader checks it."""
    with ArchiveReader(file) as archive:
        return archive.document(), {name: archive.array(name) for name in archive.array_names()}


class ArchiveReader:
    """An .npz archive open for reading, one checked member at a time (a context manager).

    Raises ArchiveError for anything that is not an intact archive of .npy members.
    """

    def __init__(self, file):
        self._size = _file_size(file)
        try:
            self._zip = zipfile.ZipFile(file)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as error:
            raise ArchiveError(f"it is not a zip/.npz archive ({error})") from None
        self._budget = MAX_EXPANSION * self._size + EXPANSION_FREE_BYTES  # bytes all members may expand to
        self._checked = {}  # member name -> (shape, fortran_order, dtype, data offset); charged to the budget once

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        self._zip.close()

    def array_names(self):
        """The names of the archive's arrays (its .npy members), the document left out."""
        names = (info.filename[:-4] for info in self._zip.infolist() if info.filename.endswith(".npy"))
        return [name for name in names if name != _DOCUMENT_NAME]

    def __contains__(self, name):
        return isinstance(name, str) and name != _DOCUMENT_NAME and self._info(name) is not None

    def document(self):
        """The structure document as text, or None if the archive has none (a plain .npz file)."""
        if self._info(_DOCUMENT_NAME) is None:
            return None
        document = self._read(_DOCUMENT_NAME)
        if document.dtype != numpy.uint8 or document.ndim != 1:
            raise ArchiveError(f"the structure document is not a byte string (it has dtype {document.dtype} and "
                               f"shape {document.shape})")
        try:
            return document.tobytes().decode("utf-8")
        except UnicodeDecodeError as error:
            raise ArchiveError(f"the structure document is not UTF-8 text ({error})") from None

    def check(self, name):
        """Check array `name`'s entry and header against the file without reading its data."""
        self._header(name)

    def array(self, name):
        """Array `name` as a host array in native byte order, once its entry and header are checked."""
        if name not in self:
            raise ArchiveError(f"the archive holds no array {name!r}")
        return self._read(name)

    # -- checks ------------------------------------------------------------------------------
    def _info(self, name):
        try:
            return self._zip.getinfo(name + ".npy")
        except KeyError:
            return None

    @staticmethod
    def _label(name):
        return "the structure document" if name == _DOCUMENT_NAME else f"array {name!r}"

    def _header(self, name):
        """(shape, fortran_order, dtype, data offset) of a member, every check passed."""
        if name in self._checked:
            return self._checked[name]
        info, label = self._info(name), self._label(name)
        self._check_entry(info, label)
        if info.file_size > self._budget:
            limit = MAX_EXPANSION * self._size + EXPANSION_FREE_BYTES
            raise ArchiveError(f"the arrays referred to expand to more than {limit} bytes in all, more than "
                               f"{MAX_EXPANSION} times the archive's {self._size} bytes (plus 1 MiB), which only a "
                               f"crafted archive does ({label} is where the budget runs out)")
        with _reading(label), self._zip.open(info) as stream:
            prefix = _Prefix(stream, min(HEADER_LIMIT, info.file_size))
            shape, fortran_order, dtype = _read_header(prefix, label)
            offset = prefix.consumed
        count = 1
        for size in shape:
            count *= size
        declared = count * dtype.itemsize
        if offset + declared != info.file_size:
            raise ArchiveError(f"{label} declares shape {shape} {dtype} ({declared} bytes) but holds "
                               f"{info.file_size - offset} bytes of data")
        self._budget -= info.file_size
        self._checked[name] = shape, fortran_order, dtype, offset
        return self._checked[name]

    def _check_entry(self, info, label):
        """What the zip directory says of a member, against the file."""
        if info.flag_bits & 0x1:
            raise ArchiveError(f"{label} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ArchiveError(f"{label} uses compression method {info.compress_type}; a checkpoint's members "
                               "are stored or deflated")
        if info.header_offset + info.compress_size > self._size:
            raise ArchiveError(f"{label} claims {info.compress_size} stored bytes from offset {info.header_offset}, "
                               f"but the file ends at {self._size} (truncated or crafted)")
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            raise ArchiveError(f"{label} is stored uncompressed in {info.compress_size} bytes but says it expands "
                               f"to {info.file_size}")
        ceiling = MAX_DOCUMENT_EXPANSION if label == self._label(_DOCUMENT_NAME) else MAX_EXPANSION
        if info.file_size > EXPANSION_FREE_BYTES and info.file_size > ceiling * info.compress_size:
            ratio = info.file_size // max(info.compress_size, 1)
            raise ArchiveError(f"{label} expands {ratio}-fold (from {info.compress_size} to {info.file_size} bytes); "
                               f"over 1 MiB it may expand at most {ceiling}-fold (a zip bomb?)")

    # -- reading -----------------------------------------------------------------------------
    def _read(self, name):
        shape, fortran_order, dtype, offset = self._header(name)
        info, label = self._info(name), self._label(name)
        nbytes = info.file_size - offset
        data = numpy.empty(nbytes, dtype=numpy.uint8)  # as much as the checks above allow, no more
        view = memoryview(data)
        with _reading(label), self._zip.open(info) as stream:
            stream.read(offset)
            filled = 0
            while filled < nbytes:
                got = stream.readinto(view[filled:filled + _READ_CHUNK])
                if not got:
                    raise ArchiveError(f"{label} ends after {filled} of its {nbytes} bytes of data")
                filled += got
        array = data.view(dtype)
        array = array.reshape(shape[::-1]).transpose() if fortran_order else array.reshape(shape)
        return array if dtype.isnative else array.astype(dtype.newbyteorder("="))


@contextlib.contextmanager
def _reading(label):
    """Errors of reading a member (bad local header, damaged deflate stream, wrong CRC) as ArchiveErrors."""
    try:
        yield
    except ArchiveError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as error:
        raise ArchiveError(f"{label} is damaged ({type(error).__name__}: {error})") from None


class _Prefix:
    """The first `limit` bytes of a stream, counting what is read (so a header cannot ask for more)."""

    def __init__(self, stream, limit):
        self.stream, self.left, self.consumed = stream, limit, 0

    def read(self, size=-1):
        size = self.left if size is None or size < 0 else min(size, self.left)
        data = self.stream.read(size)
        self.left -= len(data)
        self.consumed += len(data)
        return data


def _read_header(stream, label):
    """(shape, fortran_order, dtype) from a .npy header, refusing what a tensor cannot hold."""
    try:
        version = numpy.lib.format.read_magic(stream)
    except ValueError as error:
        raise ArchiveError(f"{label} is not a .npy array ({error})") from None
    if version not in ((1, 0), (2, 0)):
        raise ArchiveError(f"{label} has .npy format version {version}, which minigrad does not read")
    read = numpy.lib.format.read_array_header_1_0 if version == (1, 0) else numpy.lib.format.read_array_header_2_0
    try:
        shape, fortran_order, dtype = read(stream)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as error:
        raise ArchiveError(f"{label} has an unreadable .npy header ({error})") from None
    if dtype.hasobject:
        raise ArchiveError(f"{label} holds pickled Python objects (dtype {dtype}), which minigrad never loads "
                           "since unpickling can run code")
    if dtype.fields is not None or dtype.subdtype is not None:
        raise ArchiveError(f"{label} has a structured dtype {dtype}, which a tensor cannot have")
    if dtype.char not in _ALLOWED_DTYPES:
        raise ArchiveError(f"{label} has dtype {dtype}, which is not allowed (a tensor holds bool, integers "
                           "or float16/32/64)")
    if len(shape) > MAX_DIMENSIONS:
        raise ArchiveError(f"{label} declares a shape with {len(shape)} dimensions (at most {MAX_DIMENSIONS})")
    if any(size < 0 for size in shape):
        raise ArchiveError(f"{label} declares shape {shape}, which has a negative size")
    return shape, fortran_order, dtype


def _file_size(file):
    """How long the file is: what no zip entry may reach past."""
    if hasattr(file, "seek"):
        position = file.tell()
        size = file.seek(0, 2)
        file.seek(position)
        return size
    return os.path.getsize(file)
