"""A pairwise tournament between any number of systems, rated on the Elo scale by Bradley–Terry.

Every test sentence is a game between every pair of systems: the higher sentence-level chrF wins,
equal scores tie (half a win each). Bradley–Terry models P(i beats j) = γ_i / (γ_i + γ_j); writing
γ = 10^(R / 400) gives the Elo expected score 1 / (1 + 10^((R_j − R_i) / 400)). The ratings are the
maximum-likelihood fit to all games at once, not Elo's sequential updates, so they depend only on the
win counts and never on the order of the games (the way Chatbot Arena rates chat models).

The MLE exists only when no group of systems wins every game against the rest; a tiny virtual tie
between every pair (`prior`, in games) keeps the ratings finite there and moves them by less than 0.1
Elo once the systems have played a few dozen games.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence

import numpy as np

SCALE = 400.0  # Elo points per factor of 10 in the odds
ANCHOR = 1000.0  # the mean rating


def sentence_games(scores: dict[str, Sequence[float]]) -> list[tuple[str, str, float]]:
    """Per-sentence scores of each system -> games (a, b, score of a: 1 win, ½ tie, 0 loss)."""
    lengths = {len(s) for s in scores.values()}
    if len(lengths) > 1:
        raise ValueError(f"systems scored different numbers of sentences: {sorted(lengths)}")
    games = []
    for a, b in itertools.combinations(scores, 2):
        for x, y in zip(scores[a], scores[b]):
            games.append((a, b, 1.0 if x > y else 0.5 if x == y else 0.0))
    return games


def win_matrix(games: Iterable[tuple[str, str, float]],
               names: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """(names, W) with W[i, j] = points of i against j (wins + ½ ties)."""
    games = list(games)
    names = list(names) if names is not None else sorted({g[0] for g in games} | {g[1] for g in games})
    index = {n: i for i, n in enumerate(names)}
    wins = np.zeros((len(names), len(names)))
    for a, b, result in games:
        wins[index[a], index[b]] += result
        wins[index[b], index[a]] += 1.0 - result
    return names, wins


def bradley_terry(wins: np.ndarray, prior: float = 0.01, tol: float = 1e-12, max_iter: int = 100_000) -> np.ndarray:
    """Log10 strengths (mean 0) maximising Σ W_ij log(γ_i / (γ_i + γ_j)), by Hunter's (2004) MM updates
    γ_i ← W_i / Σ_j n_ij / (γ_i + γ_j). `prior` games of virtual ties are added between every pair."""
    n = len(wins)
    wins = wins + prior / 2 * (1 - np.eye(n))
    games = wins + wins.T
    log_gamma = np.zeros(n)
    for _ in range(max_iter):
        gamma = 10.0**log_gamma
        denom = (games / (gamma[:, None] + gamma[None, :])).sum(1)
        new = np.log10(wins.sum(1) / denom)
        new -= new.mean()
        if np.abs(new - log_gamma).max() < tol:
            return new
        log_gamma = new
    return log_gamma


def elo_ratings(games: Iterable[tuple[str, str, float]], names: Sequence[str] | None = None,
                prior: float = 0.01) -> dict[str, float]:
    """Ratings on the Elo scale (mean ANCHOR) from the Bradley–Terry fit to all games."""
    names, wins = win_matrix(games, names)
    return {name: ANCHOR + SCALE * s for name, s in zip(names, bradley_terry(wins, prior))}


def expected_score(r_a: float, r_b: float) -> float:
    """Elo's expected score of A against B."""
    return 1.0 / (1.0 + math.pow(10.0, (r_b - r_a) / SCALE))


def rating_intervals(scores: dict[str, Sequence[float]], samples: int = 200, seed: int = 12345,
                     prior: float = 0.01) -> dict[str, tuple[float, float]]:
    """95% intervals of the ratings: the test sentences resampled with replacement (every system keeps its
    score on each drawn sentence), the Bradley–Terry fit redone on each resample's games."""
    names = list(scores)
    n = len(scores[names[0]])
    pairs = list(itertools.combinations(range(len(names)), 2))
    points = np.array([[1.0 if x > y else 0.5 if x == y else 0.0 for x, y in zip(scores[names[i]], scores[names[j]])]
                       for i, j in pairs]).reshape(len(pairs), n)  # (pairs, sentences): points of the first
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(samples):
        weight = np.bincount(rng.integers(0, n, n), minlength=n)  # how often each sentence was drawn
        won = points @ weight
        wins = np.zeros((len(names), len(names)))
        for (i, j), w in zip(pairs, won):
            wins[i, j], wins[j, i] = w, weight.sum() - w
        draws.append(ANCHOR + SCALE * bradley_terry(wins, prior))
    lo, hi = np.percentile(np.array(draws), [2.5, 97.5], axis=0)
    return {name: (float(a), float(b)) for name, a, b in zip(names, lo, hi)}
