"""The served models, and the one place where the server calls into the Translator (`search`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from seq2seq.decode.config import SearchConfig
from seq2seq.model.build import count_parameters
from seq2seq.serve.schemas import Row, Settings
from seq2seq.translator import Translator
from seq2seq.viz.maps import attention_maps


def search(translator, rows: list[Row], settings: Settings, batch_tokens: int | None = None):
    """Translations of `rows` (in order) with `settings`; each row samples from a generator of its own seed,
    and keeps its own target prefix and constraints."""
    sampling = settings.temperature is not None
    config = SearchConfig(beam=settings.beam, nbest=settings.nbest, temperature=settings.temperature,
                          top_k=settings.top_k, top_p=settings.top_p, copy_unseen=settings.copy_unseen)
    prefixes = [row.prefix for row in rows] if any(row.prefix for row in rows) else None
    constraints = [list(row.constraints) for row in rows] if any(row.constraints for row in rows) else None
    return translator.translate_full([row.text for row in rows], config, alignments=settings.alignments,
                                     batch_size=max(1, len(rows)), batch_tokens=batch_tokens,
                                     seeds=[row.seed for row in rows] if sampling else None,
                                     target_prefix=prefixes, constraints=constraints)


@dataclass
class ServedModel:
    """A model directory loaded under a name; `info` is what /models shows of it."""

    name: str
    directory: Path
    translator: object
    info: dict = field(default_factory=dict)

    @classmethod
    def load(cls, name: str, directory, device: str = "cpu", precision: str = "fp32") -> ServedModel:
        directory = Path(directory)
        translator = Translator.load(directory, device, precision=precision)
        model = translator.model
        layers = len(model.decoder.layers)
        info = {"name": name, "kind": model.kind, "parameters": count_parameters(model), "decoder_layers": layers,
                "heads": attention_heads(model), "precision": precision, "test": test_scores(directory)}
        return cls(name, directory, translator, info)


def attention_heads(model) -> int:
    layer = model.decoder.layers[0]
    attn = layer.cross_attn if model.kind == "transformer" else layer.self_attn
    return attn.heads


def test_scores(model_dir: Path) -> dict | None:
    """The `test` entry of the run's results.json (beside model/), or None where there is none."""
    try:
        results = json.loads((model_dir.parent / "results.json").read_text())
    except (OSError, ValueError):
        return None
    test = results.get("test") if isinstance(results, dict) else None
    return test if isinstance(test, dict) else None


def parse_model_specs(specs: list[str]) -> dict[str, Path]:
    """`[NAME=]DIR` → {name: directory}; a directory without a name is `default`. ValueError names a clash."""
    out: dict[str, Path] = {}
    for spec in specs:
        name, sep, directory = spec.partition("=")
        if not sep:
            name, directory = "default", spec
        if not name or not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
            raise ValueError(f"--model {spec}: a name is letters, digits, '-', '_' and '.'")
        if name in out:
            raise ValueError(f"--model {spec}: the name {name!r} is given twice")
        out[name] = Path(directory)
    return out


def attention(served: ServedModel, text: str, beam: int, layer: int) -> dict:
    """The beam translation of one sentence and its cross-attention (target → source for the decoder-only
    model): every layer with heads averaged, and `layer`'s heads one by one; rows are target pieces then
    <eos>, columns source pieces then the end marker."""
    translator = served.translator
    source = translator.split([text])[0]
    layers = served.info["decoder_layers"]
    if not source:
        raise ValueError("text is empty: nothing to translate")
    if len(source) > 1:
        raise ValueError(f"text is longer than the model's {translator.max_source_pieces} source pieces")
    if not -layers <= layer < layers:
        raise ValueError(f"layer {layer}: the model has {layers} layers (0 to {layers - 1}, or -1 to -{layers})")
    translation = search(translator, [Row(text)], Settings(beam=beam))[0]
    maps = attention_maps(translator.model, source, [translation.hypotheses[0].tokens])[0]
    cross = maps.cross  # (layers, heads, T, S)
    tokenizer = translator.tokenizer
    layer = layer % cross.size(0)
    return {"model": served.name, "text": translation.text, "source_pieces": tokenizer.id_to_piece(maps.source),
            "target_pieces": tokenizer.id_to_piece(maps.target), "layers": _rounded(cross.mean(dim=1)),
            "head_layer": layer, "heads": _rounded(cross[layer])}


def _rounded(weights) -> list:
    return weights.mul(1e5).round().div(1e5).tolist()
