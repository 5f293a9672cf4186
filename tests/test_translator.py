"""The Python API (`Translator`): order, empty and over-long inputs, n-best, alignments, the explain view.

A tiny model trained for a few seconds on the word-for-word toy corpus gives checkable translations;
a random one is enough where only shapes and bookkeeping matter.
"""

from __future__ import annotations

import math
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seq2seq.config import compose
from seq2seq.data.batching import collate
from seq2seq.data.tokenizer import EOS
from seq2seq.decode.config import SearchConfig
from seq2seq.decode.search import BANNED
from seq2seq.decode.unseen import source_words, unseen_capitalised
from seq2seq.evaluate import constraint_coverage, first_missed_word, score
from seq2seq.model.build import build_model
from seq2seq.model.directory import ModelDirError, save_model_dir
from seq2seq.train.loss import label_smoothed_loss
from seq2seq.translator import Translator
from seq2seq.viz.maps import alignments as map_alignments
from tests.conftest import FR, toy_pairs


def tiny_model(tokenizer, train_steps: int = 0, seed: int = 0):
    """transformer_tiny (d_model 64), random or trained on toy pairs with a fixed seed."""
    torch.manual_seed(seed)
    cfg = compose("model=transformer_tiny", "model.d_model=64", "model.d_ff=128", "model.dropout=0.0").model
    model = build_model(cfg, len(tokenizer))
    if train_steps:
        pairs = toy_pairs(2000, seed=7)
        ids = list(zip(tokenizer.encode([p[0] for p in pairs]), tokenizer.encode([p[1] for p in pairs])))
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, betas=(0.9, 0.98), eps=1e-9)
        rng = random.Random(seed)
        for _ in range(train_steps):
            batch = collate(rng.sample(ids, 64), "pair")
            loss, _ = label_smoothed_loss(model.logits(batch), batch.tgt_out, 0.0)
            optimizer.zero_grad()
            (loss / batch.tgt_tokens).backward()
            optimizer.step()
    return model.eval(), cfg


def make_model_dir(path, tokenizer, train_steps: int = 0):
    model, cfg = tiny_model(tokenizer, train_steps)
    return save_model_dir(path, model.state_dict(), cfg, len(tokenizer), tokenizer.path)


@pytest.fixture(scope="module")
def trained(toy_tokenizer, tmp_path_factory):
    """A Translator over a model directory holding a tiny model trained 250 steps on the toy corpus."""
    torch.set_num_threads(1)  # the suite's setting (conftest), which a training run before may have changed
    directory = make_model_dir(tmp_path_factory.mktemp("trained") / "model", toy_tokenizer, train_steps=250)
    warnings = []
    translator = Translator.load(directory, "cpu", warn=warnings.append)
    translator.warnings = warnings
    return translator


@pytest.fixture(scope="module")
def random_translator(toy_tokenizer):
    model, _ = tiny_model(toy_tokenizer)
    return Translator(model, toy_tokenizer)


def test_translates_held_out_sentences(trained):
    pairs = toy_pairs(40, seed=99)  # another draw than the training pairs (seed 7)
    out = trained.translate([en for en, _ in pairs], beam=4)
    assert score(out, [fr for _, fr in pairs])["chrf"] > 85  # 96.6-99.4 on seeds 0-3


def test_restores_input_order_around_empty_lines(trained):
    sources = ["The cat sees a dog.", "", "A man eats.", "   \t ", "The small woman likes the red house."]
    out = trained.translate(sources, beam=4)
    assert out[1] == "" and out[3] == "" and all(out[i] for i in (0, 2, 4))
    # Sorted into batches of two by length, then restored: each output is that sentence's own translation.
    assert out == [trained.translate(s, beam=4) if s.strip() else "" for s in sources]
    assert trained.translate(sources, beam=4, batch_size=2) == out
    assert trained.translate(sources, beam=4, batch_tokens=12) == out


def test_over_long_line_is_split_at_sentence_ends_and_joined(trained):
    sentences = ["The cat sees a dog.", "A man eats!", "The woman likes the ball?", "A big dog runs."]
    trained.max_source_pieces = 12  # every sentence fits, the line does not
    try:
        del trained.warnings[:]
        whole = trained.translate_full([" ".join(sentences)], SearchConfig(beam=2), alignments=True)[0]
        parts = trained.translate_full(sentences, SearchConfig(beam=2), alignments=True)
    finally:
        trained.max_source_pieces = trained.model.max_source_pieces()
    assert whole.text == " ".join(p.text for p in parts)
    assert any("translated as 4 sentences" in w for w in trained.warnings)
    assert whole.hypotheses[0].score == pytest.approx(sum(p.hypotheses[0].score for p in parts))
    assert whole.source_pieces == [piece for p in parts for piece in p.source_pieces]
    # Alignment indices refer to the joined pieces: each part's pairs shifted by the pieces before it.
    shifted, s0, t0 = [], 0, 0
    for p in parts:
        shifted += [(s + s0, t + t0) for s, t in p.alignments[0]]
        s0, t0 = s0 + len(p.source_pieces), t0 + len(p.pieces[0])
    assert whole.alignments[0] == shifted
    assert len(whole.hypotheses[0].token_logprobs) == len(whole.pieces[0]) + 1  # the pieces, then one <eos>


def test_a_sentence_too_long_alone_is_truncated_with_a_warning(random_translator):
    warnings = []
    random_translator.warn = warnings.append
    out = random_translator.translate_full(["x" * 10_000, "A cat."], SearchConfig(temperature=0.0, max_len_b=5))
    assert len(out) == 2 and len(out[0].source_pieces) == random_translator.max_source_pieces
    assert len(warnings) == 1 and "truncated" in warnings[0]


def test_output_never_outgrows_the_decoder_positions(random_translator):
    # 250 source pieces + b=50 would ask for 300 target positions; the decoder has 256.
    line = " ".join(["cat"] * 250)
    out = random_translator.translate_full([line], SearchConfig(beam=2, max_len_b=50))[0]
    assert len(out.source_pieces) == 250
    assert len(out.pieces[0]) <= random_translator.model.max_target_pieces(None)


def test_nbest_lists_are_sorted_and_checked(trained):
    t = trained.translate_full(["The dog sleeps."], SearchConfig(beam=4, nbest=3))[0]
    assert len(t.texts) == len(t.hypotheses) == len(t.pieces) == 3
    assert [h.score for h in t.hypotheses] == sorted((h.score for h in t.hypotheses), reverse=True)
    with pytest.raises(ValueError, match="nbest"):
        trained.translate(["x"], beam=2, nbest=3)
    with pytest.raises(ValueError, match="nbest"):
        trained.translate(["x"], temperature=1.0, nbest=2)


def test_confidence_is_the_mean_log_probability_and_flags_doubt(trained):
    sure, unsure = trained.translate_full(["The cat sees a dog.", "Zyx qwv plo."], SearchConfig(beam=4))
    lps = sure.hypotheses[0].token_logprobs
    assert sure.confidence() == pytest.approx(sum(lps) / len(lps))
    assert sure.confidence() > unsure.confidence()


def test_explain_greedy_steps_are_the_chosen_argmax_pieces(trained):
    t = trained.translate_full(["The man sees a red ball."], SearchConfig(temperature=0.0), explain=True)[0]
    hyp = t.hypotheses[0]
    assert [s.token for s in t.steps] == hyp.tokens + [EOS]
    assert all(s.token == s.top[0][0] for s in t.steps)  # greedy: the most likely piece every time
    assert [math.log(s.prob) for s in t.steps] == pytest.approx(hyp.token_logprobs, abs=1e-4)
    assert sum(s.logprob for s in t.steps) == pytest.approx(hyp.logprob, abs=1e-4)


def test_explain_beam_rescores_the_best_hypothesis(trained):
    t = trained.translate_full(["A big dog eats the small cat."], SearchConfig(beam=4, nbest=2), explain=True)[0]
    best = t.hypotheses[0]
    assert [s.token for s in t.steps] == best.tokens + [EOS]
    assert [s.logprob for s in t.steps] == pytest.approx(best.token_logprobs, abs=1e-4)


def test_explain_sampling_shows_probabilities_after_temperature(trained):
    source, temperature = "The woman sees the house.", 2.0
    t = trained.translate_full([source], SearchConfig(temperature=temperature, seed=3), explain=True)[0]
    model = trained.model
    src = model.make_source(trained.tokenizer.encode([source]))
    tgt = torch.tensor([[model.decoder_start_id] + t.hypotheses[0].tokens])
    with torch.no_grad():
        logits = model(src, tgt)[0]  # teacher-forced, computed independently
        logits[:, list(BANNED)] = float("-inf")  # search samples among the pieces a translation may hold
        expected = (logits / temperature).softmax(-1)
    for j, step in enumerate(t.steps):
        assert step.prob == pytest.approx(expected[j, step.token].item(), abs=1e-4)
        assert [p for _, p in step.top] == pytest.approx(expected[j].topk(5).values.tolist(), abs=1e-4)


def test_sampling_is_reproducible_with_a_seed(trained):
    sources = ["The cat sees a dog.", "A man eats the red ball."] * 3
    a = trained.translate(sources, temperature=1.5, seed=11)
    assert a == trained.translate(sources, temperature=1.5, seed=11)
    assert a != trained.translate(sources, temperature=1.5, seed=12)


def test_a_seed_per_sentence_samples_it_alike_whatever_the_other_sentences(trained):
    sources = ["The cat sees a dog.", "A man eats the red ball.", "The small woman runs."]
    together = trained.translate(sources, temperature=1.5, seed=[3, 4, None])
    assert together[:2] == [trained.translate([s], temperature=1.5, seed=[k])[0] for s, k in zip(sources, [3, 4])]
    assert together[1] == trained.translate(["Dog.", sources[1]], temperature=1.5, seed=[9, 4])[1]
    with pytest.raises(ValueError, match="2 seeds for 3 sentences"):
        trained.translate(sources, temperature=1.0, seed=[1, 2])


def test_alignments_follow_the_word_for_word_toy_translation(trained):
    sources = [en for en, _ in toy_pairs(40, seed=99)]
    found = trained.translate_full(sources, SearchConfig(beam=4), alignments=True)
    assert found[0].alignments[0] == map_alignments(trained.model, trained.tokenizer.encode(sources[:1]),
                                                    [found[0].hypotheses[0].tokens])[0]
    english = {fr: en for en, fr in FR.items()}
    hits = total = 0
    for t in found:  # each French word piece should point at the English word it translates
        linked = {tgt: src for src, tgt in t.alignments[0]}
        for j, piece in enumerate(t.pieces[0]):
            if piece[1:].lower() in english:
                total += 1
                hits += t.source_pieces[linked[j]].lstrip("▁").lower() == english[piece[1:].lower()]
    assert total > 100 and hits / total > 0.85  # 94-99% on seeds 0-3 (250 steps)


def test_a_single_string_gives_a_single_string(trained):
    assert trained.translate("The dog sleeps.", beam=2) == trained.translate(["The dog sleeps."], beam=2)[0]


def test_load_names_the_missing_directory(tmp_path):
    with pytest.raises(ModelDirError, match=str(tmp_path / "nope")):
        Translator.load(tmp_path / "nope")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(max_size=300), max_size=4))
def test_any_unicode_gives_one_single_line_output_per_input(random_translator, lines):
    out = random_translator.translate(lines, temperature=0.0, max_len_b=8)
    assert len(out) == len(lines)
    assert all("\n" not in o and "\t" not in o for o in out)
    assert all(o == "" for o, s in zip(out, lines) if not s.strip())


def test_decoder_only_model_gets_alignments_and_explain_too(toy_tokenizer):
    torch.manual_seed(0)
    model = build_model(compose("model=gpt_tiny").model, len(toy_tokenizer)).eval()
    translator = Translator(model, toy_tokenizer)
    for options in ({"beam": 3, "nbest": 2}, {"temperature": 0.0}):
        t = translator.translate_full(["The cat sees a dog.", ""], SearchConfig(max_len_b=5, **options),
                                      alignments=True, explain=True)[0]
        for pieces, pairs in zip(t.pieces, t.alignments):
            assert [j for _, j in pairs] == list(range(len(pieces)))
            assert all(0 <= i < len(t.source_pieces) for i, _ in pairs)
        assert [s.token for s in t.steps] == t.hypotheses[0].tokens + [EOS]
        assert [s.logprob for s in t.steps] == pytest.approx(t.hypotheses[0].token_logprobs, abs=1e-4)


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_reduced_precision_still_translates_the_toy_corpus(trained, toy_tokenizer, precision):
    """bf16 autocast and int8 dynamic quantization change the arithmetic, not the result on an easy task;
    int8 works on a quantized copy, leaving the fp32 model as it was."""
    pairs = toy_pairs(40, seed=99)
    sources, references = [en for en, _ in pairs], [fr for _, fr in pairs]
    before = trained.translate(sources, beam=4)
    reduced = Translator(trained.model, toy_tokenizer, "cpu", precision=precision)
    assert (reduced.model is trained.model) == (precision == "bf16")
    assert score(reduced.translate(sources, beam=4), references)["chrf"] > 85
    assert trained.translate(sources, beam=4) == before


def test_unknown_precision_and_int8_off_cpu_are_refused(toy_tokenizer):
    model, _ = tiny_model(toy_tokenizer)
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        Translator(model, toy_tokenizer, "cpu", precision="fp8")
    with pytest.raises(ValueError, match="int8 .* CPU only"):
        Translator(model, toy_tokenizer, "cuda", precision="int8")  # refused before anything touches the device


# -------------------------------------------------------------------------------- target prefix

PREFIX_SOURCES = ["The cat sees a dog.", "A big man eats the red ball."]


@pytest.mark.parametrize("search", [SearchConfig(beam=4), SearchConfig(temperature=1.0, seed=1),
                                    SearchConfig(temperature=0.0)])
def test_a_target_prefix_begins_every_translation_and_search_goes_on_after_it(trained, search):
    out = trained.translate_full(PREFIX_SOURCES, search, target_prefix=["Un chien voit ", "Le petit"])
    assert out[0].text.startswith("Un chien voit ") and len(out[0].text) > len("Un chien voit ")
    assert out[1].text.startswith("Le petit")
    assert out[1].text.split()[2] in FR.values()  # "petit" closed as a word: the next one is a toy-corpus word
    assert trained.translate_full(PREFIX_SOURCES, search, target_prefix=[None, ""])[0].text == \
        trained.translate_full(PREFIX_SOURCES, search)[0].text


def test_a_prefix_ending_mid_word_may_continue_that_word(trained):
    # The toy tokenizer spells "gr" alone as "▁g" "r", but "grand" as "▁grand": the open word heals.
    assert trained.tokenizer.encode_pieces("Un gr")[-2:] == ["▁g", "r"]
    out = trained.translate_full(["A big man eats the red ball."], SearchConfig(beam=4), target_prefix=["Un gr"])[0]
    assert out.text.startswith("Un grand ") and "▁grand" in out.pieces[0]


def test_a_prefix_longer_than_the_length_cap_is_the_output_with_a_warning(trained):
    del trained.warnings[:]
    prefix = "Le chat voit un chien rouge"
    for search in (SearchConfig(beam=3, max_len_a=0.0, max_len_b=3),
                   SearchConfig(temperature=0.5, max_len_a=0.0, max_len_b=3)):
        out = trained.translate_full(["The cat sees a dog."], search, target_prefix=[prefix])[0]
        assert out.text == prefix
    assert len(trained.warnings) == 2 and "length cap of 3" in trained.warnings[0]


def test_prefixes_are_one_per_sentence(trained):
    with pytest.raises(ValueError, match="2 target prefixes for 1 sentences"):
        trained.translate_full(["A dog."], target_prefix=["Un", "Le"])


def test_the_decoder_only_model_honours_a_target_prefix(toy_tokenizer):
    torch.manual_seed(0)
    model = build_model(compose("model=gpt_tiny").model, len(toy_tokenizer)).eval()
    translator = Translator(model, toy_tokenizer)
    forced = toy_tokenizer.encode(["Le chat voit"])[0]
    for search in (SearchConfig(beam=3, max_len_b=12), SearchConfig(temperature=1.0, seed=0, max_len_b=12)):
        out = translator.translate_full(["The cat sees a dog.", "A man."], search,
                                        target_prefix=["Le chat voit ", None])
        assert out[0].hypotheses[0].tokens[: len(forced)] == forced and out[0].text.startswith("Le chat voit")


# -------------------------------------------------------------------------------- scoring

def test_the_score_of_the_models_own_output_is_the_searchs_score(trained):
    sources = [en for en, _ in toy_pairs(12, seed=5)]
    for search in (SearchConfig(temperature=0.0), SearchConfig(beam=4, lenpen=0.6), SearchConfig(beam=3, lenpen=1.2)):
        found = trained.translate_full(sources, search)
        scored = trained.score(sources, [t.text for t in found], search)
        for t, s in zip(found, scored):
            assert s.pieces == t.pieces[0]
            expected = s.logprob if search.sampling else s.score  # greedy ranks by the sum, beam by sum / lp
            assert expected == pytest.approx(t.hypotheses[0].score, abs=1e-5)
            assert s.token_logprobs == pytest.approx(t.hypotheses[0].token_logprobs, abs=1e-5)
            assert s.mean == pytest.approx(t.confidence(), abs=1e-5)


@pytest.mark.parametrize("name", ["transformer_tiny", "gpt_tiny"])
def test_scores_are_the_teacher_forced_log_probabilities(toy_tokenizer, name):
    torch.manual_seed(0)
    model = build_model(compose(f"model={name}").model, len(toy_tokenizer)).eval()
    translator = Translator(model, toy_tokenizer)
    sources = ["The cat sees a dog.", "A man.", "Red."]
    targets = ["Le chat voit un chien.", "", "Un grand homme rouge."]
    scored = translator.score(sources, targets, batch_size=2)
    pairs = list(zip(toy_tokenizer.encode(sources), toy_tokenizer.encode(targets)))
    with torch.no_grad():
        for (s, t), result in zip(pairs, scored):  # one pair at a time: no padding at all
            data = collate([(s, t)], "pair" if name == "transformer_tiny" else "concat")
            logprobs = model.logits(data).log_softmax(-1)[0]
            labels = data.tgt_out[0] != 0
            expected = logprobs[labels].gather(1, data.tgt_out[0, labels][:, None]).squeeze(1)
            assert result.token_logprobs == pytest.approx(expected.tolist(), abs=1e-5)
            assert len(result.token_logprobs) == len(t) + 1


def test_score_needs_one_target_per_source(trained):
    with pytest.raises(ValueError, match="2 sources but 1 targets"):
        trained.score(["A.", "B."], ["Un."])


# -------------------------------------------------------------------------------- constraints

def test_every_constraint_appears_in_the_trained_models_output(trained):
    sources = [en for en, _ in toy_pairs(10, seed=3)]
    wanted = [["maison"], ["rouge", "petit"], ["chien dort"], ["ballon", "homme", "femme"], [], ["voit"],
              ["grand"], ["court"], ["le chat", "un chien"], ["mange"]]
    plain = trained.translate(sources, beam=4)
    # not there by luck
    assert sum(all(w in p.split() for w in c if " " not in w) for p, c in zip(plain, wanted) if c) < 5
    for search in (SearchConfig(beam=4), SearchConfig(beam=4, constraints_ordered=True)):
        out = trained.translate_full(sources, search, constraints=wanted)
        for t, phrases in zip(out, wanted):
            words = " " + " ".join(t.text.rstrip(".").split()) + " "
            assert all(f" {p} " in words for p in phrases), (t.text, phrases)
            positions = [words.index(f" {p} ") for p in phrases]
            assert not search.constraints_ordered or positions == sorted(positions), (t.text, phrases)


def test_a_small_beam_is_raised_once_and_an_impossible_constraint_dropped(trained):
    del trained.warnings[:]
    trained._said_beam = False
    sources = ["The cat sees a dog.", "A man eats."]
    out = trained.translate_full(sources, SearchConfig(beam=2),
                                 constraints=[["rouge", "petit", "maison"], ["grand", "petit"]])
    assert all(w in out[0].text.split() for w in ("rouge", "petit", "maison"))
    (said,) = [w for w in trained.warnings if "raised" in w]  # once, though both lines needed it
    assert said.startswith("warning: beam 2 is too small for ") and "raised to the number of constraints + 1" in said
    long_phrase = " ".join(["rouge"] * 30)
    out = trained.translate_full(["A dog."], SearchConfig(beam=4, max_len_a=0.0, max_len_b=8),
                                 constraints=[[long_phrase, "maison"]])[0]
    assert "maison" in out.text and any("dropped for this line" in w for w in trained.warnings)


def test_first_missed_word_is_the_first_reference_word_the_output_lacks():
    assert first_missed_word("Le chat dort.", "Le petit chat dort.") == "petit"
    assert first_missed_word("le chat dort", "Le chat dort.") == "Le"  # case counts
    assert first_missed_word("Il est aujourd'hui là.", "Il est aujourd'hui là !") is None
    assert first_missed_word("J'ai vu un chat-huant.", "J'ai vu un chat.") == "chat"  # whole words only


def test_constraint_coverage_gives_each_missed_word_back(trained):
    pairs = toy_pairs(12, seed=5)
    sources, references = [en for en, _ in pairs], [fr.replace("chat", "matou") for _, fr in pairs]
    found = constraint_coverage(trained, sources, references, SearchConfig(beam=4))
    assert 0 < found["missing_a_word"] <= found["sentences"] == 12
    assert found["appears"] == found["missing_a_word"]  # every constraint met
    assert all(e["constraint"] in e["after"] for e in found["examples"])


def test_constraints_need_beam_search(trained):
    with pytest.raises(ValueError, match="need beam search"):
        trained.translate_full(["A dog."], SearchConfig(temperature=1.0), constraints=[["maison"]])


# -------------------------------------------------------------------------------- names never seen

def test_unseen_capitalised_words_are_those_training_never_showed():
    seen = frozenset(source_words(["Tom saw the cat.", "the dog sleeps in paris", "ÉTÉ"]))
    assert seen == {"tom", "saw", "the", "cat", "dog", "sleeps", "in", "paris", "été"}
    found = unseen_capitalised("The cat met Zayyan, Björgúlfur and zoe in Paris; Zayyan's Été", seen)
    assert found == ["Zayyan", "Björgúlfur"]  # seen in any case, lower-case or part of a longer token: left


def test_copy_unseen_carries_names_the_model_never_saw(trained):
    seen = frozenset(source_words(en for en, _ in toy_pairs(2000, seed=7)))
    translator = Translator(trained.model, trained.tokenizer, source_words=seen)
    sources = ["Belmor sees the cat.", "The dog likes Domella and a ball.", "The man runs."]
    plain = translator.translate(sources, beam=4, copy_unseen=False)
    assert not any(name in text for name, text in zip(("Belmor", "Domella"), plain))  # not there by luck
    out = translator.translate(sources, beam=4)  # on by default, since the translator has the words
    assert "Belmor" in out[0].split() and "Domella" in out[1].split() and out[2] == plain[2]  # whole words
    assert translator.translate(sources, beam=4, copy_unseen=True) == out
    assert translator.translate(sources[:1], temperature=0.0) == trained.translate(sources[:1], temperature=0.0)
    both = translator.translate_full(sources[:1], SearchConfig(copy_unseen=True), constraints=[["maison"]])[0]
    assert "Belmor" in both.text and "maison" in both.text  # added to the constraints given


def test_copy_unseen_needs_the_words_and_beam_search(trained, tmp_path, toy_tokenizer):
    with pytest.raises(ValueError, match="no source_words.txt"):
        Translator(trained.model, trained.tokenizer).translate("Belmor runs.", copy_unseen=True)
    assert "Belmor" not in Translator(trained.model, trained.tokenizer).translate("Belmor sees the cat.")  # off
    with pytest.raises(ValueError, match="copy_unseen needs beam search"):
        SearchConfig(temperature=0.0, copy_unseen=True)
    directory = make_model_dir(tmp_path / "model", toy_tokenizer)
    (directory / "source_words.txt").write_text("cat\ndog\n")
    assert Translator.load(directory, "cpu").source_words == {"cat", "dog"}
