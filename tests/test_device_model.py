"""Whole training steps on each device: layers + loss + optimizer, the Transformer, decoding, checkpoints.

Each run on "fakegpu" (CuPy's rules, see fake_gpu.py) or "cuda" is compared with
the same run on the CPU, starting from identical weights. The fake device draws
dropout masks from a generator seeded like the CPU's, so with dropout on its
runs must match the CPU's exactly; CuPy's generator draws other numbers, so the
"cuda" comparisons switch dropout off. On the fake device the step itself runs
inside `no_host_traffic()`: no download and no implicit sync happen in a step.
"""
import contextlib
import os
import subprocess
import sys

import numpy as np
import pytest

import fake_gpu
import minigrad
import minigrad.functional as F
import nn

pytestmark = pytest.mark.usefixtures("both_paths")  # every test on the kernels and on the reference path

DEVICES = [d for d in fake_gpu.device_params() if d != "cpu"]
ATOL, RTOL = 1e-5, 1e-4


def _dropout_for(device, p):
    return 0.0 if device.startswith("cuda") else p


def _no_traffic(device):
    return fake_gpu.no_host_traffic() if device.startswith("fakegpu") else contextlib.nullcontext()


def _assert_same_parameters(model, reference):
    for (name, p), (_, q) in zip(model.named_parameters(), reference.named_parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), atol=ATOL, rtol=RTOL, err_msg=name)


# -- nn layers + cross-entropy + optimizer -----------------------------------------------------------
class TinyTagger(nn.Module):
    def __init__(self, vocab=12, dim=16, p=0.2):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim, padding_idx=0)
        self.norm = nn.LayerNorm(dim)
        self.hidden = nn.Linear(dim, dim)
        self.drop = nn.Dropout(p)
        self.out = nn.Linear(dim, vocab)

    def forward(self, ids):
        return self.out(self.drop(self.hidden(self.norm(self.embed(ids))).gelu()))


def _train_tagger(device, steps=3, p=0.2):
    minigrad.manual_seed(0)
    model = TinyTagger(p=p).to(device)
    optimizer = minigrad.optim.Adam(model.parameters(), lr=1e-2)
    ids = minigrad.tensor([[1, 4, 4, 0], [7, 2, 11, 3]], device=device)
    target = minigrad.tensor([[2, 5, 5, -100], [8, 3, 1, 4]], device=device)
    minigrad.manual_seed(1)  # the dropout masks
    losses = []
    model.train()
    for _ in range(steps):
        with _no_traffic(device):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(ids).movedim(-1, 1), target, label_smoothing=0.1)
            loss.backward()
            minigrad.optim.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        losses.append(loss.item())
    return model, optimizer, losses


@pytest.mark.parametrize("device", DEVICES)
def test_nn_training_step_matches_the_cpu(device):
    p = _dropout_for(device, 0.2)
    model, optimizer, losses = _train_tagger(device, p=p)
    reference, _, expected = _train_tagger("cpu", p=p)
    np.testing.assert_allclose(losses, expected, atol=ATOL, rtol=RTOL)
    assert losses[-1] < losses[0]
    _assert_same_parameters(model, reference)
    for state in optimizer.state.values():  # optimizer state lives with its parameter
        for value in state.values():
            if isinstance(value, minigrad.Tensor):
                assert value.device == minigrad.backend.canonical_device(device)


# -- the Transformer ---------------------------------------------------------------------------------------
transformer = pytest.importorskip("transformer", reason="transformer/ is not importable yet")
PAD, BOS, EOS = 0, 1, 2


def _make_transformer(device, dropout):
    minigrad.manual_seed(0)
    model = transformer.Transformer(13, 13, d_model=16, n_heads=2, d_ff=32, n_encoder_layers=1,
                                    n_decoder_layers=1, dropout=dropout, max_len=16, pad_id=PAD)
    return model.to(device)


def _copy_batch():
    src = np.array([[5, 6, 7, 8, PAD], [9, 10, 3, PAD, PAD]])
    tgt = np.array([[BOS, 5, 6, 7, 8, EOS], [BOS, 9, 10, 3, EOS, PAD]])
    return src, tgt[:, :-1], tgt[:, 1:]


def _train_transformer(device, steps=3, dropout=0.1):
    model = _make_transformer(device, dropout)
    optimizer = minigrad.optim.Adam(model.parameters(), lr=3e-3, betas=(0.9, 0.98), eps=1e-9)
    src, tgt_in, tgt_out = (minigrad.tensor(a, device=device) for a in _copy_batch())
    minigrad.manual_seed(1)
    model.train()
    losses = []
    for _ in range(steps):
        with _no_traffic(device):
            optimizer.zero_grad()
            logits = model(src, tgt_in)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1),
                                   ignore_index=PAD, label_smoothing=0.1)
            loss.backward()
            optimizer.step()
        losses.append(loss.item())
    return model, losses


@pytest.mark.parametrize("device", DEVICES)
def test_transformer_training_steps_match_the_cpu(device):
    dropout = _dropout_for(device, 0.1)
    model, losses = _train_transformer(device, dropout=dropout)
    reference, expected = _train_transformer("cpu", dropout=dropout)
    np.testing.assert_allclose(losses, expected, atol=ATOL, rtol=RTOL)
    assert losses[-1] < losses[0]
    _assert_same_parameters(model, reference)


@pytest.mark.parametrize("device", DEVICES)
def test_greedy_and_beam_decoding_match_the_cpu(device):
    decoding = pytest.importorskip("transformer.decoding", reason="transformer/decoding.py is missing")
    model, _ = _train_transformer(device, steps=2, dropout=0.0)
    reference, _ = _train_transformer("cpu", steps=2, dropout=0.0)
    src, _, _ = _copy_batch()
    on_device = minigrad.tensor(src, device=device)
    on_cpu = minigrad.tensor(src)
    greedy = decoding.greedy_decode(model, on_device, max_len=6, bos_id=BOS, eos_id=EOS)
    assert greedy == decoding.greedy_decode(reference, on_cpu, max_len=6, bos_id=BOS, eos_id=EOS)
    assert greedy == decoding.greedy_decode(model, on_device, max_len=6, bos_id=BOS, eos_id=EOS, use_cache=False)
    beams = decoding.beam_search(model, on_device, beam_size=3, max_len=6, bos_id=BOS, eos_id=EOS)
    assert beams == decoding.beam_search(reference, on_cpu, beam_size=3, max_len=6, bos_id=BOS, eos_id=EOS)


# -- checkpoints ---------------------------------------------------------------------------------------------
needs_checkpoints = pytest.mark.skipif(not hasattr(minigrad, "save"), reason="minigrad.save/load do not exist yet")


@needs_checkpoints
def test_a_device_checkpoint_loads_on_the_cpu_and_back(tmp_path):
    model, optimizer, _ = _train_tagger("fakegpu", steps=2)
    path = tmp_path / "tagger.ckpt"
    minigrad.save({"model": model.state_dict(), "optim": optimizer.state_dict()}, path)

    on_cpu = minigrad.load(path, map_location="cpu")
    assert all(t.device == "cpu" for t in on_cpu["model"].values())
    cpu_model = TinyTagger()
    cpu_model.load_state_dict(on_cpu["model"])
    _assert_same_parameters(cpu_model, model)
    cpu_optimizer = minigrad.optim.Adam(cpu_model.parameters(), lr=1e-2)
    cpu_optimizer.load_state_dict(on_cpu["optim"])
    assert all(v.device == "cpu" for s in cpu_optimizer.state.values() for v in s.values()
               if isinstance(v, minigrad.Tensor))

    back = minigrad.load(path)  # no map_location: each tensor returns to the device it was saved from
    assert all(t.device == "fakegpu:0" and type(t.data) is fake_gpu.FakeArray for t in back["model"].values())
    cpu_path = tmp_path / "from_cpu.ckpt"
    minigrad.save(cpu_model.state_dict(), cpu_path)
    device_model = TinyTagger().to("fakegpu")
    device_model.load_state_dict(minigrad.load(cpu_path))  # CPU tensors copied onto the device parameters
    assert all(p.device == "fakegpu:0" for p in device_model.parameters())
    _assert_same_parameters(device_model, model)


@needs_checkpoints
def test_a_device_checkpoint_opens_on_a_machine_without_that_device(tmp_path):
    """A fresh process that never registered "fakegpu" plays the CPU-only machine."""
    model, _, _ = _train_tagger("fakegpu", steps=1)
    path = tmp_path / "gpu.ckpt"
    minigrad.save(model.state_dict(), path)
    expected = model.state_dict()["out.weight"].numpy()
    code = (
        "import sys, minigrad\n"
        "try:\n    minigrad.load(sys.argv[1])\nexcept RuntimeError as error:\n    print('refused:', error)\n"
        "state = minigrad.load(sys.argv[1], map_location='cpu')\n"
        "print('devices:', sorted({str(t.device) for t in state.values()}))\n"
        "import numpy; numpy.save(sys.argv[2], state['out.weight'].numpy())\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "w.npy")], capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=root), check=True).stdout
    assert "refused:" in out and "map_location" in out
    assert "devices: ['cpu']" in out
    np.testing.assert_array_equal(np.load(tmp_path / "w.npy"), expected)
