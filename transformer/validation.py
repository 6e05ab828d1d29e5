"""Validation while training, by decoding: the scores a user cares about, measured as the run goes,
and the best weights kept.

The teacher-forced loss is cheap, but it is not what a translator is judged by: a model can lower
it and still translate no better. So every --eval-every steps a run also greedy-decodes the first
--eval-sentences held-out pairs and scores them (exact match, BLEU, chrF, as metrics.py computes
them). Whenever the score chosen by --select-by improves, the weights go to best.ckpt; after
--patience evaluations in a row without improvement, the run stops. At the end, the best
checkpoint is the one scored and used.

"Improves" means strictly better; a tie is broken by the validation loss. Exact match on a couple
of hundred sentences often stops moving at 100% long before the model stops getting better, and
without the tie-break the first checkpoint to reach 100% would be kept for good.

Validation uses no random numbers (the model is in eval mode, decoding is greedy), so a resumed
run validates exactly as the uninterrupted one would; what it must carry on is in state_dict():
the best score so far, its step, and the patience count.
"""
from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

from .checkpoint import BEST_NAME, load_checkpoint
from .losses import validation_losses
from .scoring import score_pairs

# --select-by choice -> (the record's key, +1 when higher is better, -1 when lower is)
SELECT_BY = {"exact-match": ("exact_match", 1), "bleu": ("bleu", 1), "chrf": ("chrf", 1), "loss": ("loss", -1)}


class Validation:
    """What a run measures on held-out pairs every --eval-every steps, and the best of it so far."""

    def __init__(self, corpus, settings: dict, device):
        self.corpus, self.device = corpus, device
        self.select_by, self.patience = settings["select_by"], settings["patience"]
        self.batch_size, self.label_smoothing = settings["batch_size"], settings["label_smoothing"]
        self.decode_batch_size = settings["decode_batch_size"]
        self.decoded_pairs = corpus.valid_pairs[:settings["eval_sentences"]]
        self.valid_ids = corpus.valid_ids(settings["max_len"])
        self.best_step: int | None = None      # the step of best.ckpt (None: no evaluation yet)
        self.best_key: list | None = None
        self.best_record: dict | None = None
        self.evaluations_without_improvement = 0

    @property
    def enabled(self) -> bool:
        return bool(self.corpus.valid_pairs)

    def evaluate(self, model, step: int) -> dict:
        """The "valid" record of `step`: teacher-forced losses, then the decoded scores (when
        --eval-sentences > 0). Its "best" says whether it beat every earlier one; the caller then
        saves best.ckpt."""
        record = {"kind": "valid", "step": step,
                  **validation_losses(model, self.valid_ids, self.corpus.tgt_vocab, self.batch_size,
                                      self.label_smoothing, self.device)}
        if self.decoded_pairs:
            scores, _ = score_pairs(model, self.decoded_pairs, self.corpus.src_vocab, self.corpus.tgt_vocab,
                                    self.corpus.tokenizer, self.device, batch_size=self.decode_batch_size)
            record.update(decoding="greedy", sentences=scores["sentences"], exact_match=scores["exact_match"],
                          decoded_token_accuracy=scores["token_accuracy"], bleu=scores["bleu"],
                          chrf=scores["chrf"], bleu_tokenize=scores["bleu_tokenize"])
        model.train()
        key = self._key(record)
        record["best"] = self.best_key is None or key > self.best_key
        if record["best"]:
            self.best_key, self.best_step, self.best_record = key, step, record
            self.evaluations_without_improvement = 0
        else:
            self.evaluations_without_improvement += 1
        return record

    def _key(self, record: dict) -> list:
        """What is compared, larger is better: the --select-by score, then minus the loss."""
        name, sign = SELECT_BY[self.select_by]
        value = record[name]
        if not math.isfinite(value):
            value = -math.inf * sign
        return [sign * value] if name == "loss" else [sign * value, -record["loss"]]

    def find_best_file(self, run_dir: Path, resumed_from: Path) -> str | None:
        """After a resume, make `run_dir`/best.ckpt hold the weights of the best step, copying the
        resumed run's best.ckpt into a new run directory. A file of another step (a run killed after
        it saved a better best.ckpt than its last.ckpt knew of) is not taken: when no file holds the
        best step's weights, the best is forgotten and the next evaluation chooses anew. Returns a
        note saying so, or None."""
        if self.best_step is None:
            return None
        here = Path(run_dir) / BEST_NAME
        for candidate in (here, Path(resumed_from).parent / BEST_NAME):
            if candidate.is_file() and load_checkpoint(candidate)["step"] == self.best_step:
                if candidate != here:
                    temporary = here.with_name(f".{BEST_NAME}.copy.tmp")
                    shutil.copyfile(candidate, temporary)
                    os.replace(temporary, here)
                return None
        lost = self.best_step
        self.best_step = self.best_key = self.best_record = None
        return f"note: no best.ckpt of step {lost} found; the next evaluation chooses the best anew"

    def out_of_patience(self) -> bool:
        """True once --patience evaluations in a row brought no improvement (never with patience 0)."""
        return bool(self.patience) and self.evaluations_without_improvement >= self.patience

    def stop_reason(self) -> str:
        return (f"no better {self.select_by} in {self.patience} evaluations (--patience {self.patience}); "
                f"the best was at step {self.best_step}")

    def state_dict(self) -> dict:
        return {"select_by": self.select_by, "best_step": self.best_step, "best_key": self.best_key,
                "best_record": self.best_record,
                "evaluations_without_improvement": self.evaluations_without_improvement}

    def load_state_dict(self, state: dict):
        """A checkpoint's validation state (its kinds checked); a run saved before this existed has none."""
        if not state:
            return
        if not isinstance(state, dict) or state.get("select_by") != self.select_by:
            raise ValueError(f"the validation state {str(state)[:60]!r} is not one of --select-by {self.select_by}")
        step, key, count = state.get("best_step"), state.get("best_key"), state.get("evaluations_without_improvement")
        if not (step is None or type(step) is int) or type(count) is not int or count < 0 or not (
                key is None or isinstance(key, list) and all(isinstance(v, (int, float)) for v in key)):
            raise ValueError(f"the validation state {str(state)[:60]!r} is malformed")
        self.best_step, self.best_key, self.evaluations_without_improvement = step, key, count
        self.best_record = state.get("best_record") if isinstance(state.get("best_record"), dict) else None

