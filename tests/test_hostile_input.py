"""No line of Unicode breaks the tokenizer or translation (property-based, in-process).

Lines are drawn from what real pipes carry and what breaks naive code: control and format characters,
only whitespace, right-to-left text and its embedding marks, emoji with joiners and skin tones, stacks of
combining marks, 10,000-character lines. Both model kinds, random weights: only the bookkeeping matters.
The CLI side (invalid UTF-8, a closed pipe, --force) is in tests/test_translate_cli.py.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from seq2seq.config import compose
from seq2seq.data.text import clean
from seq2seq.decode.config import SearchConfig
from seq2seq.model.build import build_model
from seq2seq.translator import Translator

pytestmark = pytest.mark.slow  # reliability: property tests over hostile input

MAX_B = 3  # output pieces per translated part (max_len_a=0): the bound on every output

CONTROL = st.characters(categories=["Cc", "Cf", "Cs", "Co", "Cn"])  # controls, format, surrogates, private, unassigned
SPACES = st.sampled_from(" \t\n\r\x0b\x0c\x1c\x85\xa0\u1680\u2000\u2009\u200b\u2028\u2029"
                         "\u202f\u205f\u3000\ufeff\u2581")
RTL = (st.characters(min_codepoint=0x0590, max_codepoint=0x08FF)
       | st.sampled_from("\u200e\u200f\u202b\u202e\u2067\u2069"))
EMOJI = st.characters(min_codepoint=0x1F1E6, max_codepoint=0x1FAFF) | st.sampled_from(
    "\u200d\ufe0f\U0001F3FD👩👧")  # with the joiner, VS16 and a skin tone; regional indicators make flags
COMBINING = st.characters(categories=["Mn", "Me", "Mc"])
MIXED = st.one_of(st.characters(codec="utf-8"), RTL, EMOJI, COMBINING, SPACES, st.sampled_from(".!? <sep><unk>"))
LINE = st.one_of(
    st.text(max_size=100),  # anything
    st.text(alphabet=CONTROL | SPACES, max_size=40),  # nothing visible
    st.text(alphabet=MIXED, max_size=80),
    st.builds(lambda unit: (unit * 10_000)[:10_000], st.text(alphabet=MIXED, min_size=1, max_size=8)),  # 10,000 chars
)


@pytest.fixture(scope="module")
def translators(toy_tokenizer):
    """Random tiny models of both kinds over the toy tokenizer."""
    out = {}
    for name in ("transformer_tiny", "gpt_tiny"):
        torch.manual_seed(0)
        out[name] = Translator(build_model(compose(f"model={name}").model, len(toy_tokenizer)), toy_tokenizer)
    return out


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(kind=st.sampled_from(["transformer_tiny", "gpt_tiny"]),
       search=st.sampled_from([{"temperature": 0.0}, {"beam": 2}]),
       lines=st.lists(LINE, min_size=1, max_size=4))
@example(kind="gpt_tiny", search={"beam": 2}, lines=["", " \t\u3000", "\x00\x1b[31m", "A dog. " * 1500, "x" * 10_000])
def test_any_line_gives_exactly_one_bounded_single_line_output(translators, kind, search, lines):
    translator = translators[kind]
    results = translator.translate_full(lines, SearchConfig(max_len_a=0.0, max_len_b=MAX_B, **search))
    assert len(results) == len(lines)
    for line, parts, result in zip(lines, translator.split(lines), results):
        assert result.source == line
        assert result.text == clean(result.text)  # one line: no newline, no control character, no stray space
        if not clean(line):
            assert result.text == "" and result.hypotheses == []
        else:
            assert len(result.hypotheses) == 1 and len(parts) >= 1
            assert len(result.hypotheses[0].tokens) <= MAX_B * len(parts)  # the output length is bounded


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=200) | LINE)
@example("a\u2581b \u2581")  # SentencePiece's own space sign: clean() makes it a space
@example("<sep> <unk> <s> </s> <pad>")
@example("👩\u200d👩\u200d👧 e\u0301\u0301\u0301 שָׁלוֹם \U0001F1EB\U0001F1F7")
def test_the_tokenizer_gives_back_any_cleaned_text(toy_tokenizer, text):
    cleaned = clean(text)
    assert toy_tokenizer.decode(toy_tokenizer.encode([cleaned]))[0] == cleaned
