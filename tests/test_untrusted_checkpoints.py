"""Untrusted checkpoints (issue 13): a crafted file can fail to load -- quickly, in one error that says what
is wrong -- but it can never make the loader allocate more than the file holds.

Crafted files are written member by member with `_write_zip`, so that a test can make a zip say what a real
one never would (a member declaring 10**12 elements, a gigabyte of zeros in a kilobyte). The memory tests
load in a subprocess whose address space is capped (RLIMIT_AS) a few hundred MB above what it uses after
importing minigrad: a regression fails the test instead of exhausting the machine.
"""
import io
import json
import os
import re
import struct
import subprocess
import sys
import zipfile
import zlib

import numpy as np
import pytest

import minigrad
import nn
from minigrad import optim
from minigrad.serialization import CheckpointError
from transformer.checkpoint import (MAX_PARAMETERS, load_checkpoint, restore_model, restore_training,
                                    save_checkpoint, transformer_size)
from transformer.errors import UsageError
from transformer.model import Transformer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADROOM = 384 << 20  # what a capped subprocess may map beyond its size after the imports
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is enforced on Linux")


# -- writing crafted archives --------------------------------------------------------------------
def _npy(array):
    """An array as the bytes of a .npy file (what np.savez puts in each member)."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=True)
    return buffer.getvalue()


def _npy_header(shape, descr, fortran_order=False, version=(1, 0)):
    """Only the header of a .npy file: what it declares, with no data behind it."""
    buffer = io.BytesIO()
    header = {"descr": descr, "fortran_order": fortran_order, "shape": tuple(shape)}
    if version == (1, 0):
        np.lib.format.write_array_header_1_0(buffer, header)
    else:
        np.lib.format.write_array_header_2_0(buffer, header)
    return buffer.getvalue()


def _document(root, **header):
    text = json.dumps({"format": "minigrad-checkpoint", "version": 1, "root": root, **header})
    return _npy(np.frombuffer(text.encode(), dtype=np.uint8))


def _tensor(name):
    return {"tensor": name, "device": "cpu", "requires_grad": False}


class _Member:
    """One zip member as it lies in the file: its bytes (compressed or not) and what the directory says."""

    def __init__(self, name, data, crc, size, method=zipfile.ZIP_STORED, flags=0):
        self.name, self.data, self.crc, self.size, self.method, self.flags = name, data, crc, size, method, flags


def _stored(name, content):
    return _Member(name, content, zlib.crc32(content), len(content))


def _deflated(name, content):
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return _Member(name, compressor.compress(content) + compressor.flush(), zlib.crc32(content), len(content),
                   zipfile.ZIP_DEFLATED)


_MiB = 1 << 20
_ZEROS = bytes(_MiB)
_ZEROS_CRC = {}


def _zeros_crc(mebibytes, crc):
    """crc32 of `mebibytes` MiB of zeros after `crc` (computed once per start value and length)."""
    key = (mebibytes, crc)
    if key not in _ZEROS_CRC:
        for _ in range(mebibytes):
            crc = zlib.crc32(_ZEROS, crc)
        _ZEROS_CRC[key] = crc
    return _ZEROS_CRC[key]


def _zeros_member(name, nbytes):
    """A valid uint8 .npy member of `nbytes` zeros, deflated ~1000-fold, without ever holding them.

    After a full flush deflate starts afresh, so every MiB of zeros compresses to the same few bytes:
    the stream is the header's block, that block repeated, the rest and the end.
    """
    header = _npy_header((nbytes,), "|u1")
    mebibytes, rest = divmod(nbytes, _MiB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(header) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(_ZEROS) + compressor.flush(zlib.Z_FULL_FLUSH)
    data = head + block * mebibytes + compressor.compress(bytes(rest)) + compressor.flush(zlib.Z_FINISH)
    crc = zlib.crc32(bytes(rest), _zeros_crc(mebibytes, zlib.crc32(header)))
    return _Member(name, data, crc, len(header) + nbytes, zipfile.ZIP_DEFLATED)


def _write_zip(path, members, central=None):
    """A plain (non-zip64) zip of `members`; `central` may replace what the directory says of each one."""
    with open(path, "wb") as file:
        records = []
        for member in members:
            offset, name = file.tell(), member.name.encode()
            file.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, member.flags, member.method, 0, 0x21, member.crc,
                                   len(member.data), member.size, len(name), 0) + name + member.data)
            said = (central or {}).get(member.name, {})
            records.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, member.flags, member.method, 0, 0x21,
                                       member.crc, said.get("compress_size", len(member.data)),
                                       said.get("file_size", member.size), len(name), 0, 0, 0, 0, 0, offset) + name)
        start = file.tell()
        file.write(b"".join(records))
        file.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(records), len(records), file.tell() - start,
                               start, 0))
    return path


def _checkpoint(path, root, *members, document=None):
    """A checkpoint whose structure is `root` and whose arrays are `members` (each named name.npy)."""
    document = _document(root) if document is None else document
    return _write_zip(path, [_stored("__document__.npy", document), *members])


def _refused(path, pattern):
    with pytest.raises(CheckpointError, match=pattern) as info:
        minigrad.load(path)
    assert os.fspath(path) in str(info.value)
    return str(info.value)


# -- loading under a memory cap ------------------------------------------------------------------
_CAPPED = r"""
import json, resource, sys
import minigrad
from transformer.checkpoint import load_checkpoint, restore_model

def mapped():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))

resource.setrlimit(resource.RLIMIT_AS, (mapped() + int(sys.argv[2]), resource.getrlimit(resource.RLIMIT_AS)[1]))
path = sys.argv[1]
try:
    result = eval(sys.argv[3])
    print(json.dumps({"ok": repr(result)[:200]}))
except BaseException as error:
    print(json.dumps({"error": type(error).__name__, "message": str(error)}))
"""


def _capped(path, expression="minigrad.load(path)"):
    """Evaluate `expression` on `path` in a subprocess that can map only HEADROOM more; its outcome as a dict."""
    environment = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                       MKL_NUM_THREADS="1", MALLOC_ARENA_MAX="2")
    done = subprocess.run([sys.executable, "-c", _CAPPED, str(path), str(HEADROOM), expression], cwd=REPO,
                          env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip(), done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _assert_capped_refusal(outcome, error, pattern):
    assert outcome.get("error") == error, outcome
    assert "MemoryError" not in outcome["message"], outcome  # refused by a check, not by running out
    assert re.search(pattern, outcome["message"]), outcome


@pytest.fixture(scope="module")
def gibibyte_of_zeros():
    """A 1 GiB member of zeros that lies in about a megabyte."""
    return _zeros_member("bomb.npy", 1 << 30)


@linux_only
def test_a_huge_declared_shape_is_refused_before_anything_is_allocated(tmp_path):
    """The header of a 136-byte member declares 10**12 float64 (8 TB); the member holds 8 bytes."""
    path = _checkpoint(tmp_path / "huge.ckpt", _tensor("tensor0"),
                       _stored("tensor0.npy", _npy_header((10**12,), "<f8") + bytes(8)))
    _assert_capped_refusal(_capped(path), "CheckpointError",
                           r"declares shape \(1000000000000,\) float64.*8000000000000 bytes.*holds 8")
    _refused(path, "declares shape")


@linux_only
def test_a_zip_bomb_is_refused_before_it_is_expanded(tmp_path, gibibyte_of_zeros):
    """A real, valid 1 GiB member of zeros in 1 MB (expanding 1000-fold) is never expanded."""
    path = _checkpoint(tmp_path / "bomb.ckpt", _tensor("bomb"), gibibyte_of_zeros)
    assert os.path.getsize(path) < 2 * _MiB
    _assert_capped_refusal(_capped(path), "CheckpointError", r"'bomb'.*expands 10\d\d-fold.*at most 100-fold")


@linux_only
def test_a_member_nothing_refers_to_is_never_read(tmp_path, gibibyte_of_zeros):
    path = _checkpoint(tmp_path / "unreferenced.ckpt", {"dict": [["w", _tensor("tensor0")]]},
                       _stored("tensor0.npy", _npy(np.arange(3.0))), gibibyte_of_zeros)
    outcome = _capped(path, "minigrad.load(path)['w'].tolist()")
    assert outcome == {"ok": "[0.0, 1.0, 2.0]"}
    assert minigrad.load(path)["w"].tolist() == [0.0, 1.0, 2.0]


def test_a_structure_document_that_deflates_far_is_refused(tmp_path):
    """10 MB of JSON text in 10 KB would become 10**6 Python objects and more."""
    text = b'{"format": "minigrad-checkpoint", "version": 1, "root": {"list": [' + b"0, " * 3_000_000 + b"0]}}"
    path = _write_zip(tmp_path / "document.ckpt", [_deflated("__document__.npy", _npy(np.frombuffer(text, np.uint8)))])
    assert os.path.getsize(path) < 100_000
    _refused(path, r"the structure document expands \d+-fold .*at most 10-fold")


@linux_only
def test_many_small_members_cannot_add_up_to_a_bomb(tmp_path):
    """Members up to 1 MiB may compress any amount; 600 of them, 1000-fold each, exceed the archive's budget."""
    one = _zeros_member("x.npy", _MiB - len(_npy_header((_MiB,), "|u1")))
    assert one.size == _MiB
    members = [_Member(f"m{i}.npy", one.data, one.crc, one.size, one.method) for i in range(600)]
    path = _checkpoint(tmp_path / "many.ckpt", {"list": [_tensor(f"m{i}") for i in range(600)]}, *members)
    assert os.path.getsize(path) < 2 * _MiB
    _assert_capped_refusal(_capped(path), "CheckpointError", r"in all.*more than 100 times")


# -- what each member declares against what it holds ---------------------------------------------
def test_a_header_declaring_less_than_the_member_holds_is_refused(tmp_path):
    path = _checkpoint(tmp_path / "long.ckpt", _tensor("t"), _stored("t.npy", _npy_header((2,), "<f4") + bytes(12)))
    _refused(path, r"declares shape \(2,\) float32 \(8 bytes\) but holds 12")


def test_negative_or_absurd_shapes_are_refused(tmp_path):
    header = _npy_header((3,), "<f4").replace(b"(3,)", b"(-3,)")
    path = _checkpoint(tmp_path / "negative.ckpt", _tensor("t"), _stored("t.npy", header))
    _refused(path, r"'t'.*shape \(-3,\)")
    path = _checkpoint(tmp_path / "dims.ckpt", _tensor("t"), _stored("t.npy", _npy_header((1,) * 70, "<f4") + bytes(4)))
    _refused(path, "70 dimensions")


@pytest.mark.parametrize("descr, why", [
    ("<c16", "dtype complex128, which is not allowed"),
    ("<M8[s]", r"dtype datetime64\[s\], which is not allowed"),
    ("<U3", "dtype <U3, which is not allowed"),
    ([("a", "<f4"), ("b", "<i4")], "structured"),
])
def test_dtypes_a_tensor_cannot_have_are_refused(tmp_path, descr, why):
    header = _npy_header((2,), descr)
    itemsize = np.lib.format.descr_to_dtype(descr).itemsize
    path = _checkpoint(tmp_path / "dtype.ckpt", _tensor("t"), _stored("t.npy", header + bytes(2 * itemsize)))
    _refused(path, why)


def test_object_arrays_are_refused_as_pickles_and_run_nothing(tmp_path):
    path = _checkpoint(tmp_path / "pickle.ckpt", _tensor("t"),
                       _stored("t.npy", _npy(np.array([{"a": 1}, None], dtype=object))))
    _refused(path, "'t'.*pickled Python objects")


def test_odd_npy_versions_and_magic_are_refused(tmp_path):
    header = bytearray(_npy_header((2,), "<f4"))
    header[6] = 3  # version 3.0
    _refused(_checkpoint(tmp_path / "v3.ckpt", _tensor("t"), _stored("t.npy", bytes(header) + bytes(8))),
             r"'t'.*\.npy format version \(3, 0\)")
    _refused(_checkpoint(tmp_path / "magic.ckpt", _tensor("t"), _stored("t.npy", b"GIF89a" + bytes(100))),
             "'t'.*not a .npy array")
    huge_header = _npy_header((2,), "<f4", version=(2, 0))[:8] + struct.pack("<I", 2**31) + b"{"
    _refused(_checkpoint(tmp_path / "header.ckpt", _tensor("t"), _stored("t.npy", huge_header)), "'t'")


def test_version_2_headers_fortran_order_and_big_endian_arrays_load(tmp_path):
    """What a real NumPy writes still loads, with the right values (in native byte order)."""
    matrix = np.asfortranarray(np.arange(6, dtype=">f8").reshape(2, 3))
    content = _npy_header((2, 3), ">f8", fortran_order=True, version=(2, 0)) + matrix.tobytes(order="F")
    path = _checkpoint(tmp_path / "f.ckpt", _tensor("t"), _deflated("t.npy", content))
    loaded = minigrad.load(path)
    assert loaded.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]] and loaded.dtype == np.float64
    assert loaded.numpy().dtype.isnative


def test_what_the_zip_directory_says_is_checked_against_the_file(tmp_path):
    content = _npy(np.arange(4.0))
    path = _write_zip(tmp_path / "beyond.ckpt", [_stored("__document__.npy", _document(_tensor("t"))),
                                                  _stored("t.npy", content)],
                      central={"t.npy": {"compress_size": 10**9, "file_size": 10**9}})
    _refused(path, r"'t'.*1000000000 stored bytes.*ends")
    path = _write_zip(tmp_path / "stored.ckpt", [_stored("__document__.npy", _document(_tensor("t"))),
                                                  _stored("t.npy", content)],
                      central={"t.npy": {"file_size": 10 * len(content)}})
    _refused(path, r"'t'.*stored uncompressed.*but says")


def test_encrypted_and_exotically_compressed_members_are_refused(tmp_path):
    content = _npy(np.arange(4.0))
    encrypted = _stored("t.npy", content)
    encrypted.flags = 1
    _refused(_checkpoint(tmp_path / "encrypted.ckpt", _tensor("t"), encrypted), "'t'.*encrypted")
    bzip = _stored("t.npy", content)
    bzip.method = zipfile.ZIP_BZIP2
    _refused(_checkpoint(tmp_path / "bzip.ckpt", _tensor("t"), bzip), "'t'.*compression method 12")


def test_a_damaged_deflated_member_is_refused(tmp_path):
    member = _deflated("t.npy", _npy(np.arange(1000.0)))
    member.data = member.data[:20] + bytes(len(member.data) - 20)
    _refused(_checkpoint(tmp_path / "damaged.ckpt", _tensor("t"), member), "'t'")


def test_a_compressed_checkpoint_with_modest_ratios_loads(tmp_path):
    """np.savez_compressed-style members (deflated), and a small member of zeros (any ratio under 1 MiB)."""
    weights = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    path = _checkpoint(tmp_path / "compressed.ckpt", {"list": [_tensor("w"), _tensor("b")]},
                       _deflated("w.npy", _npy(weights)), _deflated("b.npy", _npy(np.zeros(100_000, np.float32))))
    w, b = minigrad.load(path)
    np.testing.assert_array_equal(w.numpy(), weights)
    assert b.shape == (100_000,) and not b.numpy().any()


# -- the structure document ------------------------------------------------------------------------
@pytest.mark.parametrize("root, why", [
    ({"tensor": 5}, "refers to an array 5"),
    ({"tensor": "missing"}, "refers to an array 'missing' that the archive does not hold"),
    ({"tensor": "__document__"}, "refers to an array '__document__'"),
    ({"tensor": "t", "device": 7}, "device 7"),
    ({"tensor": "t", "requires_grad": "yes"}, "requires_grad 'yes'"),
    ({"tensor": "t", "colour": "red"}, "colour"),
    ({"list": 3}, "malformed"),
    ({"list": [], "tuple": []}, "malformed"),
    ({"dict": [[1]]}, "malformed dict entry"),
    ({"dict": [[[1], 2]]}, "malformed dict entry"),
    ({"dict": "x"}, "malformed"),
    ([1, 2], "malformed structure node"),
    ({}, "malformed"),
])
def test_a_tampered_structure_is_refused(tmp_path, root, why):
    path = _checkpoint(tmp_path / "tampered.ckpt", root, _stored("t.npy", _npy(np.arange(3.0))))
    _refused(path, why)


@pytest.mark.parametrize("document, why", [
    (_npy(np.frombuffer(b"[1, 2]", dtype=np.uint8)), "unknown structure document"),
    (_npy(np.frombuffer(json.dumps({"format": "minigrad-checkpoint", "version": 1}).encode(), np.uint8)),
     "unknown structure document"),
    (_npy(np.frombuffer(json.dumps({"format": "minigrad-checkpoint", "version": "1", "root": 1}).encode(),
                        np.uint8)), "version '1'"),
    (_npy(np.frombuffer(b"\xff\xfe not utf-8", dtype=np.uint8)), "UTF-8"),
    (_npy(np.frombuffer(b"{\"root\": 1" * 3, dtype=np.uint8)), "not valid JSON"),
    (_npy(np.arange(4.0)), "structure document is not a byte string"),
    (_npy_header((10**9,), "|u1") + bytes(10), "structure document declares shape"),
], ids=["a list", "no root", "string version", "not UTF-8", "not JSON", "floats", "declares a gigabyte"])
def test_a_tampered_document_is_refused(tmp_path, document, why):
    _refused(_checkpoint(tmp_path / "document.ckpt", None, document=document), why)


def test_a_deeply_nested_structure_is_refused_not_a_recursion_error(tmp_path):
    root = '{"list": [' * 5000 + "1" + "]}" * 5000
    document = '{"format": "minigrad-checkpoint", "version": 1, "root": ' + root + "}"
    path = _checkpoint(tmp_path / "deep.ckpt", None, document=_npy(np.frombuffer(document.encode(), np.uint8)))
    _refused(path, "nested")


def test_a_structure_as_deep_as_allowed_round_trips(tmp_path):
    value = [1]
    for _ in range(minigrad.serialization.MAX_DEPTH - 1):
        value = [value]
    minigrad.save(value, tmp_path / "deep.ckpt")
    assert minigrad.load(tmp_path / "deep.ckpt") == value
    with pytest.raises(ValueError, match="nested more than"):
        minigrad.save([value], tmp_path / "deeper.ckpt")


def test_every_failure_is_a_checkpoint_error(tmp_path):
    """Not a zip, a directory, a missing file, a device this machine lacks, and cut or flipped bytes anywhere."""
    assert minigrad.CheckpointError is CheckpointError and issubclass(CheckpointError, RuntimeError)
    (tmp_path / "noise.ckpt").write_bytes(os.urandom(3000))
    _refused(tmp_path / "noise.ckpt", "not a zip")
    _refused(tmp_path, "not a readable minigrad checkpoint")
    with pytest.raises(CheckpointError, match="no such file") as info:
        minigrad.load(tmp_path / "nowhere.ckpt")
    assert isinstance(info.value, FileNotFoundError)
    path = _checkpoint(tmp_path / "xpu.ckpt", {"tensor": "t", "device": "xpu:3", "requires_grad": False},
                       _stored("t.npy", _npy(np.arange(3.0))))
    _refused(path, "xpu:3.*map_location='cpu'")

    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    good = tmp_path / "good.ckpt"
    minigrad.save({"model": model.state_dict(), "step": 3, "name": "run"}, good)
    data = good.read_bytes()
    rng = np.random.default_rng(0)
    for index in range(150):
        mutated = bytearray(data)
        if index % 3 == 0:
            mutated = mutated[:int(rng.integers(len(data)))]
        else:
            for position in rng.integers(len(data), size=int(rng.integers(1, 4))):
                mutated[position] = int(rng.integers(256))
        path = tmp_path / f"mutated{index}.ckpt"
        path.write_bytes(bytes(mutated))
        try:
            minigrad.load(path)
        except CheckpointError:
            pass


# -- optimizer state --------------------------------------------------------------------------------
def _trained_adam(**settings):
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    optimizer = optim.Adam(model.parameters(), lr=0.01, **settings)
    model(minigrad.randn(5, 3)).sum().backward()
    optimizer.step()
    return model, optimizer


def _fresh_adam():
    return optim.Adam(nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)).parameters(), lr=0.5)


def _tampered(state, change):
    state = {"state": {index: dict(entry) for index, entry in state["state"].items()},
             "param_groups": [dict(group) for group in state["param_groups"]]}
    change(state)
    return state


@pytest.mark.parametrize("change, why", [
    (lambda s: s["state"][0].update(exp_avg=minigrad.zeros(3, 4)),
     r"parameter 0: exp_avg has shape \(3, 4\), the parameter \(4, 3\)"),
    (lambda s: s["state"][3].update(exp_avg_sq=minigrad.zeros(7)),
     r"parameter 3: exp_avg_sq has shape \(7,\), the parameter \(2,\)"),
    (lambda s: s["state"][1].update(exp_avg=3.0), "parameter 1: exp_avg is a float, not a tensor"),
    (lambda s: s["state"][1].update(exp_avg=minigrad.zeros(4, dtype=minigrad.int64)),
     "parameter 1: exp_avg has dtype int64"),
    (lambda s: s["state"][0].update(step=-1), "parameter 0: step -1"),
    (lambda s: s["state"][0].update(step=2.5), "parameter 0: step 2.5"),
    (lambda s: s["state"][0].update(step=True), "parameter 0: step True"),
    (lambda s: s["state"][0].update(step=minigrad.tensor(1)), "parameter 0: step is a Tensor"),
    (lambda s: s["state"][2].update(momentum=minigrad.zeros(4, 3)), "parameter 2: unknown state 'momentum'"),
    (lambda s: s["state"][2].pop("exp_avg_sq"), "parameter 2: no 'exp_avg_sq'"),
    (lambda s: s["state"].update({7: {}}), "parameter 7.*only 4 parameters"),
    (lambda s: s["state"].update({"x": {}}), "parameter index 'x'"),
    (lambda s: s["state"].update({0: [1]}), "parameter 0: its state is a list"),
    (lambda s: s.update(extra=1), "unknown key 'extra'"),
    (lambda s: s.pop("param_groups"), "no 'param_groups'"),
    (lambda s: s.update(state=[]), "'state' is a list"),
    (lambda s: s["param_groups"][0].update(params=[0, 1, 1, 2]), "parameter 1 twice"),
    (lambda s: s["param_groups"][0].update(params=[0, 1, 2, "3"]), "parameter index '3'"),
    (lambda s: s["param_groups"][0].update(lr="fast"), "lr 'fast'"),
    (lambda s: s["param_groups"][0].update(betas=[0.9]), r"betas \[0.9\]"),
    (lambda s: s["param_groups"][0].update(amsgrad=1), "amsgrad 1"),
    (lambda s: s["param_groups"][0].update(colour="red"), "unknown hyper-parameter 'colour'"),
    (lambda s: s["param_groups"][0].update(amsgrad=True), "parameter 0: no 'max_exp_avg_sq'"),
])
def test_a_tampered_optimizer_state_is_refused_at_load_and_changes_nothing(change, why):
    _, optimizer = _trained_adam()
    fresh = _fresh_adam()
    before = fresh.state_dict()
    with pytest.raises(ValueError, match=why):
        fresh.load_state_dict(_tampered(optimizer.state_dict(), change))
    assert fresh.state_dict() == before and fresh.param_groups[0]["lr"] == 0.5


def test_a_tampered_optimizer_state_from_a_file_is_refused_at_load(tmp_path):
    _, optimizer = _trained_adam()
    state = optimizer.state_dict()
    state["state"][0]["exp_avg"] = minigrad.zeros(4, 4)
    minigrad.save(state, tmp_path / "opt.ckpt")
    with pytest.raises(ValueError, match=r"parameter 0: exp_avg has shape \(4, 4\), the parameter \(4, 3\)"):
        _fresh_adam().load_state_dict(minigrad.load(tmp_path / "opt.ckpt"))


def test_intact_optimizer_states_still_load():
    """amsgrad, SGD with and without momentum, a schedule's initial_lr, and states saved before any step."""
    model, optimizer = _trained_adam(amsgrad=True)
    fresh = optim.Adam(model.parameters(), amsgrad=True)
    fresh.load_state_dict(optimizer.state_dict())
    assert set(fresh.state[model[0].weight]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    for momentum in (0.0, 0.9):
        sgd = optim.SGD(model.parameters(), lr=0.1, momentum=momentum)
        optim.lr_scheduler.LambdaLR(sgd, lambda step: 1.0)
        model(minigrad.randn(2, 3)).sum().backward()
        sgd.step()
        optim.SGD(model.parameters(), lr=0.5, momentum=momentum).load_state_dict(sgd.state_dict())
    untouched = optim.Adam(model.parameters())
    optim.Adam(model.parameters()).load_state_dict(untouched.state_dict())


def test_a_model_state_with_a_wrong_shape_names_the_key_and_both_shapes():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    state = model.state_dict()
    state["1.weight"] = minigrad.zeros(2, 5)
    with pytest.raises(RuntimeError, match=r"1\.weight: checkpoint has shape \(2, 5\), the model \(2, 4\)"):
        nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)).load_state_dict(state)


# -- a training run's checkpoint: the model configuration -------------------------------------------
CONFIG = dict(src_vocab_size=11, tgt_vocab_size=11, d_model=8, n_heads=2, d_ff=16, n_encoder_layers=1,
              n_decoder_layers=1, dropout=0.1, norm_first=False, activation="relu", tie_generator=False,
              share_embeddings=False, max_len=16, pad_id=0)


@pytest.fixture
def run_checkpoint(tmp_path):
    """A train.py checkpoint of a tiny model, and a function that writes a tampered copy of it."""
    from transformer.batching import BatchStream
    from transformer.corpus import prepare_corpus
    from transformer.optimizer import build_optimizer
    from transformer.run_settings import TRAIN_DEFAULTS

    settings = {**TRAIN_DEFAULTS, "task": "copy", "train_size": 24, "valid_size": 4, "d_model": 8, "heads": 2,
                "d_ff": 16, "layers": 1, "batch_size": 4, "warmup": 2, "max_len": 16, "steps": 10, "device": "cpu"}
    corpus = prepare_corpus(settings)
    model = Transformer(len(corpus.src_vocab), len(corpus.tgt_vocab), d_model=8, n_heads=2, d_ff=16,
                        n_encoder_layers=1, n_decoder_layers=1, max_len=16, pad_id=corpus.src_vocab.pad_id)
    optimizer, schedule = build_optimizer(model, settings, settings["steps"])
    stream = BatchStream(corpus, settings["batch_size"], settings["seed"])
    path = tmp_path / "run.ckpt"
    save_checkpoint(path, model, optimizer, schedule, corpus, settings, 0, stream)

    def tampered(change, name="tampered.ckpt"):
        state = minigrad.load(path)
        change(state)
        minigrad.save(state, tmp_path / name)
        return tmp_path / name

    return path, tampered, (corpus, model, optimizer, schedule, stream)


def _config_change(**changes):
    def change(state):
        state["model_config"] = json.dumps({**json.loads(state["model_config"]), **changes})
    return change


@linux_only
def test_a_checkpoint_declaring_d_model_ten_million_is_refused_before_the_model_is_built(run_checkpoint):
    intact, tampered, _ = run_checkpoint
    path = tampered(_config_change(d_model=10**7))
    assert os.path.getsize(path) < 1_000_000
    for expression in ("load_checkpoint(path)", "restore_model(load_checkpoint(path, max_parameters=10**12), 'cpu')"):
        _assert_capped_refusal(_capped(path, expression), "UsageError",
                               r"model_config declares .* parameters .*but the checkpoint holds")
    by_hand = ("(lambda s: restore_model({**s, 'model_config': {**s['model_config'], 'd_model': 10**7}}, 'cpu', "
               "max_parameters=10**20))(load_checkpoint(path))")  # a state made in memory, any ceiling
    _assert_capped_refusal(_capped(intact, by_hand), "UsageError", r"declares .* parameters .*but the checkpoint holds")
    with pytest.raises(UsageError, match=r"tampered.ckpt: model_config declares \d+ parameters"):
        load_checkpoint(path)


@pytest.mark.parametrize("changes, why", [
    (dict(n_heads=3), "d_model 8 is not divisible by n_heads 3"),
    (dict(d_ff=-5), "d_ff -5"),
    (dict(d_model=0), "d_model 0"),
    (dict(n_encoder_layers=-1), "n_encoder_layers -1"),
    (dict(d_model="8"), "d_model '8'"),
    (dict(d_model=8.0), "d_model 8.0"),
    (dict(norm_first=1), "norm_first 1"),
    (dict(dropout=1.5), "dropout 1.5"),
    (dict(activation="tanh"), "activation 'tanh'"),
    (dict(pad_id=99), "pad_id 99"),
    (dict(share_embeddings=True, tgt_vocab_size=12), "tgt_vocab_size 12|share_embeddings"),
    (dict(colour="red"), "unknown setting 'colour'"),
    (dict(src_vocab_size=10**6), r"src_vocab_size 1000000.*vocabulary has \d+ tokens"),
    (dict(n_encoder_layers=2), r"in 46 tensors of state\), but the checkpoint holds \d+ numbers in 34 tensors"),
])
def test_an_insane_or_inconsistent_model_config_is_refused(run_checkpoint, changes, why):
    _, tampered, _ = run_checkpoint
    with pytest.raises(UsageError, match=why):
        load_checkpoint(tampered(_config_change(**changes)))


@pytest.mark.parametrize("change, why", [
    (lambda s: s.pop("model_config"), "no 'model_config'"),
    (lambda s: s.update(model_config="{not json"), "'model_config' is not valid JSON"),
    (lambda s: s.update(model_config=json.dumps([1])), "'model_config' should be a JSON object, not list"),
    (lambda s: s.update(model=[1, 2]), "'model' should be a dict of tensors, not list"),
    (lambda s: s["model"].update(extra=3), "'model' entry 'extra' should be a tensor, not int"),
    (lambda s: s.update(step=-3), "step -3"),
    (lambda s: s.update(src_vocab=[1, 2]), "src_vocab"),
    (lambda s: s.update(version=2), "version 2"),
    (lambda s: s.update(settings=5), "'settings' should be JSON text, not int"),
])
def test_a_tampered_run_checkpoint_is_refused_in_one_line(run_checkpoint, change, why):
    _, tampered, _ = run_checkpoint
    with pytest.raises(UsageError, match=why):
        load_checkpoint(tampered(change))


def test_the_parameter_ceiling_is_the_callers_to_raise(run_checkpoint):
    path, _, (_, model, *_) = run_checkpoint
    state = load_checkpoint(path)
    assert MAX_PARAMETERS == 10**9
    with pytest.raises(UsageError, match=r"more than the 1000 allowed"):
        restore_model(state, "cpu", max_parameters=1000)
    with pytest.raises(UsageError, match=r"more than the 1000 allowed"):
        load_checkpoint(path, max_parameters=1000)
    restored, _, _ = restore_model(state, "cpu", max_parameters=model.num_parameters() + model.max_len * 8)
    assert restored.num_parameters() == model.num_parameters()


def test_restore_model_checks_a_hand_made_state_too(run_checkpoint):
    path, _, _ = run_checkpoint
    state = load_checkpoint(path)
    state["model_config"] = {**state["model_config"], "n_heads": 3}
    with pytest.raises(UsageError, match="not divisible"):
        restore_model(state, "cpu")


@pytest.mark.parametrize("config", [
    CONFIG, {**CONFIG, "norm_first": True}, {**CONFIG, "tie_generator": True}, {**CONFIG, "share_embeddings": True},
    {**CONFIG, "share_embeddings": True, "tie_generator": True, "norm_first": True},
    {**CONFIG, "n_encoder_layers": 0, "n_decoder_layers": 3, "tgt_vocab_size": 13, "d_ff": 5, "n_heads": 4},
])
def test_transformer_size_matches_the_model_it_describes(config):
    """What the checker computes from a config is what Transformer(**config) builds (keep them in step)."""
    model = Transformer(**config)
    parameters, tensors, elements = transformer_size(config)
    state = model.state_dict()
    assert parameters == model.num_parameters()
    assert tensors == len(state) and elements == sum(t.numel() for t in state.values())


def test_a_tampered_schedule_or_optimizer_in_a_run_checkpoint_is_refused_in_one_line(run_checkpoint):
    _, tampered, run = run_checkpoint
    corpus, model, optimizer, schedule, stream = run
    path = tampered(lambda s: s["schedule"].update(optimizer={"param_groups": []}), "schedule.ckpt")
    with pytest.raises(UsageError, match="schedule.ckpt.*schedule state.*'optimizer'"):
        restore_training(load_checkpoint(path), corpus, model, optimizer, schedule, stream)
    assert schedule.optimizer is optimizer
    path = tampered(lambda s: s["schedule"].update(last_epoch="soon"), "epoch.ckpt")
    with pytest.raises(UsageError, match="epoch.ckpt.*last_epoch 'soon'"):
        restore_training(load_checkpoint(path), corpus, model, optimizer, schedule, stream)

    def wrong_shape(state):
        state["optimizer"]["state"][0] = {"step": 1, "exp_avg": minigrad.zeros(2), "exp_avg_sq": minigrad.zeros(2)}
    path = tampered(wrong_shape, "optimizer.ckpt")
    with pytest.raises(UsageError, match=r"optimizer.ckpt.*parameter 0: exp_avg has shape \(2,\)"):
        restore_training(load_checkpoint(path), corpus, model, optimizer, schedule, stream)
