"""Finding, downloading, verifying and reading the raw corpora, on small files written here."""

import functools
import gzip
import hashlib
import http.server
import socket
import threading
import zipfile
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from seq2seq.data import corpora
from seq2seq.data.corpora import DataError, locate, read_multi30k, read_tatoeba
from seq2seq.data.prepare import prepare, read_split

CONF = Path(__file__).resolve().parents[1] / "conf" / "data" / "default.yaml"
TATOEBA = [("Go.", "Va !"), ("Hi.", "Salut !"), ("Run!", "Cours !"), ("Run!", "Courez !"), ("Who?", "Qui ?"),
           ("Wow!", "Ça alors !"), ("Fire!", "Au feu !"), ("Help!", "À l'aide !"), ("Jump.", "Saute."),
           ("Stop!", "Arrête !"), ("Wait!", "Attends !"), ("Hello!", "Bonjour !")]
ATTRIBUTION = "CC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM) & #1158250 (Wittydev)"


def data_cfg(tmp_path: Path, **overrides):
    cfg = OmegaConf.load(CONF)
    cfg.raw_dir = str(tmp_path / "raw")
    cfg.out_dir = str(tmp_path / "out")
    cfg.split.valid_sentences, cfg.split.test_sentences = 2, 3
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value)
    return cfg


def write_gz(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8", newline="\n") as f:
        f.writelines(f"{line}\n" for line in lines)
    return path


def write_multi30k(root: Path) -> dict[str, str]:
    """Tiny Multi30k files under root/multi30k; returns {name: sha256}."""
    sums = {}
    for split in corpora.MULTI30K_SPLITS:
        for lang, word in (("en", "A dog runs"), ("fr", "Un chien court")):
            path = write_gz(root / "multi30k" / f"{split}.{lang}.gz", [f"{word} {split} {i} ." for i in range(4)])
            sums[f"multi30k/{split}.{lang}.gz"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return sums


def write_zip(path: Path, pairs=TATOEBA) -> Path:
    """A fra-eng.zip as manythings.org serves it now: fra.txt with a third (attribution) column."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("_about.txt", "about")
        z.writestr(corpora.TATOEBA_MEMBER, "".join(f"{en}\t{fr}\t{ATTRIBUTION}\n" for en, fr in pairs))
    return path


def test_read_tatoeba_both_formats(tmp_path):
    two = write_gz(tmp_path / "fra-eng.tsv.gz", [f"{en}\t{fr}" for en, fr in TATOEBA] + [""])
    three = write_zip(tmp_path / "fra-eng.zip")
    assert read_tatoeba(two) == TATOEBA
    assert read_tatoeba(three) == TATOEBA


def test_read_tatoeba_rejects_a_line_without_tab(tmp_path):
    path = write_gz(tmp_path / "fra-eng.tsv.gz", ["Go.\tVa !", "no tab here"])
    with pytest.raises(DataError, match=r"fra-eng.tsv.gz:2"):
        read_tatoeba(path)


def test_lines_split_on_newline_only(tmp_path):
    en = write_gz(tmp_path / "x.en.gz", ["one\rstill one", "two\u2028still two"])
    fr = write_gz(tmp_path / "x.fr.gz", ["un", "deux"])
    assert read_multi30k(en, fr) == (["one\rstill one", "two\u2028still two"], ["un", "deux"])


def test_multi30k_unequal_line_counts(tmp_path):
    en = write_gz(tmp_path / "x.en.gz", ["a", "b"])
    fr = write_gz(tmp_path / "x.fr.gz", ["a"])
    with pytest.raises(DataError, match="must align"):
        read_multi30k(en, fr)


def test_corrupt_gz_names_the_file(tmp_path):
    good = write_gz(tmp_path / "x.en.gz", ["a"] * 1000)
    bad = tmp_path / "x.fr.gz"
    bad.write_bytes(good.read_bytes()[:-20])  # truncated
    with pytest.raises(DataError, match=r"x\.fr\.gz"):
        read_multi30k(good, bad)
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=r"x\.fr\.gz.*corrupt"):
        read_multi30k(good, bad)


def test_locate_in_raw_dir_checks_sha256sums(tmp_path):
    raw = tmp_path / "raw"
    sums = write_multi30k(raw)
    tsv = write_gz(raw / corpora.TATOEBA_TSV, [f"{en}\t{fr}" for en, fr in TATOEBA])
    sums[corpora.TATOEBA_TSV] = hashlib.sha256(tsv.read_bytes()).hexdigest()
    (raw / "SHA256SUMS").write_text("".join(f"{h}  {name}\n" for name, h in sums.items()))
    found = locate(data_cfg(tmp_path, download=False), log=lambda _: None)
    assert found.tatoeba.path == tsv
    assert {name: s.sha256 for name, s in found.sources.items()} == sums

    write_gz(raw / "multi30k" / "val.fr.gz", ["tampered"])
    with pytest.raises(DataError, match=r"val\.fr\.gz: sha256 .* does not match"):
        locate(data_cfg(tmp_path, download=False), log=lambda _: None)


def test_locate_only_the_corpora_asked_for(tmp_path):
    write_multi30k(tmp_path / "raw")
    found = locate(data_cfg(tmp_path, download=False, corpora=["multi30k"]), log=lambda _: None)
    assert found.tatoeba is None and len(found.multi30k) == 8
    with pytest.raises(DataError, match="unknown corpora"):
        locate(data_cfg(tmp_path, corpora=["europarl"]))


def _assert_one_line_pointing_at_raw_dir(err: DataError, tmp_path: Path):
    message = str(err)
    assert "\n" not in message
    assert str(tmp_path / "raw") in message and "SEQ2SEQ_RAW_DATA" in message and "data.raw_dir" in message


def test_missing_data_without_download(tmp_path):
    with pytest.raises(DataError) as err:
        locate(data_cfg(tmp_path, download=False), log=lambda _: None)
    _assert_one_line_pointing_at_raw_dir(err.value, tmp_path)
    assert "data.download is false" in str(err.value)


def test_missing_data_download_unreachable(tmp_path, monkeypatch):
    _no_proxy(monkeypatch)
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = data_cfg(tmp_path, download_dir=str(tmp_path / "dl"), **{
        "urls.tatoeba": f"http://127.0.0.1:{port}/fra-eng.zip", "urls.multi30k": f"http://127.0.0.1:{port}"})
    with pytest.raises(DataError) as err:
        locate(cfg, log=lambda _: None)
    _assert_one_line_pointing_at_raw_dir(err.value, tmp_path)
    assert "download failed" in str(err.value)
    assert not any((tmp_path / "dl").rglob("*.*"))  # no partial file left behind


def _no_proxy(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """An HTTP server on 127.0.0.1 serving tmp_path/www: a 3-column fra-eng.zip and tiny Multi30k files."""
    _no_proxy(monkeypatch)
    www = tmp_path / "www"
    write_zip(www / "anki" / "fra-eng.zip")
    sums = write_multi30k(www / "m30k")
    monkeypatch.setattr(corpora, "MULTI30K_SHA256", sums)
    handler = functools.partial(_QuietHandler, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield {"urls.tatoeba": f"{base}/anki/fra-eng.zip", "urls.multi30k": f"{base}/m30k/multi30k", "www": www}
    httpd.shutdown()
    httpd.server_close()


def test_download(tmp_path, server):
    www = server.pop("www")
    cfg = data_cfg(tmp_path, download_dir=str(tmp_path / "dl"), **server)
    logs = []
    found = locate(cfg, log=logs.append)
    assert found.tatoeba.path == tmp_path / "dl" / "tatoeba" / "fra-eng.zip"
    assert found.tatoeba.sha256 == hashlib.sha256((www / "anki" / "fra-eng.zip").read_bytes()).hexdigest()
    assert found.multi30k_file("val", "fr").path == tmp_path / "dl" / "multi30k" / "val.fr.gz"
    assert sum("downloading" in line for line in logs) == 9

    logs.clear()  # a second look reuses the downloads
    assert locate(cfg, log=logs.append) == found and logs == []

    prepare(cfg, log=lambda _: None)
    train, valid, test = (read_split(cfg.out_dir, f"tatoeba/{s}", "en", "fr")[0] for s in ("train", "valid", "test"))
    assert (len(valid), len(test)) == (2, 3)
    assert set(train) | set(valid) | set(test) == {en for en, _ in TATOEBA}
    src, tgt = read_split(cfg.out_dir, "multi30k/test_2017_flickr", "fr", "en")
    assert (src[0], tgt[0]) == ("Un chien court test_2017_flickr 0 .", "A dog runs test_2017_flickr 0 .")


def test_download_checksum_mismatch(tmp_path, server, monkeypatch):
    server.pop("www")
    monkeypatch.setitem(corpora.MULTI30K_SHA256, "multi30k/train.fr.gz", "0" * 64)
    cfg = data_cfg(tmp_path, download_dir=str(tmp_path / "dl"), **server)
    with pytest.raises(DataError, match=r"multi30k/train\.fr\.gz .*download failed .*sha256 .* does not match"):
        locate(cfg, log=lambda _: None)
    assert not (tmp_path / "dl" / "multi30k" / "train.fr.gz").exists()
    assert not list((tmp_path / "dl" / "multi30k").glob(".*"))  # nor the temp file


def test_download_not_a_zip_or_missing(tmp_path, server):
    www = server.pop("www")
    (www / "anki" / "fra-eng.zip").write_text("<html>rate limited</html>")
    cfg = data_cfg(tmp_path, download_dir=str(tmp_path / "dl"), **server)
    with pytest.raises(DataError, match="download failed .*not a zip"):
        locate(cfg, log=lambda _: None)
    (www / "anki" / "fra-eng.zip").unlink()
    with pytest.raises(DataError, match="download failed .*HTTP 404"):
        locate(cfg, log=lambda _: None)
