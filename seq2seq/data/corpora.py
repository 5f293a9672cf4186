"""Find, download and verify the raw corpora, and read them.

Layout (the same in `raw_dir` and in `download_dir`):
    tatoeba/fra-eng.tsv.gz         english<TAB>french[<TAB>attribution], or tatoeba/fra-eng.zip (fra.txt)
    multi30k/<split>.<lang>.gz     one sentence a line, for the splits of MULTI30K_SPLITS × en, fr
Each file is looked for in `raw_dir` (checked against raw_dir/SHA256SUMS when that lists it), then in
`download_dir` (an earlier download), then downloaded when `download` is true.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import os
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from seq2seq.errors import DataError
from seq2seq.io import atomic_write

CORPORA = ("tatoeba", "multi30k")
MULTI30K_SPLITS = ("train", "val", "test_2016_flickr", "test_2017_flickr")
LANGS = ("en", "fr")
TATOEBA_TSV = "tatoeba/fra-eng.tsv.gz"
TATOEBA_ZIP = "tatoeba/fra-eng.zip"
TATOEBA_MEMBER = "fra.txt"

# The public Multi30k files are byte-identical to ../shared/data/multi30k (its SHA256SUMS).
MULTI30K_SHA256 = {
    "multi30k/train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "multi30k/train.fr.gz": "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c",
    "multi30k/val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "multi30k/val.fr.gz": "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9",
    "multi30k/test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "multi30k/test_2016_flickr.fr.gz": "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90",
    "multi30k/test_2017_flickr.en.gz": "76a444ee25172e72695cddb13ae4a3bda59430617be88e0bb46b60504f054074",
    "multi30k/test_2017_flickr.fr.gz": "3ba671ceb2299f3304ffafefea7a833d08632fbaf0ba18546f8a2ec2391af496",
}

USER_AGENT = "Mozilla/5.0 (compatible; seq2seq-data/0.1)"  # manythings.org refuses urllib's default
TIMEOUT_S = 60


@dataclass(frozen=True)
class Source:
    """One raw file: its name in the layout above, where it was found, and its SHA256."""

    name: str
    path: Path
    sha256: str


@dataclass
class Corpora:
    """The raw files of the corpora asked for (`tatoeba` is None when it was not asked for)."""

    tatoeba: Source | None = None
    multi30k: dict[str, Source] = field(default_factory=dict)  # "train.en" -> Source

    def multi30k_file(self, split: str, lang: str) -> Source:
        return self.multi30k[f"{split}.{lang}"]

    @property
    def sources(self) -> dict[str, Source]:
        found = [self.tatoeba] if self.tatoeba else []
        return {s.name: s for s in found + list(self.multi30k.values())}


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _read_sums(raw_dir: Path) -> dict[str, str]:
    """name -> sha256 from raw_dir/SHA256SUMS (`sha256sum` format); empty when there is none."""
    try:
        text = (raw_dir / "SHA256SUMS").read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    sums = {}
    for line in text.splitlines():
        parts = line.split(maxsplit=1)
        if len(parts) == 2:
            sums[parts[1].lstrip("*").strip()] = parts[0].lower()
    return sums


def _check_sha(path: Path, expected: str | None) -> str:
    """The file's SHA256; DataError (without the path) when it differs from `expected`."""
    digest = sha256_file(path)
    if expected is not None and digest != expected:
        raise DataError(f"sha256 {digest[:12]}… does not match the expected {expected[:12]}…")
    return digest


def _check_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as z:
            z.getinfo(TATOEBA_MEMBER)
    except (zipfile.BadZipFile, KeyError, OSError) as e:
        raise DataError(f"not a zip holding {TATOEBA_MEMBER} ({_one_line(e)})") from None


def _verified(name: str, path: Path, expected: str | None, check_zip: bool = False) -> Source:
    try:
        if check_zip:
            _check_zip(path)
        return Source(name, path, _check_sha(path, expected))
    except DataError as e:
        raise DataError(f"{path}: {e} (corrupt or a different file; replace or delete it)") from None


def _download(url: str, dest: Path, check: Callable[[Path], object], log: Callable[[str], None]) -> str | None:
    """Fetch `url` into `dest` through a temp file that `check` vets before the rename.

    Returns None on success, else a short reason why the fetch failed.
    """
    log(f"downloading {url} -> {dest}")

    def fetch(out) -> None:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)

    try:
        atomic_write(dest, fetch, check)
        return None
    except urllib.error.HTTPError as e:
        return f"{url}: HTTP {e.code} {e.reason}"
    except urllib.error.URLError as e:
        return f"{url}: {_one_line(e.reason)}"
    except (DataError, OSError, http.client.HTTPException, ValueError) as e:
        return f"{url}: {_one_line(e) or type(e).__name__}"


def _fetch(data_cfg, name: str, url: str, dest: Path, check: Callable[[Path], object], raw_dir: Path, log) -> None:
    """Download `name` to `dest` unless an earlier download is there; DataError (one line) on failure."""
    if dest.is_file():
        return
    if not data_cfg.download:
        reason = "data.download is false"
    elif failure := _download(url, dest, check, log):
        reason = f"its download failed ({failure})"
    else:
        return
    raise DataError(f"{name} is not in raw_dir {raw_dir} and {reason}; set SEQ2SEQ_RAW_DATA or "
                    f"data.raw_dir to a folder holding the corpora (see data/README.md)")


def _locate_tatoeba(data_cfg, raw_dir: Path, sums: dict[str, str], log) -> Source:
    for name in (TATOEBA_TSV, TATOEBA_ZIP):
        if (raw_dir / name).is_file():
            return _verified(name, raw_dir / name, sums.get(name), check_zip=name == TATOEBA_ZIP)
    dest = Path(data_cfg.download_dir) / TATOEBA_ZIP
    _fetch(data_cfg, TATOEBA_TSV, data_cfg.urls.tatoeba, dest, _check_zip, raw_dir, log)
    return _verified(TATOEBA_ZIP, dest, None, check_zip=True)  # a newer dump than ours: no known sum


def _locate_multi30k(data_cfg, name: str, raw_dir: Path, sums: dict[str, str], log) -> Source:
    if (raw_dir / name).is_file():
        return _verified(name, raw_dir / name, sums.get(name))
    dest = Path(data_cfg.download_dir) / name
    expected = MULTI30K_SHA256[name]
    url = f"{str(data_cfg.urls.multi30k).rstrip('/')}/{Path(name).name}"
    _fetch(data_cfg, name, url, dest, lambda tmp: _check_sha(tmp, expected), raw_dir, log)
    return _verified(name, dest, expected)


def locate(data_cfg, log: Callable[[str], None] = print) -> Corpora:
    """Find (or download) and verify the raw files of the corpora listed in `data_cfg.corpora`."""
    unknown = sorted(set(data_cfg.corpora) - set(CORPORA))
    if unknown:
        raise DataError(f"unknown corpora {unknown} in data.corpora; known: {list(CORPORA)}")
    raw_dir = Path(data_cfg.raw_dir).expanduser()
    sums = _read_sums(raw_dir)
    found = Corpora()
    if "tatoeba" in data_cfg.corpora:
        found.tatoeba = _locate_tatoeba(data_cfg, raw_dir, sums, log)
    if "multi30k" in data_cfg.corpora:
        for split in MULTI30K_SPLITS:
            for lang in LANGS:
                name = f"multi30k/{split}.{lang}.gz"
                found.multi30k[f"{split}.{lang}"] = _locate_multi30k(data_cfg, name, raw_dir, sums, log)
    return found


def _lines(path: Path) -> Iterator[str]:
    """Lines of a .gz, .zip (fra.txt) or plain UTF-8 file, split on "\\n" only (a stray "\\r" stays put)."""
    try:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as z, z.open(TATOEBA_MEMBER) as raw:
                yield from _text_lines(raw)
        elif path.suffix == ".gz":
            with gzip.open(path, "rb") as raw:
                yield from _text_lines(raw)
        else:
            with open(path, "rb") as raw:
                yield from _text_lines(raw)
    except (OSError, EOFError, UnicodeDecodeError, zipfile.BadZipFile, KeyError) as e:
        raise DataError(f"{path}: unreadable or corrupt ({_one_line(e)})") from None


def _text_lines(raw) -> Iterator[str]:
    with io.TextIOWrapper(raw, encoding="utf-8", newline="\n") as text:
        for line in text:
            yield line[:-1] if line.endswith("\n") else line


def read_tatoeba(path: str | os.PathLike) -> list[tuple[str, str]]:
    """(english, french) pairs in file order; accepts 2 columns (2019 dump) or 3 (with attribution)."""
    path = Path(path)
    pairs = []
    for number, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise DataError(f"{path}:{number}: expected english<TAB>french[<TAB>attribution]")
        pairs.append((fields[0], fields[1]))
    return pairs


def read_multi30k(en_path: str | os.PathLike, fr_path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """The aligned lines of one Multi30k split; their counts must match."""
    en, fr = list(_lines(Path(en_path))), list(_lines(Path(fr_path)))
    if len(en) != len(fr):
        raise DataError(f"{en_path} has {len(en)} lines but {fr_path} has {len(fr)}; they must align")
    return en, fr
