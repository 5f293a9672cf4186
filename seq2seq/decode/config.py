"""`SearchConfig`: every search setting in one checked value, from the CLI, the Python API or the trainer."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields


class SearchConfigError(ValueError):
    """A setting out of range, in one line. Settings are written `<name>`: `str()` shows the field name,
    `for_cli()` the command-line flag."""

    def __init__(self, template: str):
        self.template = template
        super().__init__(re.sub(r"<(\w+)>", r"\1", template))

    def for_cli(self) -> str:
        return re.sub(r"<(\w+)>", lambda m: "--" + m.group(1).replace("_", "-"), self.template)


@dataclass(frozen=True)
class SearchConfig:
    """Beam search (§6.1: beam 4, α 0.6, length ≤ source + 50) unless `temperature` is set: then one
    sample per input from softmax(logits / temperature), 0 being greedy."""

    beam: int = 4
    nbest: int = 1  # hypotheses returned per input, at most `beam`
    lenpen: float = 0.6  # α of the length penalty of Wu et al. (2016)
    max_len_a: float = 1.0  # output at most a · source pieces + b pieces
    max_len_b: int = 50
    temperature: float | None = None  # None: beam search; 0: greedy; > 0: sampling
    top_k: int = 0  # sample among the k most likely pieces (0: all)
    top_p: float = 1.0  # sample among the smallest set of pieces holding probability p
    seed: int | None = None  # for reproducible sampling
    use_cache: bool = True  # keys/values of earlier steps kept (False recomputes them: slower, same result)
    constraints_ordered: bool = False  # lexical constraints must appear in the order given
    # Capitalised source words that training never saw must appear as written (seq2seq/decode/unseen.py):
    # None = whenever it can (beam search, a model that lists the words it saw), True = required, False = off.
    copy_unseen: bool | None = None

    def __post_init__(self):
        if self.beam < 1:
            raise SearchConfigError(f"<beam> must be at least 1 (got {self.beam})")
        if self.max_len_a < 0 or self.max_len_b < 0:
            raise SearchConfigError("<max_len_a> and <max_len_b> must not be negative")
        if self.temperature is None:
            if not 1 <= self.nbest <= self.beam:
                raise SearchConfigError(f"<nbest> ({self.nbest}) must be between 1 and <beam> ({self.beam})")
            return
        if self.copy_unseen is True:
            raise SearchConfigError("<copy_unseen> needs beam search: drop <temperature>")
        if self.temperature < 0:
            raise SearchConfigError(f"<temperature> must be 0 (greedy) or positive (got {self.temperature})")
        if self.nbest != 1:
            raise SearchConfigError("<nbest> needs beam search: "
                                    "sampling (<temperature>) gives one translation per line")
        if self.top_k < 0 or not 0 < self.top_p <= 1:
            raise SearchConfigError("<top_k> must be >= 0 and <top_p> in (0, 1]")

    @property
    def sampling(self) -> bool:
        """Greedy or sampling (one draw per input), rather than beam search."""
        return self.temperature is not None

    def describe(self) -> str:
        """A short name of the search, e.g. for `translate --explain`."""
        if self.temperature is None:
            return f"beam {self.beam}"
        if self.temperature == 0:
            return "greedy"
        return f"sampling at temperature {self.temperature:g}" + (
            f", top-k {self.top_k}" if self.top_k else "") + (f", top-p {self.top_p:g}" if self.top_p < 1 else "")

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}
