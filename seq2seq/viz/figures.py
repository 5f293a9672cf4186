"""Attention figures (PNG, matplotlib's Agg canvas: no display needed) from `viz.maps.AttentionMaps`.

For one translated sentence: the cross-attention of every decoder layer, heads averaged (§3.2.3
"encoder-decoder attention"); a grid of all heads of one layer (§3.2.2); the encoder and the decoder
self-attention of that layer; and, on request, the spotlight of one target piece, a bar per source piece.
For the decoder-only model the same figures show the blocks of its one attention matrix (see maps.py):
target → source plays the part of cross-attention, so the two architectures compare picture to picture.

Axes are labelled with the actual pieces. Cross-attention rows are the pieces *produced* (row i is the
query that generated piece i); self-attention axes are the positions' inputs (the decoder's start with
<bos> or <sep>). Cells keep a fixed size in inches, so a figure grows with the sentence; each colour
scale runs from 0 to the figure's largest weight, shown by its colour bar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure

from seq2seq.data.text import SPM_SPACE
from seq2seq.data.tokenizer import BOS

DPI = 100
CMAP = "viridis"
WORD_START = SPM_SPACE  # SentencePiece's "▁": a piece that starts a word


@dataclass
class Labels:
    """The pieces along the axes of one sentence's maps, and which model drew them."""

    source: list[str]  # source pieces, then the end marker (<eos>, or <sep> for the decoder-only model)
    target: list[str]  # produced pieces, then <eos>
    decoder_inputs: list[str]  # the decoder's start (<bos> or <sep>), then the produced pieces
    kind: str  # "transformer" or "gpt"


def labels(maps, tokenizer, kind: str) -> Labels:
    """Axis labels of `maps` (an AttentionMaps) from its ids."""
    start = tokenizer.id_to_piece([BOS])[0] if kind == "transformer" else tokenizer.id_to_piece(maps.source[-1:])[0]
    target = tokenizer.id_to_piece(maps.target)
    return Labels(tokenizer.id_to_piece(maps.source), target, [start] + target[:-1], kind)


# ---------------------------------------------------------------------------------------------- sizes

def cell_inches(n: int) -> float:
    """Side of one cell: 0.4 in for short sentences, shrinking to 0.2 in for long ones."""
    return min(0.4, max(0.2, 12.0 / max(n, 1)))


def font_points(cell: float) -> float:
    return round(min(11.0, max(6.0, cell * 26)), 1)


def label_inches(pieces: list[str], points: float) -> float:
    """Room the longest label needs (an average glyph is ~0.62 em wide)."""
    return max(len(p) for p in pieces) * points * 0.62 / 72 + 0.1


def title_inches(title: str, points: float) -> float:
    return max(map(len, title.split("\n"))) * points * 0.55 / 72 + 0.3


LINE = 0.25  # inches per line of title
AXIS_LABEL = 0.35  # inches for an axis label beside its tick labels
COLOUR_BAR = 1.3  # inches right of the panels: gap, bar, its ticks and label


@dataclass
class Grid:
    """Where the panels of a figure go, in inches from the bottom left. Every cell is `cell` inches square,
    so a figure grows with the sentence and its labels never overlap."""

    nrows: int
    ncols: int
    cell: float
    points: float  # tick label size
    left: float  # of the first panel column
    top: float  # of the first panel row
    hgap: float
    vgap: float
    panel: tuple[float, float]  # (width, height) of one panel
    size: tuple[float, float]  # the figure's (width, height)

    def rect(self, k: int) -> list[float]:
        """Figure fractions [x, y, width, height] of panel k (row-major)."""
        r, c = divmod(k, self.ncols)
        (w, h), (fw, fh) = self.panel, self.size
        x, y = self.left + c * (w + self.hgap), self.top - (r + 1) * h - r * self.vgap
        return [x / fw, y / fh, w / fw, h / fh]

    def colour_bar(self) -> list[float]:
        """Beside the panels, top-aligned, at most 6 inches tall."""
        (w, h), (fw, fh) = self.panel, self.size
        height = min(max(self.nrows * h + (self.nrows - 1) * self.vgap, 1.0), 6.0)
        x = self.left + self.ncols * w + (self.ncols - 1) * self.hgap + 0.2
        return [x / fw, (self.top - height) / fh, 0.18 / fw, height / fh]


def grid(rows: list[str], cols: list[str], title: str, panels: int = 1) -> Grid:
    """The layout of `panels` (rows × cols) maps, four to a row, under a title of one or more lines."""
    ncols, nrows = min(panels, 4), math.ceil(panels / 4)
    cell = cell_inches(max(len(rows), len(cols))) * (1.0 if panels == 1 else 0.75)
    points = font_points(cell)
    below = label_inches(cols, points) + AXIS_LABEL  # tick labels and axis label under a panel
    left = label_inches(rows, points) + AXIS_LABEL
    head_titles = 0.0 if panels == 1 else LINE  # "head k" over each panel
    hgap = 0.15
    vgap = head_titles + 0.1 + (below if panels % ncols else 0.0)  # a short last row: labels under the one above
    above = LINE * (title.count("\n") + 1) + 0.15 + head_titles
    panel = (len(cols) * cell, len(rows) * cell)
    width = left + ncols * panel[0] + (ncols - 1) * hgap + COLOUR_BAR
    height = above + nrows * panel[1] + (nrows - 1) * vgap + below
    size = (round(max(width, title_inches(title, points + 3), 4.0), 2), round(max(height, 3.0), 2))
    # Centre the panels in a figure that minimum sizes or a long title made larger.
    left += (size[0] - width) / 2
    top = size[1] - above - (size[1] - height) / 2
    return Grid(nrows, ncols, cell, points, left, top, hgap, vgap, panel, size)


def png_size(size: tuple[float, float]) -> tuple[int, int]:
    """Pixels (width, height) of a figure of `size` inches saved at DPI."""
    return round(size[0] * DPI), round(size[1] * DPI)


# ---------------------------------------------------------------------------------------------- drawing

def causal(weights: torch.Tensor) -> bool:
    """A square map whose cells above the diagonal are all exactly 0: a causal mask hid them (§3.2.3;
    a softmax over visible keys is never exactly 0 everywhere there)."""
    return weights.size(-1) == weights.size(-2) > 1 and bool((weights.triu(diagonal=1) == 0).all())


def _scale(weights: torch.Tensor) -> float:
    """The top of a colour scale: the largest weight (1 for an all-zero map, so the scale stays valid)."""
    top = float(weights.max()) if weights.numel() else 0.0
    return top if top > 0 else 1.0


def attention_figure(weights: torch.Tensor, rows: list[str], cols: list[str], title: str, path: Path,
                     xlabel: str, ylabel: str, panel_titles: list[str] | None = None) -> Path:
    """Maps (rows × cols), or a stack of them (panels, rows × cols), on one colour scale from 0 to the
    largest weight, with labelled axes and a colour bar. Causal maps leave their masked cells blank, so
    that "may not look" differs from "looks little"."""
    stack = weights if weights.dim() == 3 else weights[None]
    if tuple(stack.shape[1:]) != (len(rows), len(cols)):
        raise ValueError(f"weights of shape {tuple(weights.shape)} for {len(rows)} × {len(cols)} labels")
    hide = causal(stack[0])
    if hide:
        title += "; blank: masked (future)"
    layout = grid(rows, cols, title, len(stack))
    fig = Figure(figsize=layout.size, dpi=DPI)
    cmap = matplotlib.colormaps[CMAP].with_extremes(bad="white")
    vmax, points = _scale(stack), layout.points
    future = np.triu(np.ones((len(rows), len(cols)), dtype=bool), 1) & hide
    for k, w in enumerate(stack):
        ax = fig.add_axes(layout.rect(k))
        image = ax.imshow(np.ma.masked_array(w.numpy(), mask=future), cmap=cmap, vmin=0.0, vmax=vmax,
                          aspect="auto", interpolation="nearest")
        first_column, lowest = k % layout.ncols == 0, k + layout.ncols >= len(stack)
        ax.set_xticks(range(len(cols)), cols if lowest else [], rotation=90, fontsize=points)
        ax.set_yticks(range(len(rows)), rows if first_column else [], fontsize=points)
        ax.tick_params(length=2, pad=1)
        if lowest:
            ax.set_xlabel(xlabel, fontsize=points + 1)
        if first_column:
            ax.set_ylabel(ylabel, fontsize=points + 1)
        if panel_titles:
            ax.set_title(panel_titles[k], fontsize=points + 1, pad=3)
    fig.suptitle(title, fontsize=points + 3, y=1 - 0.1 / layout.size[1], va="top")
    fig.colorbar(image, cax=fig.add_axes(layout.colour_bar()), label="attention weight")
    fig.savefig(path, dpi=DPI)
    return path


def spotlight_size(cols: list[str], title: str = "") -> tuple[float, float]:
    """(width, height) in inches of a bar chart over `cols`."""
    cell = cell_inches(len(cols))
    points = font_points(cell)
    width = max(len(cols) * cell + 1.2, title_inches(title, points + 2), 4.0)
    return round(width, 2), round(label_inches(cols, points) + 3.0, 2)


def spotlight_figure(weights: torch.Tensor, cols: list[str], title: str, path: Path) -> Path:
    """Bars: how much one target piece attends to each source piece; the strongest bar highlighted."""
    points = font_points(cell_inches(len(cols)))
    fig = Figure(figsize=spotlight_size(cols, title), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    values = weights.tolist()
    best = max(range(len(values)), key=values.__getitem__)
    colors = ["#d95f02" if i == best else "#7570b3" for i in range(len(values))]
    ax.bar(range(len(values)), values, color=colors)
    ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=points)
    ax.set_xlim(-0.6, len(cols) - 0.4)
    ax.set_ylim(0, max(max(values), 1e-9) * 1.15)
    ax.set_ylabel("attention weight", fontsize=points + 1)
    ax.set_xlabel("source piece", fontsize=points + 1)
    ax.set_title(title, fontsize=points + 2)
    ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, dpi=DPI)
    return path


# ---------------------------------------------------------------------------------------------- one sentence

def find_target(pieces: list[str], word: str) -> list[int] | None:
    """Indices of the target piece(s) that spell `word`: a piece (with or without its "▁"), else a whole
    word of several pieces; exact case first, then any case. None when absent."""
    words, current = [], []
    for i, piece in enumerate(pieces):
        if piece.startswith(WORD_START) and current:
            words.append(current)
            current = []
        current.append(i)
    if current:
        words.append(current)
    spell = lambda idx: "".join(pieces[i] for i in idx).removeprefix(WORD_START)
    for same in (str.__eq__, lambda a, b: a.casefold() == b.casefold()):
        for i, piece in enumerate(pieces):
            if same(piece, word) or same(piece.removeprefix(WORD_START), word):
                return [i]
        for idx in words:
            if same(spell(idx), word):
                return idx
    return None


# Titles and axis names per model kind: the decoder-only model's maps are blocks of one attention matrix.
NAMES = {
    "transformer": {"cross": "cross-attention (decoder → encoder output)", "encoder": "encoder self-attention",
                    "decoder": "decoder self-attention", "layer": "decoder layer", "encoder_layer": "encoder layer",
                    "note": "", "source": "source piece", "inputs": "decoder input"},
    "gpt": {"cross": "decoder-only: target → source attention", "encoder": "decoder-only: source → source attention",
            "decoder": "decoder-only: target → target attention", "layer": "layer", "encoder_layer": "layer",
            "note": "\nthe rest of each row is on the target side", "source": "source piece (then <sep>)",
            "inputs": "input (<sep>, then target pieces)"},
}


def write_figures(maps, names: Labels, out_dir: Path, layer: int = -1, target_token: str | None = None) -> list[Path]:
    """Write the figures of one sentence under `out_dir`; returns their paths in the order written.

    `layer` (counted from 0, negative from the end) picks the layer of the head grid, the self-attention
    maps and the spotlight; cross-attention is drawn for every layer. `target_token` adds the spotlight
    of that target piece (several pieces of one word: their rows averaged); ValueError if it is absent.
    """
    text = NAMES[names.kind]
    layers = maps.cross.size(0)
    index, enc = range(layers)[layer], range(maps.encoder.size(0))[layer]
    rows = None
    if target_token is not None:
        rows = find_target(names.target[:-1], target_token)
        if rows is None:
            raise ValueError(f"{target_token!r} is not among the target pieces: {' '.join(names.target[:-1])}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [attention_figure(maps.cross[k].mean(0), names.target, names.source,
                              f"{text['cross']}\n{text['layer']} {k} of {layers}, heads averaged{text['note']}",
                              out_dir / f"cross_layer{k}.png", text["source"], "target piece produced")
             for k in range(layers)]
    heads = maps.cross.size(1)
    paths.append(attention_figure(maps.cross[index], names.target, names.source,
                                  f"{text['cross']}\n{text['layer']} {index}: each of its {heads} heads",
                                  out_dir / f"cross_heads_layer{index}.png", text["source"], "target piece produced",
                                  [f"head {h}" for h in range(heads)]))
    paths.append(attention_figure(maps.encoder[enc].mean(0), names.source, names.source,
                                  f"{text['encoder']}\n{text['encoder_layer']} {enc}, heads averaged",
                                  out_dir / f"encoder_layer{enc}.png", "key (source piece)", "query (source piece)"))
    paths.append(attention_figure(maps.decoder[index].mean(0), names.decoder_inputs, names.decoder_inputs,
                                  f"{text['decoder']}\n{text['layer']} {index}, heads averaged",
                                  out_dir / f"decoder_layer{index}.png", f"key ({text['inputs']})",
                                  f"query ({text['inputs']})"))
    if rows is not None:
        word = "".join(names.target[i] for i in rows)
        how = "" if len(rows) == 1 else f", its {len(rows)} pieces averaged"
        paths.append(spotlight_figure(maps.cross[index].mean(0)[rows].mean(0), names.source,
                                      f"where {word!r} looks in the source\n"
                                      f"{text['layer']} {index}, heads averaged{how}",
                                      out_dir / f"spotlight_{_safe(target_token)}_layer{index}.png"))
    return paths


def _safe(word: str) -> str:
    """A file-name-safe form of a word (letters and digits kept, any script)."""
    return "".join(c if c.isalnum() else "_" for c in word)[:40] or "token"
