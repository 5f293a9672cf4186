"""Training survives kills, signals, corrupt checkpoints, non-finite losses and a full disk; nothing
unsafe is loaded; broken model directories and impossible configs are one-line errors. docs/RELIABILITY.md
lists each fault with the test that tries it.

Kills and signals hit real `python -m seq2seq train` subprocesses (a tiny model on the toy corpus, one
thread); the other faults are injected in-process, where they can be placed exactly.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from seq2seq.cli import main
from seq2seq.config import compose
from seq2seq.model.directory import ModelDirError, load_model_dir
from seq2seq.train import checkpoint
from seq2seq.train import trainer as trainer_module
from seq2seq.train.trainer import StopRequest, TrainingError, train
from seq2seq.translator import Translator
from tests.conftest import ROOT
from tests.test_translator import make_model_dir

pytestmark = pytest.mark.slow  # faults injected into real training and translation runs

# No validation, no averaging, two test sentences, one thread: fast, and deterministic on the CPU.
FAST = ["trainer.valid_every=1000", "trainer.average_last=0", "trainer.test_max_sentences=2", "trainer.threads=1"]
TEMP = re.compile(r"^\.step_(\d+)\.pt\.\w+\.tmp$")  # checkpoint.atomic_write's temporary file


def overrides(data_overrides, *extra) -> list[str]:
    return ["experiment=tiny", *data_overrides, *FAST, *extra]


def steps_on_disk(run: Path) -> list[int]:
    return [int(p.name[5:13]) for p in checkpoint.list_steps(run / "checkpoints")]


def temp_files(run: Path) -> list[int]:
    folder = run / "checkpoints"
    return [int(m.group(1)) for p in (folder.iterdir() if folder.is_dir() else []) if (m := TEMP.match(p.name))]


def assert_every_checkpoint_loads(run: Path) -> None:
    for path in checkpoint.list_steps(run / "checkpoints"):
        checkpoint.load(path)  # CheckpointError names a partial file


def start(run: Path, args: list[str]) -> subprocess.Popen:
    """`seq2seq train` in a subprocess, its standard error in <run>.err."""
    with open(run.parent / f"{run.name}.err", "ab") as err:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "seq2seq", "train", *args, f"hydra.run.dir={run}"], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=err)


def wait_for(proc: subprocess.Popen, condition, run: Path, timeout: float = 90.0) -> None:
    """Poll `condition` every 2 ms while the training process runs."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            err = (run.parent / f"{run.name}.err").read_text(errors="replace")
            pytest.fail(f"training ended (status {proc.returncode}) or timed out before the kill point:\n{err[-3000:]}")
        time.sleep(0.002)


def assert_same_weights(a: Path, b: Path) -> None:
    x, y = checkpoint.load(a), checkpoint.load(b)
    assert x["model"].keys() == y["model"].keys()
    for key in x["model"]:
        assert torch.allclose(x["model"][key], y["model"][key], atol=1e-6), key
    assert x["progress"]["tokens"] == y["progress"]["tokens"]


# -------------------------------------------------------------------------------- kills and signals

def test_kill_9_at_random_moments_then_resuming_gives_the_uninterrupted_run(tmp_path, toy_data_overrides):
    steps = 45
    args = overrides(toy_data_overrides, f"trainer.max_steps={steps}", "trainer.save_every=3", "trainer.keep_last=3")
    train(compose(*args), tmp_path / "straight")  # the reference (it also prepares the data once)

    run, rng = tmp_path / "killed", random.Random(9)
    moments = rng.sample(["while a checkpoint is written", "between checkpoints", "between checkpoints"], 3)
    left_behind = 0
    for band, moment in enumerate(moments):
        target = rng.randint(3 + 12 * band, 12 + 12 * band)  # one kill in each third of the run
        proc = start(run, args)
        if moment == "while a checkpoint is written":
            wait_for(proc, lambda t=target: any(s >= t for s in temp_files(run)), run)
        else:
            wait_for(proc, lambda t=target: any(s >= t for s in steps_on_disk(run)), run)
            time.sleep(rng.uniform(0.0, 0.3))
        proc.kill()  # SIGKILL: no handler, no cleanup
        proc.wait()
        assert_every_checkpoint_loads(run)  # never a partial step_*.pt ...
        left_behind += len(temp_files(run))  # ... only temporary files, which no load looks at
    assert left_behind >= 1, "no kill landed during a checkpoint write"

    proc = start(run, args)  # the same command again
    assert proc.wait(timeout=120) == 0, (tmp_path / "killed.err").read_text()[-3000:]
    log = (run / "train.log").read_text()
    assert log.count("resumed from step") >= 3 and (run / "results.json").is_file()
    assert temp_files(run) == []  # the resumed run cleared what the kills left
    assert_same_weights(checkpoint.step_path(tmp_path / "straight" / "checkpoints", steps),
                        checkpoint.step_path(run / "checkpoints", steps))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_finishes_the_step_checkpoints_it_and_the_run_resumes_there(tmp_path, toy_data_overrides, sig):
    args = overrides(toy_data_overrides, "trainer.max_steps=100000", "trainer.save_every=4")
    run = tmp_path / "run"
    proc = start(run, args)
    wait_for(proc, lambda: bool(steps_on_disk(run)), run)
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == 130
    err = (tmp_path / "run.err").read_text()
    assert f"{sig.name} received: finishing this step and writing a checkpoint" in err and "Traceback" not in err
    step = int(re.search(r"checkpoint written at step (\d+); run the same command again to resume", err).group(1))
    assert step >= 4 and steps_on_disk(run)[-1] == step  # the step in flight, not the last periodic one
    assert checkpoint.load(checkpoint.step_path(run / "checkpoints", step))["progress"]["step"] == step

    results = train(compose(*overrides(toy_data_overrides, f"trainer.max_steps={step + 2}")), run)
    assert f"resumed from step {step} " in (run / "train.log").read_text()
    assert results["train"]["steps"] == step + 2


def test_a_second_ctrl_c_exits_at_once_with_one_line(tmp_path, monkeypatch, capsys):
    def train_until_interrupted(cfg, run_dir):
        with StopRequest() as stop:
            signal.raise_signal(signal.SIGINT)
            assert stop.requested  # the first: finish the step, checkpoint, exit
            signal.raise_signal(signal.SIGINT)  # the second: out now
            pytest.fail("a second SIGINT did not interrupt")

    monkeypatch.setattr(trainer_module, "train", train_until_interrupted)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    with pytest.raises(SystemExit) as e:
        main(["train", "experiment=tiny", f"hydra.run.dir={tmp_path / 'run'}"])
    assert e.value.code == 130
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: interrupted; run the same command again to resume from the last checkpoint")


# -------------------------------------------------------------------------------- bad checkpoints, losses, disks

def test_a_corrupt_newest_checkpoint_is_named_and_the_run_resumes_from_the_one_before(tmp_path, toy_data_overrides):
    args = overrides(toy_data_overrides, "trainer.save_every=3", "trainer.keep_last=5")
    run = tmp_path / "run"
    train(compose(*args, "trainer.max_steps=6"), run)
    newest = checkpoint.step_path(run / "checkpoints", 6)
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # a truncated file

    results = train(compose(*args, "trainer.max_steps=9"), run)
    log = (run / "train.log").read_text()
    warning = next(line for line in log.splitlines() if "WARNING" in line and "step_00000006.pt" in line)
    assert "cannot load checkpoint" in warning and "trying the previous checkpoint" in warning
    assert "resumed from step 3 " in log and results["train"]["steps"] == 9
    assert checkpoint.load(newest)["progress"]["step"] == 6  # step 6 trained again and rewritten whole


def nan_loss_on(calls, monkeypatch) -> None:
    """Make the training loss NaN on the given calls (1 = the first step's batch)."""
    real, count = trainer_module.label_smoothed_loss, itertools.count(1)

    def loss(logits, labels, smoothing):
        value, nll = real(logits, labels, smoothing)
        return (value * float("nan"), nll * float("nan")) if next(count) in calls else (value, nll)

    monkeypatch.setattr(trainer_module, "label_smoothed_loss", loss)


def test_a_non_finite_loss_skips_the_update_logs_it_and_training_goes_on(tmp_path, toy_data_overrides, monkeypatch):
    nan_loss_on({3}, monkeypatch)
    run = tmp_path / "run"
    results = train(compose(*overrides(toy_data_overrides, "trainer.max_steps=5", "trainer.save_every=1",
                                              "trainer.keep_last=10")), run)
    assert results["train"]["skipped_updates"] == 1 and results["train"]["steps"] == 5
    assert "step 3: 1 update(s) skipped for a non-finite loss" in (run / "train.log").read_text()
    before, skipped, after = (checkpoint.load(checkpoint.step_path(run / "checkpoints", s)) for s in (2, 3, 4))
    for key in before["model"]:  # step 3 changed nothing, step 4 trained again
        assert torch.equal(before["model"][key], skipped["model"][key]), key
    assert any(not torch.equal(skipped["model"][k], after["model"][k]) for k in skipped["model"])
    for state_before, state_skipped in zip(before["optimizer"]["state"].values(),
                                           skipped["optimizer"]["state"].values()):
        assert all(torch.equal(state_before[k], state_skipped[k]) for k in state_before)  # Adam moments and step count


def test_non_finite_losses_in_a_row_stop_the_run_naming_the_step_with_a_hint(tmp_path, toy_data_overrides, monkeypatch):
    nan_loss_on(range(3, 1000), monkeypatch)
    cfg = compose(*overrides(toy_data_overrides, "trainer.max_steps=50", "trainer.nonfinite_limit=4"))
    with pytest.raises(TrainingError, match=r"^4 non-finite losses in a row up to step 6: lower the learning rate "
                                            r"\(trainer.peak_lr\) or check the data$"):
        train(cfg, tmp_path / "run")


def test_a_full_disk_is_one_line_and_the_last_checkpoint_stays_whole(tmp_path, toy_data_overrides, monkeypatch, capsys):
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("progress", {}).get("step") == 6:
            f.write(b"PK\x03\x04 the first bytes of a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        main(["train", *overrides(toy_data_overrides, "trainer.max_steps=9", "trainer.save_every=3"),
              f"hydra.run.dir={run}"])
    assert e.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: cannot write a checkpoint in {run / 'checkpoints'} (No space left on device); "
        "the previous checkpoint is intact")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_00000003.pt"]  # no temporary file
    assert checkpoint.load(run / "checkpoints" / "step_00000003.pt")["progress"]["step"] == 3


def test_an_unwritable_run_directory_is_one_line(tmp_path, toy_data_overrides):
    blocker = tmp_path / "a_file"
    blocker.write_text("")  # (chmod would not stop root: a run directory under a file cannot be created by anyone)
    with pytest.raises(TrainingError, match=f"^run directory {blocker / 'run'} is not writable: Not a directory$"):
        train(compose(*overrides(toy_data_overrides)), blocker / "run")


# -------------------------------------------------------------------------------- nothing unsafe is loaded

class RunsCode:
    """Unpickling this runs `exec`: it writes the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


def evil_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"model": {"w": torch.zeros(2)}, "payload": RunsCode(marker)}, path)
    torch.load(path, weights_only=False)  # the control: an unsafe load does run it
    assert marker.exists()
    marker.unlink()
    return path


def test_every_torch_load_in_the_package_is_weights_only():
    calls = [(p.name, line.strip()) for p in (ROOT / "seq2seq").rglob("*.py")
             for line in p.read_text().splitlines() if "torch.load(" in line]
    assert calls and all("weights_only=True" in line for _, line in calls), calls


def test_a_model_directory_with_a_code_running_pickle_is_refused(tmp_path, toy_tokenizer):
    directory = make_model_dir(tmp_path / "model", toy_tokenizer)
    marker = tmp_path / "pwned"
    evil_checkpoint(directory / "model.pt", marker)
    with pytest.raises(ModelDirError, match=re.escape(str(directory / "model.pt"))):
        load_model_dir(directory)
    assert not marker.exists()


def test_average_refuses_a_code_running_pickle_in_one_line(tmp_path, capsys):
    checkpoint.save({"model": {"w": torch.ones(2)}}, tmp_path / "good.pt")
    evil, marker, out = (evil_checkpoint(tmp_path / "evil.pt", tmp_path / "pwned"), tmp_path / "pwned",
                         tmp_path / "avg.pt")
    with pytest.raises(SystemExit) as e:
        main(["average", str(tmp_path / "good.pt"), str(evil), "-o", str(out)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and f"cannot load checkpoint {evil}" in err
    assert not marker.exists() and not out.exists()


def test_init_from_a_code_running_pickle_is_refused(tmp_path, toy_data_overrides):
    evil, marker = evil_checkpoint(tmp_path / "evil.pt", tmp_path / "pwned"), tmp_path / "pwned"
    with pytest.raises(checkpoint.CheckpointError, match=re.escape(str(evil))):
        train(compose(*overrides(toy_data_overrides, f"trainer.init_from={evil}")), tmp_path / "run")
    assert not marker.exists()


# -------------------------------------------------------------------------------- model directories

@pytest.fixture(scope="module")
def good_model_dir(toy_tokenizer, tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("good") / "model", toy_tokenizer)


def edit_config(change):
    def apply(directory: Path) -> None:
        meta = json.loads((directory / "config.json").read_text())
        change(meta)
        (directory / "config.json").write_text(json.dumps(meta))
    return apply


def truncate(name: str):
    def apply(directory: Path) -> None:
        data = (directory / name).read_bytes()
        (directory / name).write_bytes(data[: len(data) // 2])
    return apply


@pytest.mark.parametrize("damage, message", [
    (edit_config(lambda m: m["model"].pop("heads")), "config.json: model config lacks heads"),
    (edit_config(lambda m: m["model"].pop("encoder_layers")), "config.json: model config lacks encoder_layers"),
    (edit_config(lambda m: m.pop("vocab_size")), "config.json: missing or invalid (KeyError"),
    (lambda d: (d / "config.json").write_text('{"model": '), "config.json: missing or invalid (JSONDecodeError"),
    (edit_config(lambda m: m["model"].update(d_ff=96)), "model.pt: weights do not match config.json (first mismatch: "),
    (edit_config(lambda m: m["model"].update(decoder_layers=3)), "model.pt: weights do not match config.json"),
    (edit_config(lambda m: m["model"].update(heads=5)), "config.json: d_model (64) must be divisible by heads (5)"),
    (edit_config(lambda m: m["model"].update(kind="rnn")), "config.json: unknown model kind 'rnn'"),
    (edit_config(lambda m: m.update(vocab_size=m["vocab_size"] + 1)),
     "tokenizer has 400 pieces but the model expects 401"),
    (lambda d: (d / "spm.model").unlink(), "tokenizer unusable (tokenizer model not found"),
    (lambda d: (d / "spm.model").write_bytes(b"not a sentencepiece model"), "tokenizer unusable"),
    (lambda d: (d / "model.pt").unlink(), "checkpoint not found"),
    (truncate("model.pt"), "cannot load checkpoint"),
], ids=["no-heads", "no-layers", "no-vocab", "bad-json", "d_ff", "layers", "heads", "kind", "vocab", "no-tokenizer",
        "bad-tokenizer", "no-weights", "truncated-weights"])
def test_a_broken_model_directory_is_one_line_naming_the_problem(good_model_dir, tmp_path, damage, message):
    directory = shutil.copytree(good_model_dir, tmp_path / "model")
    damage(directory)
    with pytest.raises(ModelDirError) as e:
        load_model_dir(directory)
    text = str(e.value)
    assert message in text and str(directory) in text and "\n" not in text


# -------------------------------------------------------------------------------- output files

def test_a_translation_stopped_midway_leaves_the_old_output_file_whole(good_model_dir, tmp_path, monkeypatch):
    source, out = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_text("The cat sees a dog.\n" * 5)
    out.write_text("the previous translations\n")
    real, calls = Translator.translate_full, itertools.count()

    def ctrl_c_on_the_third_buffer(self, lines, **options):
        if next(calls) == 2:
            raise KeyboardInterrupt
        return real(self, lines, **options)

    monkeypatch.setattr(Translator, "translate_full", ctrl_c_on_the_third_buffer)
    with pytest.raises(SystemExit) as e:
        main(["translate", "--model", str(good_model_dir), "--beam", "1", "--max-len-b", "3", "--buffer-size", "1",
              "-i", str(source), "-o", str(out), "--force"])
    assert e.value.code == 130
    assert out.read_text() == "the previous translations\n"  # not two new lines and a cut
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.txt"]  # no temporary file left


# -------------------------------------------------------------------------------- configuration

@pytest.mark.parametrize("override, message", [
    ("model.heads=3", "model.d_model=32 is not divisible by model.heads=3"),
    ("model.dropout=1.0", "model.dropout=1.0 must be in [0, 1)"),
    ("model.attention_dropout=-0.1", "model.attention_dropout=-0.1 must be in [0, 1)"),
    ("model.vocab_size=5", "tokenizer.vocab_size=5 (model.vocab_size by default) leaves no room beyond the 5 special"),
    ("tokenizer.vocab_size=261", "and the 256 byte pieces of tokenizer.byte_fallback"),
    ("trainer.batch_tokens=100", ("trainer.batch_tokens=100 is smaller than the longest example (129 tokens with "
                                  "trainer.max_len=128)")),
    ("trainer.save_every=0", "trainer.save_every=0 must be a number of at least 1"),
    ("trainer.max_steps=many", "trainer.max_steps=many must be a number of at least 0"),
    ("model=nope", ("unknown model 'nope'; available: gpt_base, gpt_small, gpt_tiny, transformer_base, "
                    "transformer_big, transformer_small, transformer_tiny")),
    ("trainer=nope", "unknown trainer 'nope'; available: default"),
    ("data=nope", "unknown data 'nope'; available: default"),
    ("experiment=nope", "unknown experiment 'nope'; available: cpu_small, "),
    ("trainer.nope=1", "Could not override 'trainer.nope'. To append to your config use +trainer.nope=1"),
])
def test_a_config_error_is_one_line_before_any_data_is_touched(tmp_path, monkeypatch, capsys, override, message):
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    raw, data = tmp_path / "raw", tmp_path / "data"  # no corpus at all: reading it would fail differently
    preset = [] if override.startswith("experiment=") else ["experiment=tiny"]
    with pytest.raises(SystemExit) as e:
        main(["train", *preset, override, f"data.raw_dir={raw}", f"data.out_dir={data}", "data.download=false",
              f"hydra.run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not data.exists()
