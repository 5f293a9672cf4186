"""Names the model never saw, carried through: capitalised source words that training never showed become
lexical constraints (seq2seq/decode/constraints.py), so that the translation holds them as written.

The same idea as the unknown-word copying of Luong et al. (2015, "Addressing the Rare Word Problem in
Neural Machine Translation"), with subword pieces instead of <unk>: a word absent from every training
source (in any case) is most often a name the model would otherwise cut or translate piece by piece
(`Howard` → "Comment", `Niamey` → "Niyame"). Training writes the words it saw to `source_words.txt`
in the model directory, and beam search then applies the rule unless `SearchConfig.copy_unseen` is False.
Lines with such names are searched with twice the beam: the constraint banks need the room.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

SOURCE_WORDS = "source_words.txt"
MAX_PER_SENTENCE = 8  # beyond a few names a line is more likely a list or a title than a sentence
_WORD = re.compile(r"(?<![\w'’-])[^\W\d_]+(?![\w'’-])")  # letters only, not part of a longer token


def source_words(texts: Iterable[str]) -> list[str]:
    """The distinct lower-cased words of `texts`, sorted: what `source_words.txt` holds, one a line."""
    return sorted({w.lower() for text in texts for w in _WORD.findall(text)})


def read_source_words(path: str | Path) -> frozenset[str] | None:
    """The words of a `source_words.txt`, or None when there is no such file."""
    path = Path(path)
    return frozenset(path.read_text(encoding="utf-8").split()) if path.is_file() else None


def unseen_capitalised(sentence: str, seen: frozenset[str]) -> list[str]:
    """The capitalised words of `sentence` (in order, once each, the first MAX_PER_SENTENCE) whose lower-cased
    form is not in `seen`."""
    found = [w for w in dict.fromkeys(_WORD.findall(sentence)) if w[0].isupper() and w.lower() not in seen]
    return found[:MAX_PER_SENTENCE]
