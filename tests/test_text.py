import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seq2seq.data.text import clean


@pytest.mark.parametrize("raw, expected", [
    ("Hello world", "Hello world"),
    ("  Hello\tworld\n", "Hello world"),
    ("a\r\nb", "a b"),
    ("Salut\u00a0!", "Salut !"),            # NBSP
    ("Quoi\u202f?", "Quoi ?"),              # narrow NBSP, as in French typography
    ("a\u2028b\u3000c\x85d", "a b c d"),    # line separator, ideographic space, NEL
    ("zero\u200bwidth", "zerowidth"),       # Cf removed
    ("\ufeffBOM", "BOM"),
    ("soft\u00adhyphen", "softhyphen"),
    ("bell\x07 and\x00 nul", "bell and nul"),
    ("e\u0301te\u0301", "été"),             # NFC composes
    ("e\u200b\u0301", "é"),                 # composes once the format char between is gone
    ("lone \ud800 surrogate", "lone surrogate"),
    ("", ""),
    (" \t\n\u00a0 ", ""),
])
def test_examples(raw, expected):
    assert clean(raw) == expected


@given(st.text(alphabet=st.characters(codec=None, exclude_categories=())))
def test_properties(s):
    out = clean(s)
    assert clean(out) == out
    assert unicodedata.is_normalized("NFC", out)
    assert out == out.strip() and "  " not in out
    assert all(unicodedata.category(c) not in ("Cc", "Cf", "Cs") for c in out)
    assert all(c == " " or not c.isspace() for c in out)
    out.encode("utf-8")
