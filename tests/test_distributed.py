"""Data-parallel training (seq2seq/train/distributed.py and the trainer under torchrun): two CPU processes
on the gloo backend against one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from seq2seq.config import compose
from seq2seq.train import checkpoint
from seq2seq.train.distributed import shard
from seq2seq.train.trainer import train
from seq2seq.translator import Translator
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # starts gloo process groups and torchrun


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_shards_are_disjoint_whole_rounds_from_any_position():
    for start in (0, 3):
        ranks = [list(shard(15, start, r, 2)) for r in range(2)]
        assert len(ranks[0]) == len(ranks[1]) == (15 - start) // 2  # the last odd batch is left out
        assert sorted(ranks[0] + ranks[1]) == list(range(start, start + 2 * len(ranks[0])))
        assert ranks[0][0] == start and ranks[1][0] == start + 1
    assert list(shard(15, 4, 0, 1)) == list(range(4, 15))  # one process: every batch, as without DDP
    assert list(shard(3, 2, 1, 2)) == []


def _rank(rank: int, world: int, port: int, cfg, run_dir: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    train(cfg, run_dir)


def run_ranks(world: int, cfg, run_dir, timeout: float = 120) -> None:
    """`train(cfg, run_dir)` in `world` spawned processes, as torchrun would start them."""
    ctx = mp.spawn(_rank, args=(world, free_port(), cfg, str(run_dir)), nprocs=world, join=False)
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.terminate()
            pytest.fail(f"{world} ranks did not finish within {timeout} s (a collective that not every rank reached?)")


def test_a_step_on_two_ranks_equals_a_step_on_one_process_with_both_batches(tmp_path, toy_data_overrides):
    """Rank r takes batch r of each round; one process with accumulate=2 takes batches 0 and 1 in one step.
    Weight decay makes Adam's update depend on the gradient's scale, so a wrong normalisation shows."""
    common = ["experiment=tiny", *toy_data_overrides, "model.dropout=0.0", "trainer.weight_decay=1.0",
              "trainer.max_steps=2", "trainer.save_every=1", "trainer.valid_every=1000", "trainer.average_last=0",
              "trainer.test_max_sentences=1", "trainer.threads=1"]
    train(compose(*common, "trainer.accumulate=2"), tmp_path / "one")
    run_ranks(2, compose(*common, "trainer.accumulate=1"), tmp_path / "two")
    for step in (1, 2):
        one = checkpoint.load(checkpoint.step_path(tmp_path / "one" / "checkpoints", step))
        two = checkpoint.load(checkpoint.step_path(tmp_path / "two" / "checkpoints", step))
        for key, value in one["model"].items():
            torch.testing.assert_close(two["model"][key], value, rtol=1e-5, atol=1e-6, msg=key)
        for key in ("tokens", "epoch", "batch_index"):
            assert two["progress"][key] == one["progress"][key], key
        assert two["progress"]["flops"] == pytest.approx(one["progress"]["flops"])
        assert len(two["rng_ranks"]) == 2 and "rng_ranks" not in one
    assert two["progress"]["batch_index"] == 4


@pytest.mark.slow
def test_torchrun_two_processes_write_once_and_resume(tmp_path, toy_data_overrides):
    run = tmp_path / "run"
    common = ["experiment=tiny", *toy_data_overrides, "trainer.save_every=2", "trainer.valid_every=2",
              "trainer.test_max_sentences=2", "trainer.threads=1", f"hydra.run.dir={run}"]

    def torchrun(program: list[str], *overrides):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               *program, "train", *common, *overrides]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    first = torchrun(["-m", "seq2seq"], "trainer.max_steps=4")
    assert first.stdout.count("test set") == 1  # one rank tested and printed the table
    log = (run / "train.log").read_text()
    assert log.count("results: ") == 1 and log.count("step 2 validation") == 1
    assert first.stderr.count("parameters on cpu") == 1  # rank 1 logs warnings only
    results = json.loads((run / "results.json").read_text())
    assert results["train"]["steps"] == 4 and results["train"]["processes"] == 2
    state = checkpoint.load(checkpoint.step_path(run / "checkpoints", 4))
    assert len(state["rng_ranks"]) == 2 and state["progress"]["step"] == 4
    assert len(Translator.load(run / "model").translate(["The cat sees a dog."])) == 1

    script = Path(sys.executable).with_name("seq2seq")  # `torchrun … $(which seq2seq) train …`
    torchrun([str(script)] if script.is_file() else ["-m", "seq2seq"], "trainer.max_steps=6")
    assert "resumed from step 4" in (run / "train.log").read_text()
    again = json.loads((run / "results.json").read_text())
    assert again["train"]["steps"] == 6 and again["train"]["tokens"] > results["train"]["tokens"]
