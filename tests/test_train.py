"""End-to-end tests of train.py on a tiny configuration: train, save, resume exactly, translate,
evaluate, every bad input, the device switch and Ctrl-C. Plus the metrics.

Most runs call train.main(argv) in this process (fast); the ones about what a user sees in a
terminal (one error line, a signal) run `python train.py` as a subprocess. The pieces train.py is
made of are tested on their own in test_corpus.py, test_batching.py, test_checkpoint.py, ...
"""
import io
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import minigrad
from transformer import metrics
from transformer.checkpoint import load_checkpoint
from transformer.run_log import METRICS_NAME, append_records, read_records

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import train  # noqa: E402

TINY = ["--d-model", "16", "--heads", "2", "--d-ff", "32", "--layers", "1", "--batch-size", "8",
        "--train-size", "40", "--valid-size", "6", "--warmup", "4", "--no-progress", "--log-every", "1",
        "--eval-every", "0", "--save-every", "0", "--examples", "2", "--max-len", "40"]


@pytest.fixture(autouse=True)
def keep_global_rng():
    """train.main reseeds minigrad; put the generators back so other tests see what they expect."""
    state = minigrad.get_rng_state()
    yield
    minigrad.set_rng_state(state)


def run(argv, capsys):
    code = train.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def train_records(run_dir):
    return [r for r in read_records(Path(run_dir)) if r["kind"] == "train"]


def write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny trained toy run shared by the translate/evaluate tests."""
    run_dir = tmp_path_factory.mktemp("run")
    assert train.main(TINY + ["--steps", "5", "--out", str(run_dir)]) == 0
    return run_dir


# -- the command line ----------------------------------------------------------------------------

def test_train_is_the_default_command():
    assert train.parse_args([]).command == "train"
    assert train.parse_args(["--steps", "3"]).steps == 3
    assert train.parse_args(["evaluate", "--checkpoint", "x"]).command == "evaluate"


# -- training, checkpoints, exact resume ---------------------------------------------------------

@pytest.mark.slow
def test_resume_continues_exactly(tmp_path, capsys):
    """4 steps + 4 resumed steps == 8 steps in one run: same losses, same weights.

    40 pairs in batches of 8 make 5 batches an epoch, so the resume happens mid-epoch and the
    run crosses an epoch boundary afterwards; dropout (0.1) checks that the RNG state is restored.
    """
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert run(TINY + ["--steps", "8", "--out", whole], capsys)[0] == 0
    assert run(TINY + ["--steps", "4", "--out", split], capsys)[0] == 0
    code, out, _ = run(["--resume", split, "--steps", "8", "--no-progress", "--eval-every", "0"], capsys)
    assert code == 0 and "resumed from" in out and "at step 4" in out

    expected, got = train_records(whole), train_records(split)
    assert [r["step"] for r in expected] == [r["step"] for r in got] == list(range(1, 9))
    for a, b in zip(expected, got):
        for key in ("loss", "nll", "token_accuracy", "lr"):
            assert abs(a[key] - b[key]) <= 1e-6, (a["step"], key, a[key], b[key])
    assert len({round(r["loss"], 6) for r in expected}) > 1      # it does train: the loss moves

    one = minigrad.load(str(whole / "last.ckpt"))
    two = minigrad.load(str(split / "last.ckpt"))
    assert one["step"] == two["step"] == 8
    for name, value in one["model"].items():
        np.testing.assert_allclose(value.numpy(), two["model"][name].numpy(), rtol=0, atol=1e-6, err_msg=name)


def test_epochs_and_cosine_schedule(tmp_path, capsys):
    code, out, _ = run(TINY + ["--epochs", "1", "--schedule", "cosine", "--lr", "0.01", "--out", tmp_path], capsys)
    assert code == 0 and "stopped after step 5 (epoch limit)" in out     # 40 pairs / batches of 8
    lrs = [r["lr"] for r in train_records(tmp_path)]
    # warmup 4: 0.01 * (i + 1) / 4 for updates 0..3, then the cosine starts at its peak
    assert lrs == pytest.approx([0.0025, 0.005, 0.0075, 0.01, 0.01])


def test_noam_peak_is_the_given_lr(tmp_path, capsys):
    assert run(TINY + ["--steps", "6", "--lr", "0.002", "--out", tmp_path], capsys)[0] == 0
    lrs = [r["lr"] for r in train_records(tmp_path)]
    assert max(lrs) == pytest.approx(0.002) and lrs.index(max(lrs)) == 3      # update n = warmup = 4
    assert lrs[0] == pytest.approx(0.002 / 4) and lrs[5] == pytest.approx(0.002 * (4 / 6) ** 0.5)


def test_checkpoint_holds_everything_to_resume(trained_run):
    state = load_checkpoint(trained_run)
    assert state["step"] == 5
    assert state["settings"]["d_model"] == 16 and state["settings"]["task"] == "toy"
    assert state["model_config"]["n_encoder_layers"] == 1
    assert state["src_vocab"][:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    assert len(state["tgt_vocab"]) == state["model_config"]["tgt_vocab_size"]
    assert state["data_position"]["epoch"] == 1 and state["data_position"]["index"] == 0
    assert "cpu" in state["minigrad_rng"]
    assert state["optimizer"]["state"] and state["schedule"]["last_epoch"] == 5


def test_resume_refuses_to_change_the_model(trained_run, capsys):
    code, _, err = run(["--resume", trained_run, "--d-model", "32", "--steps", "6"], capsys)
    assert code == 2 and "--d-model" in err and "Traceback" not in err


def test_metrics_log_and_final_scores(trained_run):
    records = read_records(trained_run)
    kinds = {r["kind"] for r in records}
    assert kinds == {"train", "valid", "eval"}
    final = [r for r in records if r["kind"] == "eval"][-1]
    assert 0.0 <= final["exact_match"] <= 1.0 and final["sentences"] == 6
    assert all(r["tokens_per_s"] > 0 for r in records if r["kind"] == "train")


# -- translate and evaluate ----------------------------------------------------------------------

def test_translate_arguments_and_stdin(trained_run, capsys, monkeypatch):
    code, out, err = run(["translate", "--checkpoint", trained_run, "the dog sees a cat", "we sleep"], capsys)
    assert code == 0 and len(out.splitlines()) == 2
    monkeypatch.setattr(sys, "stdin", io.StringIO("the dog sees a zebra\n\nwe sleep\n"))
    code, out, err = run(["translate", "--checkpoint", trained_run / "last.ckpt", "--beam", "2"], capsys)
    lines = out.split("\n")[:-1]
    assert code == 0 and len(lines) == 3 and lines[1] == ""      # blank lines stay blank
    assert "zebra" in err and "<unk>" in err


def test_evaluate_held_out_and_a_file(trained_run, tmp_path, capsys):
    code, out, _ = run(["evaluate", "--checkpoint", trained_run], capsys)
    assert code == 0 and "exact match" in out and "on 6 sentences" in out
    pairs = write(tmp_path / "test.tsv", b"we sleep\tnos dormumus\nthe dog runs\tlo kan kurit\n")
    code, out, _ = run(["evaluate", "--checkpoint", trained_run, "--data", pairs, "--beam", "2"], capsys)
    assert code == 0 and "beam 2" in out and "on 2 sentences" in out


def test_train_on_a_user_file_with_char_tokens(tmp_path, capsys):
    lines = [f"{w} {v}\t{v} {w}" for w in ("ab", "cd", "ef", "gh") for v in ("ij", "kl", "mn", "op", "qr")]
    data = write(tmp_path / "pairs.tsv", ("\n".join(lines) + "\n").encode())
    code, out, _ = run(TINY + ["--data", data, "--tokenizer", "char", "--valid-size", "3", "--steps", "3",
                               "--out", tmp_path / "run"], capsys)
    assert code == 0 and "17 training pairs, 3 held out" in out
    code, out, _ = run(["translate", "--checkpoint", tmp_path / "run", "ab ij"], capsys)
    assert code == 0 and len(out.splitlines()) == 1


# -- bad input: one clear line, exit code 2 ------------------------------------------------------

@pytest.mark.parametrize("content, message", [
    (b"a b\tc d\nno tab here\n", "bad.tsv:2: no tab"),
    (b"a b\tc d\n\nx y\t \n", "bad.tsv:3: empty target"),
    (b"a b\tc d\n\t c d\n", "bad.tsv:2: empty source"),
    (b"", "no sentence pairs found"),
    (b"a b\tc d\nca\xe7a\tx\n", "bad.tsv:2: not valid UTF-8"),
])
def test_bad_data_files_give_one_line(tmp_path, capsys, content, message):
    bad = write(tmp_path / "bad.tsv", content)
    code, out, err = run(TINY + ["--data", bad, "--steps", "1", "--out", tmp_path / "run"], capsys)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_missing_file_and_missing_checkpoint(tmp_path, capsys):
    code, _, err = run(TINY + ["--data", tmp_path / "nope.tsv", "--out", tmp_path / "run"], capsys)
    assert code == 2 and "nope.tsv: file not found" in err
    code, _, err = run(["translate", "--checkpoint", tmp_path / "nothing", "hello"], capsys)
    assert code == 2 and "no checkpoint" in err


def test_skip_bad_lines_counts_them(tmp_path, capsys):
    good = [f"w{i} x\ty{i} z" for i in range(30)]
    data = write(tmp_path / "mixed.tsv", ("\n".join(good[:10] + ["oops", "a\t"] + good[10:] + ["\tb"]) + "\n").encode())
    code, out, _ = run(TINY + ["--data", data, "--skip-bad-lines", "--valid-size", "3", "--steps", "1",
                               "--out", tmp_path / "run"], capsys)
    assert code == 0 and "skipped 3 bad lines" in out and "27 training pairs" in out


# -- what a user sees in a terminal --------------------------------------------------------------

def run_script(*args, timeout=60):
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def test_cuda_without_gpu_is_one_clear_line(tmp_path):
    if minigrad.cuda.is_available():
        pytest.skip("a GPU is available here")
    result = run_script(*TINY, "--device", "cuda", "--steps", "1", "--out", tmp_path / "run")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--device cuda" in result.stderr
    assert "Traceback" not in result.stderr and ("CuPy" in result.stderr)


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_exits_130(tmp_path):
    run_dir = tmp_path / "run"
    process = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *TINY, "--steps", "1000000",
                                "--time-budget", "120", "--out", str(run_dir)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not (run_dir / METRICS_NAME).exists() and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        assert (run_dir / METRICS_NAME).exists(), "no training step was logged"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "interrupted at step" in err and "Traceback" not in err
    state = load_checkpoint(run_dir)
    assert state["step"] >= 1


# -- metrics -------------------------------------------------------------------------------------

def test_exact_match_and_token_accuracy():
    hyps = [["a", "b"], ["a", "c", "d"], []]
    refs = [["a", "b"], ["a", "b", "d"], ["x"]]
    assert metrics.exact_match(hyps, refs) == pytest.approx(1 / 3)
    assert metrics.token_accuracy(hyps, refs) == pytest.approx(4 / 6)


def test_builtin_bleu_by_hand():
    # one sentence: hyp "the cat sat on the mat" vs ref "the cat sat on a mat"
    hyp, ref = "the cat sat on the mat".split(), "the cat sat on a mat".split()
    # clipped matches: 1-grams 5/6, 2-grams 3/5, 3-grams 2/4, 4-grams 1/3; equal lengths, so BP = 1
    expected = 100 * math.exp((math.log(5 / 6) + math.log(3 / 5) + math.log(2 / 4) + math.log(1 / 3)) / 4)
    assert metrics.corpus_bleu([hyp], [ref]) == pytest.approx(expected)
    short = ["the", "cat", "sat", "on"]
    expected_short = 100 * math.exp(1 - 6 / 4)        # all precisions 1, brevity penalty only
    assert metrics.corpus_bleu([short], [ref]) == pytest.approx(expected_short)
    assert metrics.corpus_bleu([["x", "y", "z", "w"]], [ref]) == 0.0
    assert metrics.corpus_bleu([ref], [ref]) == pytest.approx(100.0)


def test_builtin_bleu_matches_sacrebleu():
    sacrebleu = pytest.importorskip("sacrebleu")
    hyps = ["the cat sat on the mat", "a dog runs in the big park today", "we like green apples"]
    refs = ["the cat sat on a mat", "the dog runs in the big park", "we like red apples very much"]
    ours = metrics.corpus_bleu([h.split() for h in hyps], [r.split() for r in refs])
    theirs = sacrebleu.corpus_bleu(hyps, [refs], smooth_method="none", tokenize="none").score
    assert ours == pytest.approx(theirs, abs=1e-9)


def test_plots_are_drawn_when_matplotlib_is_installed(trained_run, tmp_path):
    pytest.importorskip("matplotlib")
    assert (trained_run / "curves.png").stat().st_size > 1000
    assert (trained_run / "attention.png").stat().st_size > 1000


# -- a run directory belongs to one run; one writer at a time ------------------------------------

def checkpoint_is_finite(run_dir) -> bool:
    state = minigrad.load(str(Path(run_dir) / "last.ckpt"))
    return all(np.isfinite(value.numpy()).all() for value in state["model"].values())


def test_a_second_run_into_a_run_directory_is_refused(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert run(TINY + ["--steps", "2", "--out", run_dir], capsys)[0] == 0
    before = (run_dir / "last.ckpt").read_bytes()
    code, out, err = run(TINY + ["--steps", "3", "--out", run_dir], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"{run_dir} already holds a run" in err
    assert f"--resume {run_dir}" in err and "another --out" in err and "--overwrite" in err
    assert (run_dir / "last.ckpt").read_bytes() == before
    code, out, err = run(TINY + ["--steps", "3", "--out", run_dir, "--overwrite"], capsys)
    assert code == 0 and load_checkpoint(run_dir)["step"] == 3
    assert [r["step"] for r in train_records(run_dir)] == [1, 2, 3]          # the old run's records went


def test_resuming_a_copied_run_writes_only_into_the_copy(tmp_path, capsys):
    original, copy = tmp_path / "original", tmp_path / "copy"
    assert run(TINY + ["--steps", "3", "--out", original], capsys)[0] == 0
    shutil.copytree(original, copy)
    (copy / ".last.ckpt.x8a_2q.tmp").write_bytes(b"left by a save that was killed")
    before = {path.name: path.read_bytes() for path in original.iterdir()}
    code, out, _ = run(["--resume", copy, "--steps", "5", "--no-progress"], capsys)
    assert code == 0 and f"run directory {copy}" in out
    assert {path.name: path.read_bytes() for path in original.iterdir()} == before     # not touched
    assert load_checkpoint(copy)["step"] == 5 and load_checkpoint(copy)["settings"]["out"] == str(copy)
    assert [r["step"] for r in train_records(copy)] == [1, 2, 3, 4, 5]
    assert not list(copy.glob("*.tmp")) and "removed 1 temporary file" in out


def test_metrics_never_hold_a_step_twice_after_a_resume(tmp_path, capsys):
    assert run(TINY + ["--steps", "3", "--out", tmp_path], capsys)[0] == 0
    # a run killed after step 5 that last saved at step 3 leaves records for steps 4 and 5
    append_records(tmp_path, [{"kind": "train", "step": 4, "loss": 9.0}, {"kind": "valid", "step": 5, "loss": 9.0}])
    assert run(["--resume", tmp_path, "--steps", "6", "--no-progress"], capsys)[0] == 0
    records = read_records(tmp_path)
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in records if r["kind"] == "valid"] == [3, 6] and 9.0 not in [r.get("loss") for r in records]


def test_resuming_a_finished_run_is_refused(trained_run, capsys):
    code, _, err = run(["--resume", trained_run], capsys)
    assert code == 2 and "is at step 5" in err and "--steps" in err and "evaluate" in err


def start_training(run_dir, *args):
    """`python train.py` on a long run; returns once it has logged a training step (60 s at most)."""
    process = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *TINY, "--steps", "1000000",
                                "--time-budget", "120", "--out", str(run_dir), *map(str, args)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 60
    while not (run_dir / METRICS_NAME).exists() and time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"train.py ended early: {process.communicate()}")
        time.sleep(0.05)
    if not (run_dir / METRICS_NAME).exists():
        process.kill()
        pytest.fail("no training step was logged in 60 s")
    return process


def stop(process, signum, timeout=60):
    try:
        process.send_signal(signum)
        return process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_a_running_run_holds_its_directory(tmp_path):
    run_dir = tmp_path / "run"
    first = start_training(run_dir, "--save-every", "1")
    deadline = time.monotonic() + 60
    while not (run_dir / "last.ckpt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        for args in (["--resume", run_dir], TINY + ["--steps", "3", "--out", run_dir, "--overwrite"]):
            started = time.monotonic()
            second = run_script(*args)
            assert second.returncode == 2 and time.monotonic() - started < 50, second.stderr
            assert f"in use by another run (pid {first.pid})" in second.stderr
            assert len(second.stderr.strip().splitlines()) == 1 and "Traceback" not in second.stderr
    finally:
        _, err = stop(first, signal.SIGINT)
    assert first.returncode == 130 and "interrupted at step" in err
    assert run_script("--resume", run_dir, "--steps", str(load_checkpoint(run_dir)["step"] + 1)).returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("name, code", [("SIGTERM", 143), ("SIGHUP", 129)])
def test_sigterm_and_sighup_save_a_checkpoint(tmp_path, name, code):
    run_dir = tmp_path / "run"
    _, err = stop(start_training(run_dir), getattr(signal, name))
    assert f"interrupted at step" in err and f"({name})" in err and "Traceback" not in err, err
    assert f"resume with: python train.py --resume {run_dir}" in err
    state = load_checkpoint(run_dir)
    assert state["step"] >= 1 and checkpoint_is_finite(run_dir)
    assert max(r["step"] for r in train_records(run_dir)) == state["step"]


@pytest.mark.slow
def test_sigterm_exit_code(tmp_path):
    process = start_training(tmp_path / "run")
    stop(process, signal.SIGTERM)
    assert process.returncode == 143


def wait_for(condition, process, seconds=60):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    assert condition(), "the process never got there"


@pytest.mark.slow
def test_ctrl_c_while_starting_is_one_line(tmp_path):
    """Ctrl-C while train.py imports NumPy and minigrad, or while it sets the run up: no traceback."""
    if not Path("/proc/self/maps").exists():
        pytest.skip("needs /proc to see when NumPy is being loaded")

    def loading_numpy(process):
        try:
            return "numpy" in Path(f"/proc/{process.pid}/maps").read_text()
        except OSError:
            return False

    argv = [sys.executable, str(ROOT / "train.py"), *TINY, "--train-size", "20000", "--steps", "1"]
    importing = subprocess.Popen(argv + ["--out", str(tmp_path / "one")], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, cwd=ROOT)
    setting_up = subprocess.Popen(argv + ["--out", str(tmp_path / "two")], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        wait_for(lambda: loading_numpy(importing), importing)       # inside train.py's imports
        _, import_err = stop(importing, signal.SIGINT)
        wait_for((tmp_path / "two").exists, setting_up)              # the run directory is claimed
        _, setup_err = stop(setting_up, signal.SIGINT)
    finally:
        for process in (importing, setting_up):
            if process.poll() is None:
                process.kill()
    for process, err in ((importing, import_err), (setting_up, setup_err)):
        assert process.returncode == 130 and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1 and "interrupted" in err, err


def test_a_second_ctrl_c_while_saving_leaves_a_whole_checkpoint(tmp_path, capsys, monkeypatch):
    real_save = train.save_checkpoint

    def save_hit_by_two_ctrl_cs(*args):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        real_save(*args)

    monkeypatch.setattr(train, "save_checkpoint", save_hit_by_two_ctrl_cs)
    code, _, err = run(TINY + ["--steps", "3", "--out", tmp_path], capsys)
    assert code == 130 and "checkpoint saved" in err
    assert load_checkpoint(tmp_path)["step"] == 3


# -- divergence ----------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore::RuntimeWarning")        # NumPy's overflow warnings on the way to NaN
def test_a_diverging_run_stops_and_its_checkpoint_stays_finite(tmp_path, capsys):
    code, out, err = run(TINY + ["--steps", "30", "--save-every", "1", "--lr", "1e12", "--out", tmp_path], capsys)
    assert code == train.EXIT_DIVERGED == 3
    assert "training diverged" in err and "3 batches in a row" in err and "--lr" in err and "Traceback" not in err
    assert err.count("update skipped") == 2
    state = load_checkpoint(tmp_path)
    assert checkpoint_is_finite(tmp_path) and f"(step {state['step']}), is kept" in err
    assert "stopped after" not in out and "held-out" not in out


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_weights_that_are_not_finite_are_never_saved(tmp_path, capsys, monkeypatch):
    assert run(TINY + ["--steps", "2", "--out", tmp_path], capsys)[0] == 0
    good = (tmp_path / "last.ckpt").read_bytes()
    real_step = minigrad.optim.Adam.step

    def step_that_overflows(self, *args):
        result = real_step(self, *args)
        self.param_groups[0]["params"][0].data[...] = np.inf
        return result

    monkeypatch.setattr(minigrad.optim.Adam, "step", step_that_overflows)
    code, _, err = run(["--resume", tmp_path, "--steps", "6", "--save-every", "1", "--no-progress"], capsys)
    assert code == 3 and "is not finite after step 3" in err and "(step 2), is kept" in err
    assert (tmp_path / "last.ckpt").read_bytes() == good and checkpoint_is_finite(tmp_path)


def test_a_step_that_is_not_finite_changes_nothing():
    from transformer.batching import BatchStream
    from transformer.corpus import prepare_corpus
    from transformer.divergence import DivergenceGuard
    from transformer.model import Transformer
    from transformer.optimizer import build_optimizer
    from transformer.run_settings import TRAIN_DEFAULTS

    settings = {**TRAIN_DEFAULTS, "task": "copy", "train_size": 16, "valid_size": 2, "d_model": 8, "heads": 2,
                "d_ff": 16, "layers": 1, "batch_size": 4, "warmup": 2, "max_len": 16, "steps": 10}
    corpus = prepare_corpus(settings)
    model = Transformer(len(corpus.src_vocab), len(corpus.tgt_vocab), d_model=8, n_heads=2, d_ff=16,
                        n_encoder_layers=1, n_decoder_layers=1, max_len=16)
    optimizer, schedule = build_optimizer(model, settings, 10)
    stream = BatchStream(corpus, 4, 0)
    notes = []
    guard = DivergenceGuard(report=notes.append)
    assert train.train_step(model, stream.next(), optimizer, schedule, settings, "cpu", guard, 0) is not None
    params = list(model.parameters())
    params[0].data[...] = np.nan            # every source embedding
    before = [p.detach().numpy().copy() for p in params]
    moments = {name: value.numpy().copy() for name, value in optimizer.state[params[1]].items() if name != "step"}
    assert train.train_step(model, stream.next(), optimizer, schedule, settings, "cpu", guard, 1) is None
    for old, p in zip(before, params):
        np.testing.assert_array_equal(old, p.detach().numpy())
    for name, value in moments.items():
        np.testing.assert_array_equal(value, optimizer.state[params[1]][name].numpy())
    assert optimizer.state[params[1]]["step"] == 1
    assert schedule.last_epoch == 1 and len(notes) == 1 and "after step 1" in notes[0]


# -- flags that make no sense, schedules, clear words -------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["--lr", "nan"], "--lr must be a finite number above 0"),
    (["--lr", "0"], "--lr must be a finite number above 0 (leave it out for the paper's rate), got 0.0"),
    (["--lr", "1e400"], "--lr must be a finite number above 0"),
    (["--steps", "0"], "--steps must be at least 1, got 0"),
    (["--batch-size", "-1"], "--batch-size must be at least 1, got -1"),
    (["--clip", "nan"], "--clip must be a finite number, 0 or more (0: no clipping), got nan"),
    (["--save-every", "-1"], "--save-every must be 0 or more (0: only at the end), got -1"),
    (["--warmup", "0"], "--warmup must be at least 1, got 0"),
    (["--dropout", "nan"], "--dropout must be in [0, 1), got nan"),
])
def test_training_flags_that_make_no_sense_are_one_line(tmp_path, capsys, argv, message):
    code, _, err = run(TINY + ["--steps", "2", "--out", tmp_path / "run"] + argv, capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()                  # refused before anything was written


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "--limit", "0"], "--limit must be at least 1, got 0"),
    (["evaluate", "--limit", "-3"], "--limit must be at least 1, got -3"),
    (["evaluate", "--examples", "-1"], "--examples must be 0 or more, got -1"),
    (["evaluate", "--beam", "0"], "--beam must be at least 1, got 0"),
    (["evaluate", "--decode-batch-size", "0"], "--decode-batch-size must be at least 1, got 0"),
    (["translate", "--beam", "-2", "hello"], "--beam must be at least 1, got -2"),
])
def test_decoding_flags_that_make_no_sense_are_one_line(trained_run, capsys, argv, message):
    code, _, err = run(argv[:1] + ["--checkpoint", trained_run] + argv[1:], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_resumed_cosine_run_with_more_steps_keeps_learning(tmp_path, capsys):
    assert run(TINY + ["--steps", "4", "--schedule", "cosine", "--lr", "0.01", "--out", tmp_path], capsys)[0] == 0
    code, out, _ = run(["--resume", tmp_path, "--steps", "8", "--no-progress"], capsys)
    assert code == 0 and "the cosine schedule now ends at step 8 instead of 4" in out
    lrs = [r["lr"] for r in train_records(tmp_path)]
    assert len(lrs) == 8 and all(lr > 0 for lr in lrs[4:]) and lrs[4] > lrs[5] > lrs[6] > lrs[7]


def test_steps_below_warmup_get_a_note(tmp_path, capsys):
    code, out, _ = run(TINY + ["--steps", "2", "--out", tmp_path], capsys)      # --warmup 4
    assert code == 0 and "--steps 2 is below --warmup 4: the learning rate never reaches its peak" in out


def test_a_bad_line_says_that_skip_bad_lines_would_skip_it(tmp_path, capsys):
    good = [f"w{i} x\ty{i} z" for i in range(30)]
    data = write(tmp_path / "mixed.tsv", ("\n".join(good) + "\n").encode() + b"ca\xe7a\tx\nno tab\n")
    code, _, err = run(TINY + ["--data", data, "--steps", "1", "--out", tmp_path / "run"], capsys)
    assert code == 2 and "mixed.tsv:31: not valid UTF-8" in err and "--skip-bad-lines would skip it" in err
    assert "skip_bad_lines" not in err
    code, out, _ = run(TINY + ["--data", data, "--skip-bad-lines", "--valid-size", "3", "--steps", "1",
                               "--out", tmp_path / "run"], capsys)
    assert code == 0 and "skipped 2 bad lines" in out


def test_a_full_disk_costs_one_line_and_keeps_the_last_checkpoint(tmp_path, capsys, monkeypatch):
    import errno

    run_dir = tmp_path / "run"
    code, _, _ = run(TINY + ["--steps", "2", "--out", run_dir], capsys)
    assert code == 0
    before = (run_dir / "last.ckpt").read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(minigrad, "save", full_disk)
    code, _, err = run(TINY + ["--resume", run_dir, "--steps", "4"], capsys)
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code != 0 and len(lines) == 1 and "no space left" in lines[0] and "--resume" in lines[0]
    assert "Traceback" not in err
    assert (run_dir / "last.ckpt").read_bytes() == before


def test_a_damaged_checkpoint_costs_one_line(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert run(TINY + ["--steps", "2", "--out", run_dir], capsys)[0] == 0
    for name in ("last.ckpt", "best.ckpt"):      # translate takes best.ckpt, --resume last.ckpt
        data = bytearray((run_dir / name).read_bytes())
        data[len(data) // 2: len(data) // 2 + 64] = b"\xff" * 64
        (run_dir / name).write_bytes(bytes(data))
    for argv in (["translate", "--checkpoint", run_dir, "a cat"], TINY + ["--resume", run_dir, "--steps", "4"]):
        code, _, err = run(argv, capsys)
        assert code == 2 and err.count("error:") == 1 and "Traceback" not in err, err
