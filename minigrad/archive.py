"""Checkpoint files on disk: a text document and named host arrays in one .npz archive.

minigrad.serialization decides what goes into the document and the arrays; this module only
writes and reads them, with NumPy (reached through the backend's host module), never pickle.
"""
from .backend.host import host_numpy as numpy

_DOCUMENT_NAME = "__document__"


def save_archive(file, document, arrays):
    """Write a text document and named host arrays into an open binary file as one .npz archive."""
    for name, array in arrays.items():
        if array.dtype.kind not in "biuf":
            raise TypeError(f"save_archive: array {name!r} has dtype {array.dtype}, which would need pickling")
    encoded = numpy.frombuffer(document.encode("utf-8"), dtype=numpy.uint8)
    numpy.savez(file, **{_DOCUMENT_NAME: encoded}, **arrays)


def load_archive(file):
    """(document or None, {name: host array}) from an .npz archive, read with pickling disabled.

    allow_pickle=False makes NumPy refuse object arrays and pickle streams outright,
    so a crafted file can fail to load but never run code.
    """
    archive = numpy.load(file, allow_pickle=False)
    if not isinstance(archive, numpy.lib.npyio.NpzFile):
        raise ValueError("this is a single .npy array, not an .npz archive")
    with archive:
        arrays = {name: archive[name] for name in archive.files}
    document = arrays.pop(_DOCUMENT_NAME, None)
    if document is not None:
        document = document.tobytes().decode("utf-8")
    return document, arrays
