"""Order-k Markov baseline against a naive dictionary oracle and a known entropy rate."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from genodiff.analysis.markov import MarkovModel, markov_baseline
from genodiff.data.genome.vocab import A_ID, N_ID

BASES = "ACGT"


def naive_nll(train: list[str], test: str, order: int, alpha: float) -> tuple[float, int]:
    """Oracle: dictionary counts of every order, longest valid context (runs broken by N)."""
    counts = [Counter() for _ in range(order + 1)]
    for seq in train:
        for i, base in enumerate(seq):
            for j in range(order + 1):
                ctx = seq[i - j : i] if i >= j else None
                if ctx is not None and base in BASES and all(c in BASES for c in ctx):
                    counts[j][(ctx, base)] += 1
    total, scored = 0.0, 0
    for i, base in enumerate(test):
        if base not in BASES:
            continue
        j = 0
        while j < order and i - j - 1 >= 0 and test[i - j - 1] in BASES:
            j += 1
        ctx = test[i - j : i]
        num = counts[j][(ctx, base)] + alpha
        den = sum(counts[j][(ctx, b)] for b in BASES) + 4 * alpha
        total -= math.log(num / den)
        scored += 1
    return total, scored


def encode(seq: str) -> np.ndarray:
    table = {b: A_ID + i for i, b in enumerate(BASES)}
    return np.array([table.get(c, N_ID) for c in seq], np.int64)


@pytest.mark.parametrize("order", [0, 1, 2, 3])
@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_nll_matches_naive_oracle(order, alpha):
    rng = np.random.default_rng(order)
    alphabet = np.array(list("ACGTN"))
    train = ["".join(rng.choice(alphabet, size=n, p=[0.28, 0.22, 0.22, 0.24, 0.04])) for n in (200, 57, 3)]
    test = "".join(rng.choice(alphabet, size=150, p=[0.25, 0.25, 0.2, 0.2, 0.1]))
    model = MarkovModel.fit([encode(s) for s in train], order, alpha)
    got_total, got_scored = model.nll(encode(test))
    want_total, want_scored = naive_nll(train, test, order, alpha)
    assert got_scored == want_scored == sum(c in BASES for c in test)
    assert got_total == pytest.approx(want_total, rel=1e-12)


def test_fitted_chain_reaches_true_entropy_rate():
    rng = np.random.default_rng(0)
    transition = rng.dirichlet(np.full(4, 0.5), size=16)  # order-2 chain
    seq = [0, 1]
    for _ in range(200_000):
        seq.append(rng.choice(4, p=transition[seq[-2] * 4 + seq[-1]]))
    tokens = np.array(seq) + A_ID
    # stationary distribution of the context pair, then the entropy rate in bits
    pairs = np.bincount(np.array(seq[:-1]) * 4 + np.array(seq[1:]), minlength=16) / (len(seq) - 1)
    entropy = -(pairs[:, None] * transition * np.log2(transition)).sum()
    result = markov_baseline([tokens[:150_000]], [tokens[150_000:]], orders=range(0, 5))
    assert result["bits_per_base"][2] == pytest.approx(entropy, abs=0.01)
    assert result["bits_per_base"][0] > result["bits_per_base"][2] + 0.05
    assert result["best_order"] in (2, 3, 4)


def test_sample_follows_the_chain():
    rng = np.random.default_rng(1)
    train = [rng.choice(np.arange(4) + A_ID, size=5000, p=[0.7, 0.1, 0.1, 0.1])]
    model = MarkovModel.fit(train, 1)
    sample = model.sample(4000, np.random.default_rng(2))
    assert set(np.unique(sample)) <= set(range(A_ID, A_ID + 4))
    assert np.mean(sample == A_ID) == pytest.approx(0.7, abs=0.03)
