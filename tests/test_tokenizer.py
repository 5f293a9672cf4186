"""The joint SentencePiece model: fixed special ids, byte fallback, exact round trips of cleaned text."""

from __future__ import annotations

import pytest
import sentencepiece as spm

from seq2seq.data.text import clean
from seq2seq.data.tokenizer import BOS, EOS, PAD, SEP, SEP_PIECE, UNK, Tokenizer, train_tokenizer
from tests.conftest import toy_pairs

FRENCH = ["L’été, « il fait beau » à Bruxelles\u00a0!", "Où est-il\u202f? Il a 23 ans.", "C'est déjà l'heure…"]
CASES = [
    "Élodie a appris le français à l'école.",  # accents
    "L’homme qu'on a vu",  # ’ and '
    "« Bonjour », dit-il.",  # guillemets
    "Quoi\u00a0? Vraiment\u202f!",  # non-breaking spaces (cleaned to plain spaces)
    "Il est né en 1987 et a 36 ans : 3,14 %",  # digits
    "J'adore 🍕 et 🇫🇷",  # emoji: not in training, bytes
    "",  # the empty string
]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    text = [s for p in toy_pairs(1500) for s in p] + FRENCH * 20
    return train_tokenizer(text, tmp_path_factory.mktemp("spm") / "t.model", vocab_size=400)


@pytest.mark.parametrize("text", CASES)
def test_round_trip_gives_back_the_cleaned_text(tokenizer, text):
    cleaned = clean(text)
    ids = tokenizer.encode([cleaned])[0]
    assert UNK not in ids  # byte fallback: no character is unknown
    assert tokenizer.decode([ids])[0] == cleaned


def test_special_ids_are_fixed(tokenizer):
    sp = tokenizer.sp
    assert (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) == (PAD, UNK, BOS, EOS)
    assert sp.piece_to_id(SEP_PIECE) == SEP
    assert SEP not in tokenizer.encode(["a <sep> b"])[0]  # typed text never becomes the separator


def test_identity_normalisation_keeps_typography_and_nmt_nfkc_folds_it(tmp_path):
    text = [s for p in toy_pairs(500) for s in p] + FRENCH * 20
    nfkc = train_tokenizer(text, tmp_path / "nfkc.model", vocab_size=400, normalization="nmt_nfkc")
    identity = train_tokenizer(text, tmp_path / "identity.model", vocab_size=400)
    line = "C'est déjà l'heure…"
    assert identity.decode(identity.encode([line]))[0] == line
    assert nfkc.decode(nfkc.encode([line]))[0] == "C'est déjà l'heure..."


def test_a_model_with_other_special_ids_is_refused(tmp_path):
    spm.SentencePieceTrainer.train(sentence_iterator=iter([s for p in toy_pairs(300) for s in p]),
                                   model_prefix=str(tmp_path / "plain"), vocab_size=100, minloglevel=2)
    with pytest.raises(ValueError, match="special ids"):
        Tokenizer(tmp_path / "plain.model")
    with pytest.raises(FileNotFoundError):
        Tokenizer(tmp_path / "missing.model")
