"""`seq2seq evaluate`: sacreBLEU BLEU and chrF of a model, with signatures.

Without --src/--ref: every configured test set (data.test_sets of the run's config.yaml beside model/,
else of conf/), hypotheses written to <run>/test/<set>.hyp and the scores merged into <run>/results.json.
With --src x.en --ref x.fr: your own pair of files (hypotheses to -o FILE if given).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from seq2seq.commands.common import (
    add_model_arguments,
    add_progress_argument,
    add_search_arguments,
    batching,
    check_output,
    default_model_dir,
    load_translator,
    progress_bar,
    read_lines,
    search_config,
    warn,
)
from seq2seq.config import compose
from seq2seq.data.sets import active_sets, read_sets
from seq2seq.errors import UserError
from seq2seq.evaluate import format_table, translate_and_score, update_results
from seq2seq.io import write_lines


def add_arguments(p) -> None:
    g = p.add_argument_group("what to score")
    g.add_argument("--src", type=Path, help="a source file, one sentence a line (with --ref)")
    g.add_argument("--ref", type=Path, help="its reference translations, line by line")
    g.add_argument("-o", "--output", type=Path, help="with --src/--ref: write the hypotheses to this file")
    g.add_argument("--force", action="store_true", help="overwrite an existing --output file")
    g.add_argument("--sets", nargs="+", metavar="NAME",
                   help="test sets to score, e.g. tatoeba/test (default: data.test_sets)")
    g.add_argument("--data-dir", type=Path,
                   help="the data step's output directory (default: data.out_dir of the run's config)")
    g.add_argument("--max-sentences", type=int, help="score only the first N sentences of each set")
    g.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="95%% confidence intervals from N bootstrap resamples (sacreBLEU; 1000 is usual)")
    add_progress_argument(g)
    add_search_arguments(p, sampling=False)
    add_model_arguments(p, ensemble=True)
    p.set_defaults(batch_tokens=6000)


def run(args) -> None:
    search, batches = search_config(args), batching(args)
    if (args.src is None) != (args.ref is None):
        raise UserError("--src and --ref go together")
    if args.src is not None and args.sets:
        raise UserError("--sets scores configured test sets; --src/--ref score your own files: pick one")
    if args.output is not None and args.src is None:
        raise UserError("-o is for --src/--ref; test-set hypotheses go to <run>/test/")
    if args.bootstrap < 0 or (args.max_sentences is not None and args.max_sentences < 1):
        raise UserError("--bootstrap must be >= 0 and --max-sentences >= 1")
    check_output(args.output, args.force)
    models = args.model or [default_model_dir()]
    if args.model is None:
        warn(f"model: {models[0]}")
    model_dir = models[0]  # the first model's run gives the data settings
    into_run = args.src is None and len(models) == 1  # an ensemble's scores belong to no run
    if args.src is not None:
        pairs = {str(args.src): read_pair(args.src, args.ref)}
    else:
        pairs = read_test_sets(model_dir, args.sets, args.data_dir)
    if args.max_sentences:
        pairs = {name: (src[: args.max_sentences], ref[: args.max_sentences]) for name, (src, ref) in pairs.items()}
    args.model = models
    english_source = data_config(model_dir).src_lang == "en"  # the keep-rate reads English names and numbers
    translator = load_translator(args)
    try:
        translator.check(search)  # --copy-unseen without the model's source_words.txt
    except ValueError as e:
        raise UserError(str(e)) from None
    results, run_dir = {}, model_dir.parent
    for name, (src, ref) in pairs.items():
        warn(f"translating {name} ({len(src)} sentences, beam {args.beam})")
        with progress_bar(args, len(src)) as bar:
            hyps, results[name] = translate_and_score(translator, src, ref, search, bootstrap=args.bootstrap,
                                                      keep=english_source, progress=bar.update, **batches)
        if into_run:
            write_lines(run_dir / "test" / f"{name.replace('/', '.')}.hyp", hyps)
        elif args.output is not None:
            write_lines(args.output, hyps)
    print(format_table(results), flush=True)
    if into_run:
        update_results(run_dir / "results.json", results)
        warn(f"hypotheses in {run_dir / 'test'}/, scores in {run_dir / 'results.json'}")
    elif args.src is None:
        warn("an ensemble belongs to no run, so its hypotheses and scores are written nowhere "
             "(--src/--ref -o FILE keeps the hypotheses)")


def read_pair(src: Path, ref: Path) -> tuple[list[str], list[str]]:
    sides = []
    for path in (src, ref):
        try:
            with path.open("rb") as f:
                sides.append(list(read_lines(f, warn=lambda m, p=path: warn(f"{p}: {m}"))))
        except OSError as e:
            raise UserError(f"cannot read {path}: {e.strerror}") from None
    if len(sides[0]) != len(sides[1]):
        raise UserError(f"{src} has {len(sides[0])} lines but {ref} has {len(sides[1])}")
    return sides[0], sides[1]


def read_test_sets(model_dir: Path, names: list[str] | None,
                   data_dir: Path | None) -> dict[str, tuple[list[str], list[str]]]:
    """The configured test sets: data settings from the run's config.yaml beside model/, else from conf/."""
    data_cfg = data_config(model_dir)
    if data_dir is not None:
        data_cfg.out_dir = str(data_dir)
    sets = {name: read_sets(data_cfg, [name]) for name in names or active_sets(data_cfg, "test_sets")}
    for name in [name for name, (src, _) in sets.items() if not src]:
        warn(f"test set {name} is empty: skipped")
        del sets[name]
    return sets


def data_config(model_dir: Path):
    run_config = model_dir.parent / "config.yaml"
    if run_config.is_file():
        return OmegaConf.load(run_config).data
    return compose().data
