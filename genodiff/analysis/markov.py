"""Order-k Markov chain over A, C, G, T: the classical baseline every report shows beside a neural model.

A sequence is given as DNA token ids (genodiff.data.genome.vocab: A7 C8 G9 T10; anything else, e.g. N, breaks
the chain). Position ``i`` is scored with ``p(x_i | x_{i-k..i-1})`` only when its ``k`` predecessors and
itself are all A/C/G/T and lie in the same sequence; for the first ``k`` bases of a run the chain falls
back to the longest available context (orders ``k-1, ..., 0``), so every A/C/G/T base is scored exactly
once and bits/base are comparable with a model that scores every base. Probabilities use additive
(Laplace/Lidstone) smoothing ``(count + alpha) / (context_count + 4 alpha)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from genodiff.data.genome.alphabet import ids_to_base4, kmer_index
from genodiff.data.genome.markov import MarkovTable, transition_counts
from genodiff.data.genome.vocab import A_ID

LN2 = float(np.log(2.0))


@dataclass
class MarkovModel:
    """Counts of every order 0..k (so short runs can back off). ``counts[j]`` has shape (4**j, 4)."""

    order: int
    alpha: float = 1.0
    counts: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def fit(cls, sequences, order: int, alpha: float = 1.0) -> "MarkovModel":
        """Count (k+1)-mers over an iterable of token-id arrays (each a separate sequence)."""
        if order < 0:
            raise ValueError("order must be >= 0")
        codes = [ids_to_base4(seq) for seq in sequences]
        counts = [transition_counts(codes, j).astype(np.float64) for j in range(order + 1)]
        return cls(order=order, alpha=alpha, counts=counts)

    def log_probs(self, j: int) -> np.ndarray:
        """Natural-log transition table of order j: shape (4**j, 4)."""
        return MarkovTable(j, self.counts[j]).log_probs(self.alpha)

    def nll(self, seq) -> tuple[float, int]:
        """Negative log-likelihood (nats) summed over the scored bases of one sequence, and their number."""
        codes = ids_to_base4(seq)
        total, scored = 0.0, 0
        full_index, full_valid = kmer_index(codes, self.order + 1)
        table = self.log_probs(self.order)
        total -= float(table.reshape(-1)[full_index[full_valid]].sum())
        scored += int(full_valid.sum())
        # Bases without a full valid context: back off to the longest valid one.
        covered = np.zeros(codes.shape[0], bool)
        covered[self.order :][full_valid] = True
        pending = (codes >= 0) & ~covered
        for j in range(self.order - 1, -1, -1):
            if not pending.any():
                break
            index, valid = kmer_index(codes, j + 1)
            take = np.zeros(codes.shape[0], bool)
            take[j:] = valid & pending[j:]
            if take.any():
                flat = self.log_probs(j).reshape(-1)
                total -= float(flat[index[take[j:]]].sum())
                scored += int(take.sum())
                pending &= ~take
        return total, scored

    def bits_per_base(self, sequences) -> float:
        total, scored = 0.0, 0
        for seq in sequences:
            t, s = self.nll(seq)
            total, scored = total + t, scored + s
        return total / max(scored, 1) / LN2

    def sample(self, length: int, rng: np.random.Generator) -> np.ndarray:
        """Draw one sequence of ``length`` token ids (A/C/G/T) from the chain, starting from lower orders."""
        out = np.empty(length, np.int64)
        context = 0
        for i in range(length):
            j = min(i, self.order)
            probs = np.exp(self.log_probs(j)[context % (4**j) if j else 0])
            base = int(rng.choice(4, p=probs / probs.sum()))
            out[i] = base
            context = (context * 4 + base) % (4**self.order) if self.order else 0
        return out + A_ID


def markov_baseline(train_sequences, test_sequences, orders=range(0, 9), alpha: float = 1.0) -> dict:
    """Fit orders k in ``orders`` on train and report test bits/base for each, and the best order.

    Returns {"bits_per_base": {k: float}, "best_order": k, "best_bits_per_base": float}.
    """
    train_sequences, test_sequences = list(train_sequences), list(test_sequences)
    top = max(orders)
    model = MarkovModel.fit(train_sequences, top, alpha)
    results = {}
    for k in orders:
        sub = MarkovModel(order=k, alpha=alpha, counts=model.counts[: k + 1])
        results[int(k)] = sub.bits_per_base(test_sequences)
    best = min(results, key=results.get)
    return {"bits_per_base": results, "best_order": best, "best_bits_per_base": results[best]}
