"""Checkpoints: minigrad.save / minigrad.load round trips, refusal of foreign or crafted files, atomic writes."""
import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

import minigrad
import nn
from minigrad import optim
from minigrad.serialization import CheckpointError


def _checkpoint_files(directory):
    return sorted(os.listdir(directory))


def test_round_trip_keeps_every_value_and_dtype(tmp_path, rng):
    minigrad.randn(3)  # make the CPU generator exist, so its state (with 128-bit ints) is in the dict
    state = {
        "f32": minigrad.tensor(rng.standard_normal((2, 3)).astype(np.float32)),
        "f64": minigrad.tensor(rng.standard_normal(4)),
        "i64": minigrad.tensor(np.array([1, -2, 2**40], dtype=np.int64)),
        "bool": minigrad.tensor(np.array([[True, False]])),
        "scalar": minigrad.tensor(np.float64(2.5)),
        "nested": {"list": [1, 2.5, "three", None, True, False], "tuple": (1, (2, "x")), "empty": {}},
        "big": 2**127 + 12345,
        "neg_big": -(2**100),
        "floats": [0.1, 1e-300, float("inf"), -0.0],
        "unicode": "déjà vu → ✓",
        3: "int key",
        "rng": minigrad.get_rng_state(),
    }
    path = tmp_path / "all.ckpt"
    minigrad.save(state, path)
    loaded = minigrad.load(path)
    assert list(loaded) == list(state)
    for key in ("f32", "f64", "i64", "bool", "scalar"):
        assert loaded[key].dtype == state[key].dtype and loaded[key].shape == state[key].shape
        np.testing.assert_array_equal(loaded[key].numpy(), state[key].numpy())
    assert loaded["nested"] == state["nested"]
    assert isinstance(loaded["nested"]["tuple"], tuple) and isinstance(loaded["nested"]["tuple"][1], tuple)
    assert loaded["big"] == 2**127 + 12345 and loaded["neg_big"] == -(2**100)
    assert loaded["floats"][:2] == [0.1, 1e-300] and loaded["floats"][2] == float("inf")
    assert str(loaded["floats"][3]) == "-0.0"
    assert loaded["unicode"] == state["unicode"] and loaded[3] == "int key"
    assert loaded["rng"] == state["rng"]


def test_rng_state_from_a_checkpoint_reproduces_draws(tmp_path):
    minigrad.randn(5)
    minigrad.save({"rng": minigrad.get_rng_state()}, tmp_path / "rng.ckpt")
    expected = minigrad.randn(4).numpy()
    minigrad.manual_seed(999)
    minigrad.set_rng_state(minigrad.load(tmp_path / "rng.ckpt")["rng"])
    np.testing.assert_array_equal(minigrad.randn(4).numpy(), expected)


def test_nan_float_and_requires_grad_and_shared_tensors(tmp_path):
    weight = minigrad.tensor([1.0, 2.0], requires_grad=True)
    minigrad.save({"a": weight, "b": weight, "nan": float("nan")}, tmp_path / "x.ckpt")
    loaded = minigrad.load(tmp_path / "x.ckpt")
    assert loaded["a"] is loaded["b"]
    assert loaded["a"].requires_grad and loaded["a"].is_leaf
    assert loaded["nan"] != loaded["nan"]


def test_model_and_optimizer_checkpoint_round_trip(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    opt = optim.Adam(model.parameters(), lr=0.01)
    model(minigrad.randn(5, 3)).sum().backward()
    opt.step()
    minigrad.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "config": {"d": 4}},
                  tmp_path / "model.ckpt")
    checkpoint = minigrad.load(tmp_path / "model.ckpt")
    minigrad.manual_seed(123)
    fresh = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    fresh.load_state_dict(checkpoint["model"])
    for (name, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    fresh_opt = optim.Adam(fresh.parameters(), lr=0.5)
    fresh_opt.load_state_dict(checkpoint["optimizer"])
    assert fresh_opt.param_groups[0]["lr"] == 0.01 and fresh_opt.param_groups[0]["betas"] == (0.9, 0.999)
    assert all(fresh_opt.state[p]["step"] == 1 for p in fresh.parameters())


def test_file_objects_work_too():
    buffer = io.BytesIO()
    minigrad.save({"x": minigrad.arange(3)}, buffer)
    buffer.seek(0)
    assert minigrad.load(buffer)["x"].tolist() == [0, 1, 2]


def test_unsupported_objects_are_refused_before_anything_is_written(tmp_path):
    path = tmp_path / "bad.ckpt"
    with pytest.raises(TypeError, match="never code"):
        minigrad.save({"fn": lambda: 1}, path)
    with pytest.raises(TypeError, match="dict key"):
        minigrad.save({(1, 2): 3}, path)
    assert _checkpoint_files(tmp_path) == []


def test_numpy_scalars_are_stored_as_python_numbers(tmp_path):
    minigrad.save({"n": np.int64(7), "f": np.float32(0.5)}, tmp_path / "n.ckpt")
    loaded = minigrad.load(tmp_path / "n.ckpt")
    assert loaded == {"n": 7, "f": 0.5} and type(loaded["n"]) is int


# -- devices ------------------------------------------------------------------------------------
def test_map_location_and_unavailable_devices(tmp_path):
    path = tmp_path / "d.ckpt"
    minigrad.save({"x": minigrad.tensor([1.0])}, path)
    assert minigrad.load(path, map_location="cpu")["x"].device == "cpu"
    assert minigrad.load(path, map_location={"cpu": "cpu"})["x"].device == "cpu"
    with pytest.raises(RuntimeError, match="map_location='cpu'"):
        minigrad.load(path, map_location="tpu")
    # A file that says its tensor lives on a device this machine does not know:
    document, arrays = minigrad.archive.load_archive(str(path))
    header = json.loads(document)
    header["root"]["dict"][0][1]["device"] = "xpu:3"
    with open(path, "wb") as file:
        minigrad.archive.save_archive(file, json.dumps(header), arrays)
    with pytest.raises(RuntimeError, match="xpu:3.*map_location='cpu'"):
        minigrad.load(path)
    assert minigrad.load(path, map_location="cpu")["x"].tolist() == [1.0]


# -- files that are not intact checkpoints --------------------------------------------------------
class _CreatesMarker:
    """Unpickling this object creates a file: the proof that loading ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _assert_refused(path, marker=None):
    with pytest.raises(CheckpointError) as info:
        minigrad.load(path)
    assert os.fspath(path) in str(info.value)
    if marker is not None:
        assert not os.path.exists(marker)
    return info


def test_pickle_payload_is_never_run(tmp_path):
    marker = tmp_path / "pwned"
    # 1. an .npz whose member is an object array (loading it would unpickle the payload)
    payload = np.empty(1, dtype=object)
    payload[0] = _CreatesMarker(marker)
    crafted = tmp_path / "crafted.npz"
    np.savez(crafted, __document__=np.frombuffer(json.dumps(
        {"format": "minigrad-checkpoint", "version": 1,
         "root": {"tensor": "tensor0", "device": "cpu", "requires_grad": False}}).encode(), dtype=np.uint8),
             tensor0=payload)
    _assert_refused(crafted, marker)
    # 2. a plain pickle file (what torch.save wrote before its zip format)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"weights": _CreatesMarker(marker)}))
    _assert_refused(plain, marker)
    # sanity: the payload does create the marker when unpickled
    pickle.loads(plain.read_bytes())
    assert marker.exists()


def test_foreign_files_are_refused_with_the_file_name(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("just some text\n")
    _assert_refused(text)
    other_npz = tmp_path / "other.npz"
    np.savez(other_npz, a=np.arange(3))
    assert "not a minigrad checkpoint" in str(_assert_refused(other_npz).value)
    single = tmp_path / "single.npy"
    np.save(single, np.arange(3))
    _assert_refused(single)
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    _assert_refused(empty)


def test_torch_checkpoint_is_refused_and_runs_nothing(tmp_path):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2), "payload": _CreatesMarker(marker)}, path)
    _assert_refused(path, marker)


def test_truncated_file_is_refused(tmp_path):
    path = tmp_path / "model.ckpt"
    minigrad.save({"w": minigrad.randn(64, 64), "b": minigrad.randn(64)}, path)
    data = path.read_bytes()
    for cut in (len(data) // 3, len(data) - 10, 30):
        truncated = tmp_path / f"cut{cut}.ckpt"
        truncated.write_bytes(data[:cut])
        _assert_refused(truncated)


def test_corrupted_member_is_refused(tmp_path):
    path = tmp_path / "model.ckpt"
    minigrad.save({"w": minigrad.randn(8)}, path)
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["__document__.npy"] = members["__document__.npy"][:-5] + b"}}}}}"  # not JSON any more
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    assert "JSON" in str(_assert_refused(path).value)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.ckpt") as info:
        minigrad.load(tmp_path / "nowhere.ckpt")
    assert isinstance(info.value, CheckpointError)  # like every other failure of minigrad.load


def test_only_the_arrays_the_structure_refers_to_are_read(tmp_path, monkeypatch):
    path = tmp_path / "model.ckpt"
    minigrad.save({"w": minigrad.randn(3)}, path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("stray.npy", b"not even a .npy array")
    read = []
    original = minigrad.archive.ArchiveReader._read
    monkeypatch.setattr(minigrad.archive.ArchiveReader, "_read", lambda self, name: read.append(name) or
                        original(self, name))
    assert minigrad.load(path)["w"].shape == (3,)
    assert read == ["__document__", "tensor0"]


# -- atomic writes ------------------------------------------------------------------------------
def test_failed_write_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "model.ckpt"
    minigrad.save({"version": 1, "w": minigrad.tensor([1.0, 2.0])}, path)
    before = path.read_bytes()

    def dies_midway(file, document, arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(minigrad.archive, "save_archive", dies_midway)
    with pytest.raises(OSError, match="disk full"):
        minigrad.save({"version": 2, "w": minigrad.tensor([3.0])}, path)
    assert path.read_bytes() == before
    assert _checkpoint_files(tmp_path) == ["model.ckpt"]  # no temporary file left behind
    monkeypatch.undo()
    assert minigrad.load(path)["version"] == 1


def test_save_replaces_and_writes_exactly_the_given_name(tmp_path):
    path = tmp_path / "model.pt"
    minigrad.save({"v": 1}, path)
    minigrad.save({"v": 2}, str(path))
    assert _checkpoint_files(tmp_path) == ["model.pt"]
    assert minigrad.load(path) == {"v": 2}


# -- devices ------------------------------------------------------------------------------------
import fake_gpu  # noqa: E402


@pytest.mark.parametrize("device", [d for d in fake_gpu.device_params() if d != "cpu"])
def test_device_tensors_come_back_on_their_device_or_on_map_location(device, tmp_path):
    model = nn.Linear(3, 2).to(device)
    opt = optim.Adam(model.parameters())
    model(minigrad.randn(4, 3, device=device)).sum().backward()
    opt.step()
    path = tmp_path / "gpu.ckpt"
    minigrad.save({"model": model.state_dict(), "opt": opt.state_dict()}, path)
    on_device = minigrad.load(path)
    assert on_device["model"]["weight"].device == model.weight.device
    assert type(on_device["opt"]["state"][0]["exp_avg"].data) is fake_gpu.array_type(device)
    on_cpu = minigrad.load(path, map_location="cpu")
    assert on_cpu["model"]["weight"].device == "cpu"
    np.testing.assert_array_equal(on_cpu["model"]["weight"].numpy(), model.weight.detach().numpy())
    cpu_model = nn.Linear(3, 2)
    cpu_model.load_state_dict(on_device["model"])  # copies across devices
    cpu_opt = optim.Adam(cpu_model.parameters())
    cpu_opt.load_state_dict(on_device["opt"])  # state lands on each parameter's device
    assert cpu_opt.state[cpu_model.weight]["exp_avg"].device == "cpu"
