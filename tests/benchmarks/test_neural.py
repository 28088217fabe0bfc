"""Neural classifiers: RC conjoining invariance, pooling over non-pad positions only, checkpoint loading,
early stopping on the inner validation split only (no test-set peeking)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genodiff.benchmarks.datasets import encode_sequences, LabeledSet
from genodiff.benchmarks.folds import cv_splits
from genodiff.benchmarks.neural import BackboneClassifier, GBCNN, TorchMethod, load_backbone
from genodiff.benchmarks.runner import build_method, run_units
from genodiff.data.genome.tokenizer import reverse_complement_ids
from genodiff.data.genome.tokenizer import reverse_complement_padded as rc_padded
from genodiff.data.genome.vocab import PAD_ID
from genodiff.errors import InputError
from genodiff.models.heads import pool_hidden

from bench_helpers import motif_dataset


def _ids(rng, B, L):
    return torch.from_numpy(rng.integers(7, 11, size=(B, L)).astype(np.int64))


def test_rc_padded_keeps_padding_at_end():
    ids = torch.tensor([[7, 8, 9, PAD_ID, PAD_ID], [7, 7, 10, 8, 9]])
    lengths = torch.tensor([3, 5])
    out = rc_padded(ids, lengths)
    assert out[0].tolist() == [8, 9, 10, PAD_ID, PAD_ID]  # rc(ACG) = CGT
    assert out[1].tolist() == reverse_complement_ids(ids[1]).tolist()
    assert torch.equal(rc_padded(out, lengths), ids)


def test_ps_conjoined_head_is_rc_invariant():
    torch.manual_seed(0)
    backbone, _ = load_backbone("caduceus", {"d_model": 16, "n_layer": 2, "rcps": True}, seed=0)
    for pooling in ("mean", "max", "first", "last"):
        model = BackboneClassifier(backbone, 3, pooling=pooling, rc="ps").eval()
        x = _ids(np.random.default_rng(1), 4, 33)
        mask = torch.ones_like(x, dtype=torch.bool)
        with torch.no_grad():
            a = model(x, mask)
            b = model(reverse_complement_ids(x), mask)
        assert torch.allclose(a, b, atol=1e-5), pooling
        # not trivially constant
        assert not torch.allclose(a[0], a[1])


def test_ph_posthoc_conjoining_invariant_with_padding():
    backbone, _ = load_backbone("caduceus", {"d_model": 16, "n_layer": 1, "rcps": False}, seed=0)
    model = BackboneClassifier(backbone, 2, rc="ph").eval()
    x = _ids(np.random.default_rng(2), 3, 20)
    lengths = torch.tensor([20, 14, 9])
    mask = torch.arange(20)[None] < lengths[:, None]
    x = torch.where(mask, x, torch.full_like(x, PAD_ID))
    with torch.no_grad():
        assert torch.allclose(model(x, mask), model(rc_padded(x, lengths), mask), atol=1e-5)
    with pytest.raises(InputError, match="rc=ps needs"):
        BackboneClassifier(backbone, 2, rc="ps")


def test_pooling_ignores_padding():
    h = torch.randn(2, 6, 5)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]], dtype=torch.bool)
    for pooling in ("mean", "max", "first", "last"):
        ref = torch.stack([pool_hidden(h[0:1, :3], None, pooling)[0], pool_hidden(h[1:2, :5], None, pooling)[0]])
        garbage = h.clone()
        garbage[~mask] = 1e4
        assert torch.allclose(pool_hidden(garbage, mask, pooling), ref, atol=1e-6), pooling


def test_padding_changes_nothing_for_masked_backbone():
    backbone, _ = load_backbone("dit", {"hidden_size": 32, "n_blocks": 2, "n_heads": 4, "cond_dim": 16,
                                        "dropout": 0.0}, seed=0)
    model = BackboneClassifier(backbone, 2, pooling="mean").eval()
    x = _ids(np.random.default_rng(3), 2, 12)
    mask = torch.ones_like(x, dtype=torch.bool)
    xp = torch.cat([x, torch.full((2, 7), PAD_ID)], 1)
    mp = torch.cat([mask, torch.zeros(2, 7, dtype=torch.bool)], 1)
    with torch.no_grad():
        assert torch.allclose(model(x, mask), model(xp, mp), atol=1e-5)


def test_checkpoint_loader(tmp_path):
    from safetensors.torch import save_file

    cfg = {"d_model": 16, "n_layer": 1, "rcps": True}
    ref, _ = load_backbone("caduceus", cfg, seed=123)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    state = {f"backbone.{k}": v.clone().contiguous() for k, v in ref.state_dict().items() if k != "lm_head.lm_head.weight"}
    save_file(state, str(ckpt / "model.safetensors"))
    (ckpt / "genodiff.json").write_text(json.dumps({"model": "caduceus", "config": cfg}))
    got, desc = load_backbone(None, None, str(ckpt), seed=0)
    assert desc["init"] == str(ckpt)
    for k, v in ref.state_dict().items():
        assert torch.equal(v, got.state_dict()[k]), k
    with pytest.raises(InputError, match="expected a checkpoint folder"):
        load_backbone("caduceus", cfg, str(tmp_path / "nothing"))
    with pytest.raises(InputError, match="cannot build"):
        load_backbone("caduceus", {"bogus": 1})


def _motif_set(n=120, L=40, seed=0):
    seqs, labels = motif_dataset(n, L, seed)
    ids, lengths, _, _ = encode_sequences(seqs)
    return LabeledSet(ids, lengths, np.array(labels), ["0", "1"])


def test_early_stopping_uses_only_inner_val_and_restores_best():
    data = _motif_set()
    tr, va, te = data.subset(np.arange(80)), data.subset(np.arange(80, 100)), data.subset(np.arange(100, 120))
    seen = []
    m = TorchMethod("cnn", lambda d: GBCNN(d.ids.shape[1], 2), max_steps=40, eval_every=10, patience=0,
                    batch_size=16, warmup_steps=5, eval_fn=lambda d: seen.append(d.ids.tobytes()))
    m.fit(tr, va)
    assert seen and all(s == va.ids.tobytes() for s in seen)  # model selection saw the val split only
    hist = m.info["history"]
    best = max(h["val_accuracy"] for h in hist)
    assert m.info["best_val_accuracy"] == best
    acc = (m.predict_proba(va).argmax(1) == va.labels).mean()
    assert acc == pytest.approx(best)  # the best checkpoint was restored


class Spy:
    """A method that records every sequence it is shown in fit (train + val) and in predict."""

    log = []

    def __init__(self):
        self.info = {}

    def fit(self, train, val):
        rows = {bytes(r[:n]) for d in (train, val) for r, n in zip(d.ids, d.lengths)}
        Spy.log.append(("fit", rows))
        return self

    def predict_proba(self, data):
        rows = {bytes(r[:n]) for r, n in zip(data.ids, data.lengths)}
        Spy.log.append(("predict", rows))
        return np.full((len(data), 2), 0.5)


def test_runner_never_passes_test_rows_to_fit():
    data = _motif_set(100)
    splits = cv_splits(data.labels, 5, seed=0)
    Spy.log = []
    results = run_units([{"kind": "spy", "label": "spy"}], splits, {"all": data}, builder=lambda *a: Spy())
    assert len(results) == 5 and len(Spy.log) == 10
    for k in range(5):
        (f, fit_rows), (p, test_rows) = Spy.log[2 * k], Spy.log[2 * k + 1]
        assert f == "fit" and p == "predict"
        assert not fit_rows & test_rows  # sequences are unique, so no test row reached fit
        assert len(test_rows) == len(splits[k].test)


def test_neural_method_trains_small_caduceus():
    data = _motif_set(96, 32)
    spec = {"kind": "neural", "label": "cad", "name": "caduceus", "config": {"d_model": 16, "n_layer": 1,
            "rcps": True}, "rc": "ps", "train": {"max_steps": 4, "eval_every": 2, "batch_size": 16,
                                                 "warmup_steps": 1, "rc_augment": True}}
    m = build_method(spec, seed=0)
    m.fit(data.subset(np.arange(64)), data.subset(np.arange(64, 80)))
    p = m.predict_proba(data.subset(np.arange(80, 96)))
    assert p.shape == (16, 2) and np.allclose(p.sum(1), 1)
    assert m.info["steps"] == 4 and len(m.info["history"]) == 2
    with pytest.raises(InputError, match="unknown key"):
        build_method({**spec, "train": {"bogus": 1}}, seed=0)


def test_loader_reads_training_export(tmp_path):
    from genodiff.interop.export import save_export

    cfg = {"d_model": 16, "n_layer": 1, "rcps": True}
    ref, _ = load_backbone("caduceus", cfg, seed=7)
    folder = save_export(ref, {"model": {"name": "caduceus", **cfg}, "objective": {"name": "mdlm"},
                               "vocab": {"name": "dna"}}, tmp_path / "export")
    got, desc = load_backbone(None, None, str(folder))
    assert desc["name"] == "caduceus" and desc["config"] == cfg and got.training
    for k, v in ref.state_dict().items():
        assert torch.equal(v, got.state_dict()[k]), k


def test_rc_auto_and_bad_pooling():
    ps, _ = load_backbone("caduceus", {"d_model": 8, "n_layer": 1, "rcps": True})
    ph, _ = load_backbone("caduceus", {"d_model": 8, "n_layer": 1, "rcps": False})
    assert BackboneClassifier(ps, 2, rc="auto").rc == "ps"
    assert BackboneClassifier(ph, 2, rc="auto").rc == "ph"
    with pytest.raises(InputError, match="model.pooling"):
        BackboneClassifier(ph, 2, pooling="median")
