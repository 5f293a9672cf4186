"""`seq2seq train --multirun`: Hydra's basic sweeper trains once per value, and each job returns the
metric a sweeper compares, the last validation's greedy BLEU (higher is better)."""

from __future__ import annotations

import json
import math
import sys

import pytest
from hydra.experimental.callback import Callback

from seq2seq.cli import main
from seq2seq.train.trainer import validation_bleu

pytestmark = pytest.mark.slow  # a Hydra multirun of two tiny trainings

RETURNED: list[tuple[int, object]] = []  # (trainer.max_steps, the task's return value) of each job


class RecordReturn(Callback):
    """What the task of each job returned (Hydra's JobReturn.return_value), as a sweeper would see it."""

    def on_job_end(self, config, job_return, **kwargs) -> None:
        RETURNED.append((config.trainer.max_steps, job_return.return_value))


def test_a_sweep_over_two_values_trains_twice_and_each_job_returns_validation_bleu(tmp_path, toy_data_overrides,
                                                                                    monkeypatch):
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    RETURNED.clear()
    sweep = tmp_path / "sweep"
    main(["train", "--multirun", "experiment=tiny", *toy_data_overrides, "trainer.max_steps=2,3",
          "trainer.valid_every=2", "trainer.valid_max_sentences=4", "trainer.average_last=0",
          "trainer.test_max_sentences=2", "trainer.threads=1", f"hydra.sweep.dir={sweep}",
          f"+hydra.callbacks.record._target_={__name__}.RecordReturn"])

    assert [steps for steps, _ in RETURNED] == [2, 3]
    for job, (steps, returned) in enumerate(RETURNED):
        results = json.loads((sweep / str(job) / "results.json").read_text())
        assert results["train"]["steps"] == steps
        assert isinstance(returned, float) and 0.0 <= returned <= 100.0
        assert returned == results["train"]["history"][-1]["bleu"]  # the validation of step 2 in both


def test_the_metric_is_the_last_validations_bleu_and_nan_without_one():
    history = [{"step": 2, "bleu": 7.5}, {"step": 4, "bleu": 6.25}]
    assert validation_bleu({"train": {"history": history}}) == 6.25  # the last, not the best
    assert math.isnan(validation_bleu({"train": {"history": []}}))
