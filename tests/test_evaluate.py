"""sacreBLEU scoring and `seq2seq evaluate` on the configured test sets or on a pair of files."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from seq2seq.cli import main
from seq2seq.config import compose
from seq2seq.data.prepare import prepare
from seq2seq.evaluate import format_table, score, update_results
from tests.conftest import toy_pairs
from tests.test_translator import make_model_dir

ENTRY_KEYS = {"bleu", "chrf", "signature", "n", "beam", "precision", "seconds"}


def test_score_is_sacrebleu_with_signatures():
    refs = ["Le chat voit un chien.", "Un homme mange une pomme rouge."]
    perfect = score(refs, refs)
    assert perfect["bleu"] == 100.0 and perfect["chrf"] == 100.0 and perfect["n"] == 2
    assert perfect["signature"]["bleu"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert perfect["signature"]["chrf"].startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:")
    worse = score(["Le chat voit un chat.", "Un homme mange."], refs)
    assert 0 < worse["bleu"] < 100 and 0 < worse["chrf"] < 100
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        score(refs, refs[:1])


def test_bootstrap_gives_confidence_intervals_shown_in_the_table():
    pairs = toy_pairs(60, seed=3)
    hyps = [fr if i % 3 else fr.replace("le", "la") for i, (_, fr) in enumerate(pairs)]
    entry = score(hyps, [fr for _, fr in pairs], bootstrap=200)
    assert entry["bleu_ci95"] > 0 and entry["chrf_ci95"] > 0
    table = format_table({"toy": entry})
    assert f"{entry['bleu']:.2f} ± {entry['bleu_ci95']:.2f}" in table
    assert "BLEU: nrefs:1" in table and "chrF: nrefs:1" in table and "95% confidence" in table


def test_bootstrap_survives_empty_hypotheses():
    # Resamples of empty hypotheses score a Python 0.0 among numpy float32s: plain sacreBLEU 2.6 raises TypeError.
    hyps, refs = ["a b c d e"] * 2 + [""] * 30, ["a b c d e"] * 2 + ["y"] * 30
    entry = score(hyps, refs, bootstrap=100)
    assert entry["chrf_ci95"] > 0 and entry["bleu_ci95"] > 0


def test_update_results_keeps_the_other_sections_and_sets(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"model": {"name": "x"}, "test": {"a": {"bleu": 1.0}, "b": {"bleu": 2.0}}}))
    update_results(path, {"b": {"bleu": 3.0}, "c": {"bleu": 4.0}})
    assert json.loads(path.read_text()) == {"model": {"name": "x"},
                                            "test": {"a": {"bleu": 1.0}, "b": {"bleu": 3.0}, "c": {"bleu": 4.0}}}


@pytest.fixture
def run_dir(tmp_path, toy_data_overrides, toy_tokenizer):
    """A finished run's directory: config.yaml (pointing at a prepared toy corpus), model/, results.json."""
    cfg = compose("experiment=tiny", *toy_data_overrides)
    prepare(cfg.data, log=lambda msg: None)
    run = tmp_path / "run"
    make_model_dir(run / "model", toy_tokenizer)
    (run / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (run / "results.json").write_text(json.dumps({"model": {"name": "tiny"}, "test": {"old/set": {"bleu": 1.0}}}))
    return run


def test_evaluate_scores_every_configured_test_set(run_dir, capsys):
    main(["evaluate", "--model", str(run_dir / "model"), "--beam", "2", "--max-len-b", "5", "--max-sentences", "6"])
    out = capsys.readouterr().out
    sets = ["multi30k/test_2016_flickr", "multi30k/test_2017_flickr", "tatoeba/test"]
    assert all(name in out for name in sets) and "BLEU: nrefs:1|case:mixed" in out and "chrF: nrefs:1" in out
    results = json.loads((run_dir / "results.json").read_text())
    assert results["model"] == {"name": "tiny"} and results["test"]["old/set"] == {"bleu": 1.0}
    for name in sets:
        entry = results["test"][name]
        assert set(entry) == ENTRY_KEYS and entry["n"] == 6 and entry["beam"] == 2
        hyps = (run_dir / "test" / f"{name.replace('/', '.')}.hyp").read_text().split("\n")
        assert len(hyps) == 7 and hyps[-1] == ""


def test_an_ensemble_of_one_model_twice_scores_as_that_model_and_writes_into_no_run(run_dir, capsys):
    model, common = str(run_dir / "model"), ["--beam", "2", "--max-len-b", "5", "--max-sentences", "6",
                                             "--sets", "tatoeba/test"]
    main(["evaluate", "--model", model, *common])
    alone = json.loads((run_dir / "results.json").read_text())["test"]["tatoeba/test"]
    before = (run_dir / "results.json").read_text(), (run_dir / "test" / "tatoeba.test.hyp").read_text()
    capsys.readouterr()
    main(["evaluate", "--model", model, "--model", model, *common])
    captured = capsys.readouterr()
    row = next(line for line in captured.out.splitlines() if line.startswith("tatoeba/test"))
    assert f"{alone['bleu']:.2f}" in row and f"{alone['chrf']:.2f}" in row
    assert "written nowhere" in captured.err
    assert ((run_dir / "results.json").read_text(), (run_dir / "test" / "tatoeba.test.hyp").read_text()) == before


def test_evaluate_own_files_with_bootstrap(tmp_path, toy_tokenizer, capsys):
    model = make_model_dir(tmp_path / "model", toy_tokenizer)
    pairs = toy_pairs(8, seed=5)
    (tmp_path / "x.en").write_text("".join(en + "\n" for en, _ in pairs))
    (tmp_path / "x.fr").write_text("".join(fr + "\n" for _, fr in pairs))
    hyp = tmp_path / "x.hyp"
    main(["evaluate", "--model", str(model), "--src", str(tmp_path / "x.en"), "--ref", str(tmp_path / "x.fr"),
          "--beam", "1", "--max-len-b", "3", "--bootstrap", "50", "-o", str(hyp)])
    out = capsys.readouterr().out
    assert str(tmp_path / "x.en") in out and " ± " in out
    assert len(hyp.read_text().splitlines()) == 8
    assert not (tmp_path / "results.json").exists()  # your own files are not a configured test set


@pytest.mark.parametrize("extra, message", [
    (["--src", "{tmp}/x.en"], "--src and --ref go together"),
    (["--src", "{tmp}/x.en", "--ref", "{tmp}/short.fr"], "x.en has 2 lines but {tmp}/short.fr has 1"),
    (["--src", "{tmp}/x.en", "--ref", "{tmp}/x.en", "-o", "{tmp}/x.en"], "exists; pass --force"),
])
def test_evaluate_user_errors(tmp_path, toy_tokenizer, capsys, extra, message):
    (tmp_path / "x.en").write_text("A cat.\nA dog.\n")
    (tmp_path / "short.fr").write_text("Un chat.\n")
    model = make_model_dir(tmp_path / "model", toy_tokenizer)
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "--model", str(model), *(a.format(tmp=tmp_path) for a in extra)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and message.format(tmp=tmp_path) in err
