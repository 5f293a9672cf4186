"""Bradley–Terry ratings on the Elo scale: known gaps, ties, order independence, many systems."""

from __future__ import annotations

import math
import random

import pytest

from seq2seq.compare.elo import ANCHOR, elo_ratings, expected_score, sentence_games, win_matrix


def games(a, b, wins, losses, ties=0):
    return [(a, b, 1.0)] * wins + [(a, b, 0.0)] * losses + [(a, b, 0.5)] * ties


def test_75_percent_of_decisive_games_is_a_gap_of_400_log10_3():
    ratings = elo_ratings(games("A", "B", 300, 100))
    assert ratings["A"] - ratings["B"] == pytest.approx(400 * math.log10(3), abs=1.0)  # 190.8
    assert (ratings["A"] + ratings["B"]) / 2 == pytest.approx(ANCHOR)
    assert expected_score(ratings["A"], ratings["B"]) == pytest.approx(0.75, abs=1e-3)


def test_a_tie_counts_half_a_win_for_each_side():
    ratings = elo_ratings(games("A", "B", 300, 100, ties=50))  # 325 points of 450
    assert ratings["A"] - ratings["B"] == pytest.approx(400 * math.log10(325 / 125), abs=1.0)


def test_identical_systems_tie_at_equal_ratings():
    per_sentence = [random.Random(0).random() for _ in range(50)]
    ratings = elo_ratings(sentence_games({"A": per_sentence, "B": list(per_sentence)}))
    assert ratings["A"] == pytest.approx(ratings["B"], abs=1e-9)
    ratings = elo_ratings(games("A", "B", 40, 40))
    assert ratings["A"] == pytest.approx(ratings["B"], abs=1e-9)


def test_ratings_do_not_depend_on_the_order_of_games():
    played = games("A", "B", 30, 10, 5) + games("B", "C", 12, 20, 3) + games("A", "C", 25, 5)
    shuffled = list(played)
    random.Random(1).shuffle(shuffled)
    flipped = [(b, a, 1.0 - r) for a, b, r in played]  # the same games, told from the other side
    assert elo_ratings(shuffled) == elo_ratings(played)
    assert elo_ratings(flipped) == pytest.approx(elo_ratings(played), abs=1e-9)


def test_three_systems_chain_their_gaps_and_a_clean_sweep_stays_finite():
    ratings = elo_ratings(games("A", "B", 75, 25) + games("B", "C", 75, 25))
    assert ratings["A"] - ratings["B"] == pytest.approx(400 * math.log10(3), abs=1.0)
    assert ratings["B"] - ratings["C"] == pytest.approx(400 * math.log10(3), abs=1.0)
    sweep = elo_ratings(games("A", "B", 20, 0))
    assert math.isfinite(sweep["A"]) and sweep["A"] - sweep["B"] > 500


def test_sentence_chrf_decides_each_game():
    played = sentence_games({"A": [50.0, 20.0, 30.0], "B": [40.0, 20.0, 35.0]})
    assert played == [("A", "B", 1.0), ("A", "B", 0.5), ("A", "B", 0.0)]
    names, wins = win_matrix(played)
    assert names == ["A", "B"] and wins.tolist() == [[0.0, 1.5], [1.5, 0.0]]
    with pytest.raises(ValueError, match="different numbers"):
        sentence_games({"A": [1.0], "B": [1.0, 2.0]})
