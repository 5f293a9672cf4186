"""`seq2seq translate`: one output line per input line whatever the input, formats, files, errors, pipes.

Most tests run the CLI in-process (`seq2seq.cli.main`); two run it as a real subprocess, for what only
a process shows (bytes on standard input, a reader that goes away).
"""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import sys
import time

import pytest

import seq2seq.commands.translate as translate_command
from seq2seq.cli import main
from seq2seq.data.tokenizer import train_tokenizer
from tests.conftest import ROOT, toy_pairs
from tests.test_translator import make_model_dir

FAST = ["--beam", "1", "--max-len-b", "4"]


@pytest.fixture(scope="module")
def model_dir(toy_tokenizer, tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("cli") / "model", toy_tokenizer)


def translate(*args, stdin: bytes | None = None, monkeypatch=None) -> None:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    main(["translate", *map(str, args)])


def test_text_mode_puts_nbest_scores_and_alignments_on_the_input_line(model_dir, capsys):
    translate("--model", model_dir, "--beam", "3", "--nbest", "2", "--scores", "--alignments", "--max-len-b", "5",
              "The cat sees a dog.", "", "A man eats.")
    lines = capsys.readouterr().out.split("\n")
    assert lines[-1] == "" and len(lines) == 4  # three lines, each ended by \n
    assert lines[1] == ""
    for line in (lines[0], lines[2]):
        fields = line.split("\t")
        assert len(fields) == 6  # (translation, score, alignment) for each of the 2 hypotheses
        assert float(fields[1]) >= float(fields[4])
        for alignment in (fields[2], fields[5]):
            assert re.fullmatch(r"\d+-\d+( \d+-\d+)*", alignment)


def test_jsonl_has_pieces_probabilities_confidence_alignment_and_timing(model_dir, capsys, monkeypatch):
    translate("--model", model_dir, *FAST, "--format", "jsonl", "--alignments",
              stdin=b"The cat sees a dog.\n\nA man eats.\n", monkeypatch=monkeypatch)
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["source"] for r in records] == ["The cat sees a dog.", "", "A man eats."]
    assert records[1]["hypotheses"] == []
    for r in (records[0], records[2]):
        (hyp,) = r["hypotheses"]
        assert set(hyp) == {"text", "pieces", "score", "logprob", "probs", "confidence", "alignment"}
        assert len(hyp["probs"]) == len(hyp["pieces"]) + 1  # the pieces, then <eos>
        assert hyp["confidence"] == pytest.approx(hyp["logprob"] / len(hyp["probs"]), abs=1e-3)
        assert [t for _, t in hyp["alignment"]] == list(range(len(hyp["pieces"])))
        assert all(0 <= s < len(r["source_pieces"]) for s, _ in hyp["alignment"])
        assert r["timing"]["batch_lines"] == 3


def test_explain_goes_to_stderr_and_leaves_one_line_on_stdout(model_dir, capsys):
    translate("--model", model_dir, "--temperature", "0", "--max-len-b", "3", "--explain", "The cat.")
    out, err = capsys.readouterr()
    assert out.count("\n") == 1
    assert "greedy" in err and "top-5" in err and "confidence" in err
    assert len(re.findall(r"^ +\d+ ", err, flags=re.MULTILINE)) >= 1  # one row per generated piece


def test_output_file_is_not_overwritten_without_force(model_dir, tmp_path, capsys):
    out = tmp_path / "out.txt"
    out.write_text("keep me\n")
    with pytest.raises(SystemExit) as e:
        translate("--model", model_dir, *FAST, "-o", out, "The cat.")
    assert e.value.code == 2 and "--force" in capsys.readouterr().err
    assert out.read_text() == "keep me\n"
    translate("--model", model_dir, *FAST, "-o", out, "--force", "The cat.", "A dog.")
    assert len(out.read_text().splitlines()) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]  # no temporary file left behind


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_reduced_precision_gives_one_line_per_input(model_dir, capsys, precision):
    translate("--model", model_dir, *FAST, "--precision", precision, "The cat.", "", "A dog.")
    assert capsys.readouterr().out.count("\n") == 3


@pytest.mark.parametrize("args, message", [
    (["--model", "{tmp}/nope", "x"], "model directory not found: {tmp}/nope"),
    (["--beam", "2", "--nbest", "3", "x"], "--nbest (3) must be between 1 and --beam (2)"),
    (["--temperature", "0.5", "--nbest", "2", "x"], "--nbest needs beam search"),
    (["-i", "{tmp}/missing.txt"], "input file not found"),
    (["--alignments", "--alignment-layer", "5", "x"], "--alignment-layer 5: the decoder has 2 layers"),
    (["--precision", "int8", "--device", "cuda", "x"], "int8 (dynamic quantization) runs on CPU only, not cuda"),
    (["--copy-unseen", "x"], "copy_unseen needs the words training saw: this model directory has no source_words.txt"),
    (["--copy-unseen", "--temperature", "0", "x"], "--copy-unseen needs beam search: drop --temperature"),
])
def test_user_errors_are_one_line_with_status_2(model_dir, tmp_path, capsys, args, message):
    args = [a.format(tmp=tmp_path) for a in args]
    with pytest.raises(SystemExit) as e:
        translate(*(["--model", model_dir] if "--model" not in args else []), *args)
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message.format(tmp=tmp_path) in err


def test_interactive_translates_each_line_typed(model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(translate_command, "HISTORY", tmp_path / "history")
    translate("--model", model_dir, *FAST, "--interactive", stdin=b"The cat.\n\nA dog.\n", monkeypatch=monkeypatch)
    out = capsys.readouterr().out
    assert out.count("> ") == 4  # three prompts answered, then end of input at the fourth
    assert len(out.replace("> ", "").split("\n")) == 4


# -------------------------------------------------------------------------------- subprocesses

def run_cli(*args, stdin: bytes, **kwargs):
    return subprocess.run([sys.executable, "-m", "seq2seq", "translate", *map(str, args)], input=stdin, check=False,
                          capture_output=True, cwd=ROOT, timeout=120, **kwargs)


def test_every_input_line_gives_exactly_one_output_line(model_dir):
    lines = [b"The cat sees a dog.", b"", b"   \t ", b"\xff\xfe broken \xc3( bytes", ("x" * 10_000).encode(),
             "مرحبا بالعالم 👋🏽 e\u0301".encode(), b"\x00\x07 control \x1b[31m", "split\u2028not\u0085here".encode(),
             b"tab\tinside\r", b"A dog. " * 400, b"no newline at the end"]
    result = run_cli("--model", model_dir, *FAST, "--scores", "--threads", "1", stdin=b"\n".join(lines))
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode("utf-8").split("\n")
    assert out[-1] == "" and len(out) - 1 == len(lines)
    assert out[1] == out[2] == ""
    assert all(len(line.split("\t")) == 2 for i, line in enumerate(out[:-1]) if i not in (1, 2))
    err = result.stderr.decode()
    assert "line 4 is not valid UTF-8" in err and "truncated" in err and "Traceback" not in err


def test_a_closed_pipe_ends_quietly(model_dir, tmp_path):
    source = tmp_path / "many.txt"
    source.write_text("".join(f"The cat sees {i} dogs.\n" for i in range(300)))
    with source.open("rb") as stdin:
        proc = subprocess.Popen([sys.executable, "-m", "seq2seq", "translate", "--model", str(model_dir), *FAST,
                                 "--buffer-size", "1", "--threads", "1"], stdin=stdin, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=ROOT)
        first = proc.stdout.readline()  # like `| head -1`: read one line, then go away
        proc.stdout.close()
        err = proc.stderr.read().decode()
        status = proc.wait(timeout=120)
    assert first.endswith(b"\n")
    assert status == 0 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_prefix_file_gives_each_line_its_own_prefix(model_dir, tmp_path, capsys):
    source, prefixes = tmp_path / "in.en", tmp_path / "prefix.fr"
    source.write_text("The cat.\nA dog.\nThe man.\n")
    prefixes.write_text("Un chien \n\nLe grand \n")
    translate("--model", model_dir, *FAST, "-i", source, "--prefix-file", prefixes)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[0].startswith("Un chien") and lines[2].startswith("Le grand")


@pytest.mark.parametrize("source_text", ["one\ntwo\nthree\n", None])
def test_a_prefix_file_of_another_length_is_refused_before_any_work(model_dir, tmp_path, capsys, source_text):
    prefixes, out = tmp_path / "prefix.fr", tmp_path / "out.fr"
    prefixes.write_text("Un\nLe\n")
    if source_text is None:
        inputs = ["The cat."]
    else:
        (tmp_path / "in.en").write_text(source_text)
        inputs = ["-i", tmp_path / "in.en"]
    with pytest.raises(SystemExit) as e:
        translate("--model", model_dir, *FAST, "--prefix-file", prefixes, "-o", out, *inputs)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1
    assert f"--prefix-file has 2 lines but the input has {1 if source_text is None else 3}" in err
    assert not out.exists()


def test_interactive_takes_a_prefix_after_three_bars(model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(translate_command, "HISTORY", tmp_path / "history")
    translate("--model", model_dir, *FAST, "--interactive", stdin=b"The cat. ||| Une maison \nThe cat.\n",
              monkeypatch=monkeypatch)
    answers = capsys.readouterr().out.replace("> ", "").splitlines()
    assert answers[0].startswith("Une maison") and not answers[1].startswith("Une maison")


# -------------------------------------------------------------------------------- score

def test_score_prints_one_line_per_pair_and_jsonl_has_the_pieces(model_dir, tmp_path, capsys):
    src, tgt = tmp_path / "x.en", tmp_path / "x.fr"
    src.write_text("The cat.\nA dog.\n")
    tgt.write_text("Le chat.\n\n")
    main(["score", "--model", str(model_dir), "--src", str(src), "--tgt", str(tgt)])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(len(line.split("\t")) == 3 for line in lines)
    main(["score", "--model", str(model_dir), "--src", str(src), "--tgt", str(tgt), "--format", "jsonl"])
    first, second = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(first["token_logprobs"]) == len(first["pieces"]) + 1 and second["pieces"] == []
    assert first["logprob"] == pytest.approx(sum(first["token_logprobs"]), abs=1e-3)
    assert [float(x) for x in lines[0].split("\t")] == pytest.approx([first["logprob"], first["mean"], first["score"]],
                                                                     abs=1e-3)


def test_score_refuses_files_of_different_lengths_in_one_line(model_dir, tmp_path, capsys):
    src, tgt = tmp_path / "x.en", tmp_path / "x.fr"
    src.write_text("The cat.\nA dog.\n")
    tgt.write_text("Le chat.\n")
    with pytest.raises(SystemExit) as e:
        main(["score", "--model", str(model_dir), "--src", str(src), "--tgt", str(tgt)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err == f"error: {src} has 2 lines but {tgt} has 1\n"


# -------------------------------------------------------------------------------- long files

def test_progress_bar_on_request_and_none_when_turned_off(model_dir, tmp_path, capsys):
    source = tmp_path / "in.en"
    source.write_text("The cat.\nA dog.\n\n")
    translate("--model", model_dir, *FAST, "-i", source, "-o", tmp_path / "a.fr", "--progress")
    assert "3/3" in capsys.readouterr().err
    translate("--model", model_dir, *FAST, "-i", source, "-o", tmp_path / "b.fr", "--no-progress")
    assert "3/3" not in capsys.readouterr().err
    main(["evaluate", "--model", str(model_dir), "--src", str(source), "--ref", str(source), "--beam", "1",
          "--max-len-b", "4", "--progress"])
    assert "3/3" in capsys.readouterr().err


def start_resumable(model_dir, source, out, *extra):
    return subprocess.Popen([sys.executable, "-m", "seq2seq", "translate", "--model", str(model_dir), *FAST,
                             "--threads", "1", "--format", "jsonl", "--buffer-size", "1", "-i", str(source),
                             "-o", str(out), "--resume", *map(str, extra)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            # a shell's background job starts with SIGINT ignored, and Python then never turns
                            # it into KeyboardInterrupt: give the child the default, however pytest was started
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def stop_midway(proc, partial, signal_number, lines: int = 20) -> None:
    """Send `signal_number` once `partial` holds `lines` lines."""
    deadline = time.monotonic() + 120
    while not (partial.exists() and partial.read_bytes().count(b"\n") >= lines):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
        time.sleep(0.05)
    proc.send_signal(signal_number)
    proc.wait(timeout=60)
    assert proc.returncode == (130 if signal_number == signal.SIGINT else -signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGINT"])
def test_an_interrupted_job_resumes_without_a_line_lost_or_twice(model_dir, tmp_path, signal_name):
    sources = [f"The cat sees {i} dogs." for i in range(200)]
    source, out = tmp_path / "in.en", tmp_path / "out.fr"
    source.write_text("\n".join(sources) + "\n")
    partial = tmp_path / "out.fr.partial"
    stop_midway(start_resumable(model_dir, source, out), partial, getattr(signal, signal_name))
    assert not out.exists() and 20 <= partial.read_bytes().count(b"\n") < len(sources)
    with partial.open("ab") as f:
        f.write(b'{"source": "The cat sees 9')  # a torn last line, as a kill in mid-write leaves it
    resumed = start_resumable(model_dir, source, out)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err.decode()
    assert "resuming" in err.decode()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["source"] for r in records] == sources
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.en", "out.fr"]


@pytest.mark.slow
def test_resume_refuses_a_partial_file_made_otherwise(model_dir, tmp_path):
    source, out = tmp_path / "in.en", tmp_path / "out.fr"
    source.write_text("".join(f"The dog sees {i} cats.\n" for i in range(200)))
    stop_midway(start_resumable(model_dir, source, out), tmp_path / "out.fr.partial", signal.SIGKILL)
    before = (tmp_path / "out.fr.partial").read_bytes()
    other = start_resumable(model_dir, source, out, "--lenpen", "1.0")
    _, err = other.communicate(timeout=120)
    assert other.returncode == 2 and err.decode().count("\n") == 1
    assert "changed since the run that made it: options;" in err.decode()
    assert (tmp_path / "out.fr.partial").read_bytes() == before


# -------------------------------------------------------------------------------- constraints

def test_constraints_file_puts_every_phrase_in_its_line(model_dir, tmp_path, capsys):
    source, constraints = tmp_path / "in.en", tmp_path / "terms.fr"
    source.write_text("The cat.\nA dog.\nThe man.\n")
    constraints.write_text("maison\trouge\n\npetit chat\n")
    translate("--model", model_dir, "--beam", "3", "--max-len-b", "8", "-i", source, "--constraints-file", constraints,
              "--constraints-ordered")
    first, _, third = capsys.readouterr().out.splitlines()
    assert "maison" in first and "rouge" in first and first.index("maison") < first.index("rouge")
    assert "petit chat" in third


@pytest.mark.parametrize("args, message", [
    (["--temperature", "0.5", "A."], "--constraints-file needs beam search: drop --temperature"),
    (["A.", "B."], "--constraints-file has 1 lines but the input has 2"),
])
def test_constraints_file_errors_are_one_line_before_any_work(model_dir, tmp_path, capsys, args, message):
    constraints = tmp_path / "terms.fr"
    constraints.write_text("maison\n")
    with pytest.raises(SystemExit) as e:
        translate("--model", model_dir, "--constraints-file", constraints, *args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err == f"error: {message}\n"


# -------------------------------------------------------------------------------- ensembles

def test_an_ensemble_of_a_model_with_itself_translates_as_the_model(model_dir, toy_tokenizer, tmp_path, capsys):
    other = make_model_dir(tmp_path / "other", toy_tokenizer)  # same tokenizer, same seed: the same weights
    sentences = ["The cat sees a dog.", "", "A man eats."]
    translate("--model", model_dir, "--beam", "2", "--max-len-b", "6", "--scores", *sentences)
    alone = capsys.readouterr().out
    translate("--model", model_dir, "--model", other, "--beam", "2", "--max-len-b", "6", "--scores", *sentences)
    assert capsys.readouterr().out == alone
    with pytest.raises(SystemExit) as e:
        translate("--model", model_dir, "--model", other, "--alignments", "x")
    assert e.value.code == 2 and "not available for an ensemble" in capsys.readouterr().err


def test_an_ensemble_refuses_models_with_different_tokenizers_in_one_line(model_dir, tmp_path, capsys):
    pairs = toy_pairs(500, seed=3)
    other_tokenizer = train_tokenizer([s for p in pairs for s in p], tmp_path / "other.model", vocab_size=350)
    other = make_model_dir(tmp_path / "other", other_tokenizer)
    for command in (["translate", "x"],
                    ["score", "--src", str(other / "config.json"), "--tgt", str(other / "config.json")]):
        with pytest.raises(SystemExit) as e:
            main([*command, "--model", str(model_dir), "--model", str(other)])
        err = capsys.readouterr().err
        assert (e.value.code == 2 and err.count("\n") == 1 and "an ensemble needs one tokenizer" in err
                and str(other) in err)
