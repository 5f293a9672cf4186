"""One entry point: `seq2seq <command>` (also `python -m seq2seq`).

`data`, `train` and `compare` are Hydra applications: they take overrides such as
`seq2seq train model=transformer_tiny trainer.max_steps=100`. The other commands are ordinary argparse
commands, one module each under `seq2seq/commands/`, with `--help`.

The Hydra task of `train` returns one metric, so that `seq2seq train --multirun …` sweeps can use it:
`validation_bleu`, the greedy BLEU of the run's last validation averaged over the validation sets (higher is
better; NaN if no validation ran). See `seq2seq.train.trainer.validation_bleu`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException
from omegaconf.errors import OmegaConfBaseException

from seq2seq.compare.run import compare
from seq2seq.config import CONF_DIR, validate
from seq2seq.data.sets import prepare_data
from seq2seq.errors import UserError
from seq2seq.schema import type_message
from seq2seq.train import trainer

HYDRA_COMMANDS = {
    "data": "prepare the corpora and the tokenizer (Hydra overrides)",
    "train": "train a model (Hydra overrides, e.g. experiment=tiny trainer.max_steps=100)",
    "compare": "train both architectures on one budget and write a report (Hydra overrides)",
}
# name -> (module under seq2seq.commands, one-line help); each module has add_arguments(parser) and run(args)
ARGPARSE_COMMANDS = {
    "translate": ("translate", "translate sentences (arguments, stdin or -i FILE)"),
    "evaluate": ("evaluate", "score a model on the test sets or on your own files"),
    "score": ("score", "log-probability of given translations under a model (--src X --tgt Y)"),
    "attention": ("attention", "draw attention maps for one sentence"),
    "serve": ("serve", "translate over HTTP, with a web page (FastAPI + uvicorn)"),
    "tokenize": ("tokenize", "show the SentencePiece pieces and ids of a text"),
    "average": ("average", "average checkpoints (paper §6.1)"),
    "params": ("params", "print parameter counts of model configs"),
    "export": ("export", "export a model directory to Hugging Face MarianMT / GPT-2"),
}


def fail(message: str, status: int = 2):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(status)


def run_hydra(command: str, argv: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s | %(message)s", datefmt="%H:%M:%S")

    def task(cfg):
        try:
            validate(cfg)
            output_dir = HydraConfig.get().runtime.output_dir
            if command == "data":
                prepare_data(cfg)
            elif command == "train":
                # looked up when called (tests replace trainer.train); the metric a --multirun sweeper compares
                return trainer.validation_bleu(trainer.train(cfg, output_dir))
            else:
                return compare(cfg, output_dir)
        except UserError as e:
            fail(str(e))
        except KeyboardInterrupt:  # a second Ctrl-C: the first one checkpoints and exits by itself
            fail("interrupted; run the same command again to resume from the last checkpoint", 130)

    config_name = "compare" if command == "compare" else "config"
    sys.argv = [f"seq2seq {command}", *argv]
    full_error = "HYDRA_FULL_ERROR" in os.environ
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra then raises its errors instead of printing them over many lines
    try:
        hydra.main(version_base="1.3", config_path=CONF_DIR, config_name=config_name)(task)()
    except (HydraException, OmegaConfBaseException) as e:
        if full_error:
            raise
        fail(config_message(e))
    finally:
        if not full_error:
            os.environ.pop("HYDRA_FULL_ERROR", None)


def config_message(e: Exception) -> str:
    """A Hydra or OmegaConf error in one line; an unknown name in a config group lists the available ones."""
    if isinstance(e, MissingConfigException) and e.options and e.missing_cfg_file:
        group, _, name = e.missing_cfg_file.rpartition("/")
        return f"unknown {group} {name!r}; available: {', '.join(e.options)}"
    cause = e.__cause__
    if typed := type_message(cause):  # a value the schema's type refuses, in the words of its limit
        return typed
    text = " ".join(str(e).split("\n\n")[0].split())  # the first paragraph; Hydra's search path follows
    return text + (f" ({' '.join(str(cause).splitlines()[0].split())})" if cause and str(cause).strip() else "")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in HYDRA_COMMANDS:
        return run_hydra(argv[0], argv[1:])
    parser = argparse.ArgumentParser(prog="seq2seq", description="English→French translation with Transformers.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in HYDRA_COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    modules = {}
    for name, (module_name, help_text) in ARGPARSE_COMMANDS.items():
        modules[name] = importlib.import_module(f"seq2seq.commands.{module_name}")
        modules[name].add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        sys.exit(0)
    try:
        modules[args.command].run(args)
    except UserError as e:
        fail(str(e))
    except BrokenPipeError:  # `seq2seq translate < big.txt | head -1`
        sys.stderr.close()
        sys.exit(0)
