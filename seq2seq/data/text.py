"""Text normalisation shared by the data step and the translator's input.

`clean` is total (any `str`, never raises) and idempotent: NFC, no control or format characters,
every kind of Unicode whitespace (tab, newline, NBSP U+00A0, narrow NBSP U+202F, ...) becomes one
plain space, runs collapsed, ends stripped. So does U+2581 `▁`, SentencePiece's own sign for a space: left
in the text it would come back from the tokenizer as a space.
"""

from __future__ import annotations

import unicodedata

_DROP = ("Cc", "Cf", "Cs")  # control, format (zero-width space, BOM, soft hyphen...), lone surrogates
SPM_SPACE = "\u2581"


class _Table(dict):
    """`str.translate` table filled on demand: whitespace → space, _DROP → deleted, the rest kept."""

    def __missing__(self, code: int) -> str | None:
        ch = chr(code)
        if ch.isspace() or ch == SPM_SPACE:
            value = " "
        elif unicodedata.category(ch) in _DROP:
            value = None
        else:
            value = ch
        self[code] = value
        return value


_TABLE = _Table()


def clean(s: str) -> str:
    """Normalise one sentence: NFC, controls removed, whitespace collapsed to single spaces, stripped."""
    if not s.isprintable() or SPM_SPACE in s:  # printable = no Cc/Cf/Cs and no whitespace other than " "
        s = s.translate(_TABLE)
    return " ".join(unicodedata.normalize("NFC", s).split())
