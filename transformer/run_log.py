"""A run's metrics log, metrics.jsonl: one JSON record per line, appended as training goes.

Records have a "kind": "train" (averages over the steps since the last log line), "valid"
(teacher-forced held-out losses and the greedy scores of some held-out pairs, every --eval-every
steps) or "eval" (decoded scores of all held-out pairs, at the end). plots.training_curves
draws them; TrainingLog writes the first two as training goes and shows them on the progress bar.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

METRICS_NAME = "metrics.jsonl"


def append_records(run_dir: Path, records: list):
    with open(run_dir / METRICS_NAME, "a", encoding="utf-8") as log:
        for record in records:
            log.write(json.dumps(record) + "\n")


def read_records(run_dir: Path) -> list:
    """Every record of the run's log, oldest first; none when there is no log yet."""
    path = run_dir / METRICS_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class TrainingLog:
    """What a training run reports as it goes: records appended to metrics.jsonl, and the same
    numbers on a tqdm progress bar (on stderr; `show_progress=False` hides it).

    Steps are summed until train() writes their averages per target token as one "train" record.
    The sums stay tensors (on the device) until then: no GPU sync every step.
    """

    def __init__(self, run_dir: Path, total_steps: int, first_step: int, show_progress: bool):
        from tqdm import tqdm
        self.run_dir = run_dir
        self.progress = tqdm(total=total_steps, initial=first_step, unit="step", disable=not show_progress,
                             dynamic_ncols=True, mininterval=0.5, file=sys.stderr)
        self.run_started = time.perf_counter()
        self._start_window(self.run_started)

    def elapsed(self) -> float:
        """Seconds since the log was opened, i.e. since training (re)started."""
        return time.perf_counter() - self.run_started

    def _start_window(self, now: float):
        self.loss, self.nll, self.correct, self.tokens, self.steps, self.started = 0.0, 0.0, 0, 0, 0, now

    def add_step(self, result: dict):
        """One step's result: its mean "loss" and "nll" and its "correct" count over "tokens" tokens."""
        n = result["tokens"]
        self.loss = self.loss + result["loss"] * n
        self.nll = self.nll + result["nll"] * n
        self.correct = self.correct + result["correct"]
        self.tokens += n
        self.steps += 1
        self.progress.update(1)

    def train(self, step: int, epoch: float, lr: float):
        """The "train" record of the steps added since the last one (none if there were none)."""
        if not self.steps:
            return
        now = time.perf_counter()
        tokens = self.tokens
        record = {"kind": "train", "step": step, "epoch": round(epoch, 4),
                  "loss": float(self.loss.item()) / tokens, "nll": float(self.nll.item()) / tokens,
                  "token_accuracy": int(self.correct.item()) / tokens, "lr": lr,
                  "tokens_per_s": tokens / max(now - self.started, 1e-9), "elapsed_s": now - self.run_started}
        append_records(self.run_dir, [record])
        self.progress.set_postfix(loss=f"{record['loss']:.3f}", nll=f"{record['nll']:.3f}",
                                  acc=f"{record['token_accuracy']:.3f}", lr=f"{lr:.2e}",
                                  tok_s=f"{record['tokens_per_s']:.0f}", refresh=False)
        self._start_window(now)

    def valid(self, record: dict):
        """A "valid" record (validation.Validation.evaluate): written, and shown as one line."""
        append_records(self.run_dir, [record])
        text = (f"step {record['step']}: valid loss {record['loss']:.3f}  NLL {record['nll']:.3f}  "
                f"token accuracy {100 * record['token_accuracy']:.1f}% (teacher-forced)")
        if "exact_match" in record:
            text += (f"; greedy on {record['sentences']}: exact match {100 * record['exact_match']:.1f}%  "
                     f"BLEU {record['bleu']:.1f} ({record['bleu_tokenize']})  chrF {record['chrf']:.1f}")
        self.progress.write(text + ("  [best so far]" if record.get("best") else ""))

    def note(self, message: str):
        """A line on stderr that does not break the progress bar (a skipped step, say)."""
        self.progress.write(message, file=sys.stderr)

    def close(self):
        self.progress.close()
