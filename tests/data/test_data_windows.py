import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from genodiff.data.genome.cache import build_encoded_cache
from genodiff.data.genome.intervals import Windows, genome_intervals, tile_windows
from genodiff.data.genome.tokenizer import reverse_complement_ids
from genodiff.data.genome.vocab import N_ID
from genodiff.data.genome.windows import GenomeWindowDataset, unit_hash, unit_hash_array


@pytest.fixture
def genome(tmp_path, small_fasta):
    return build_encoded_cache(small_fasta, tmp_path / "cache", progress=False)


def test_items_are_long_tensors(genome):
    w = tile_windows(genome_intervals(genome.lengths), 64, 32)
    ds = GenomeWindowDataset(genome, w, max_n_fraction=1.0)
    x = ds[0]
    assert x.dtype == torch.long and x.shape == (64,)
    c, s, e, strand = ds.window(0)
    assert strand == "+" and np.array_equal(x.numpy(), genome.fetch(c, s, e))
    assert torch.equal(ds[-1], ds[len(ds) - 1])
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_all_n_windows_never_returned(genome):
    w = tile_windows(genome_intervals(genome.lengths), 50, 10, include_tail=True)
    for thr in (1.0, 0.5, 0.0):
        ds = GenomeWindowDataset(genome, w, max_n_fraction=thr)
        assert ds.n_dropped > 0
        for i in range(len(ds)):
            frac = float((ds[i] == N_ID).float().mean())
            assert frac < 1.0 and frac <= thr


def test_windows_past_contig_end_are_padded(genome):
    n = genome.lengths["chrM"]
    ds = GenomeWindowDataset(genome, Windows(["chrM"], [0], [n - 20], 40), max_n_fraction=0.6)
    x = ds[0]
    assert (x[20:] == N_ID).all() and np.array_equal(x[:20].numpy(), genome.fetch("chrM", n - 20, n))


def test_rc_deterministic_and_probability(genome):
    w = tile_windows(genome_intervals(genome.lengths), 32, 8)
    ds = GenomeWindowDataset(genome, w, rc_prob=0.5, seed=11, max_n_fraction=1.0)
    ds2 = GenomeWindowDataset(genome, w, rc_prob=0.5, seed=11, max_n_fraction=1.0)
    flags = [ds.is_reverse(i) for i in range(len(ds))]
    assert 0.35 < np.mean(flags) < 0.65
    for i in reversed(range(len(ds))):  # order independent
        assert torch.equal(ds[i], ds2[i])
        c, s, e, strand = ds.window(i)
        plain = genome.fetch(c, s, e)
        exp = reverse_complement_ids(plain) if strand == "-" else plain
        assert np.array_equal(ds[i].numpy(), exp)
    ds.set_epoch(1)
    flags1 = [ds.is_reverse(i) for i in range(len(ds))]
    assert flags1 != flags
    assert [GenomeWindowDataset(genome, w, rc_prob=0.0).is_reverse(i) for i in range(5)] == [False] * 5
    assert all(GenomeWindowDataset(genome, w, rc_prob=1.0, max_n_fraction=1.0).is_reverse(i) for i in range(5))
    # batched path gives the same tensors
    idx = np.arange(len(ds))
    assert torch.equal(ds.get_batch(idx), torch.stack([ds[i] for i in idx]))


def test_unit_hash_vectorized_matches():
    idx = np.arange(1000)
    assert np.allclose(unit_hash_array(5, 3, idx), [unit_hash(5, 3, i) for i in idx])


def test_softmask_weights(genome, small_records):
    ds = GenomeWindowDataset(genome, [("chr2", 10, 60)], softmask_weight=0.1)
    item = ds[0]
    lower = torch.tensor([c.islower() for c in small_records["chr2"][10:60]])
    assert torch.equal(item["weights"], torch.where(lower, torch.tensor(0.1), torch.tensor(1.0)))
    assert item["input_ids"].shape == (50,)


def test_dataloader_two_workers(genome):
    w = tile_windows(genome_intervals(genome.lengths), 64, 16)
    ds = GenomeWindowDataset(genome, w, rc_prob=0.5, seed=1)
    ref = torch.stack([ds[i] for i in range(len(ds))])
    dl = DataLoader(ds, batch_size=16, num_workers=2, shuffle=False)
    got = torch.cat(list(dl))
    assert torch.equal(got, ref)
    assert not (got == N_ID).all(dim=1).any()


def test_real_slice_dataset(chr2_cache):
    w = tile_windows(genome_intervals(chr2_cache.lengths), 1024, 1024)
    ds = GenomeWindowDataset(chr2_cache, w, rc_prob=0.5, max_n_fraction=0.0)
    assert len(ds) == len(w) - 10  # the 10 kb telomere gap
    rng = np.random.default_rng(0)
    for i in rng.integers(0, len(ds), 50):
        x = ds[int(i)]
        assert x.min() >= 7 and x.max() <= 10


def test_dataloader_spawn_workers(genome):
    """Spawned workers receive the dataset pickled (no memmap inside) and reopen the cache."""
    w = tile_windows(genome_intervals(genome.lengths), 64, 64)
    ds = GenomeWindowDataset(genome, w, rc_prob=0.5, seed=2)
    ref = torch.stack([ds[i] for i in range(len(ds))])
    dl = DataLoader(ds, batch_size=8, num_workers=2, multiprocessing_context="spawn")
    assert torch.equal(torch.cat(list(dl)), ref)
