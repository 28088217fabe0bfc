"""Guided design end to end: a tiny class-conditional MDLM and a noise-aware classifier trained for a few
steps on a generated labelled CSV (a planted TATAAA motif in class ``promoter``), then ``genodiff sample``
with ``condition.label`` / ``guidance.scale`` / ``guidance.classifier``: provenance, label vocabulary in the
export, one-line errors. The guidance math is tested exactly in tests/diffusion/test_guidance.py; the slow
test here measures the planted-motif rate against w with a model trained long enough to learn the motif."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from Bio import SeqIO

from _job_config import job_config
from genodiff.config import compose_config
from genodiff.errors import InputError
from genodiff.generate.design import GuidanceConfig, guided_denoiser
from genodiff.interop.export import load_model
from genodiff.tasks import sample, train

MOTIF = "TATAAA"
LENGTH = 40


def labelled_csv(path: Path, n: int, length: int = LENGTH, seed: int = 0) -> Path:
    """``sequence,label``: half ``promoter`` (uniform bases with MOTIF planted at a random place), half
    ``background`` (uniform bases)."""
    rng = random.Random(seed)
    rows = ["sequence,label"]
    for i in range(n):
        seq = [rng.choice("ACGT") for _ in range(length)]
        label = "promoter" if i % 2 else "background"
        if label == "promoter":
            p = rng.randrange(0, length - len(MOTIF) + 1)
            seq[p:p + len(MOTIF)] = MOTIF
        rows.append("".join(seq) + "," + label)
    path.write_text("\n".join(rows) + "\n")
    return path


def train_config(preset: str, run_dir: Path, csv: Path, *overrides: str):
    return compose_config("finetune", [
        f"experiment/finetune={preset}", f"data.task={csv}", "global_batch_size=8", "max_per_device_batch_size=8",
        "max_steps=4", "val_every_n_steps=2", "checkpoint_every_n_steps=2", "loggers=[csv]", "progress=false",
        f"output_dir={run_dir}", "optim.warmup_steps=1", "data.max_eval_items=8", *overrides])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(conditional MDLM run, noisy classifier run, csv): 4 training steps each on 80 labelled sequences."""
    d = tmp_path_factory.mktemp("guided")
    csv = labelled_csv(d / "labelled.csv", 80)
    old = os.environ.get("GENODIFF_DATA")
    os.environ["GENODIFF_DATA"] = str(d / "cache")
    try:
        # no EMA: the exported weights are the trained ones (EMA after 4 steps is the zero-initialised label table)
        train.run(train_config("conditional_nontata", d / "cond", csv, "model.d_model=16", "ema_decay=null"))
        train.run(train_config("noisy_classifier_nontata", d / "clf", csv, "model.backbone.d_model=16",
                               f"init={d / 'cond' / 'export'}"))
    finally:
        if old is None:
            os.environ.pop("GENODIFF_DATA", None)
        else:
            os.environ["GENODIFF_DATA"] = old
    return d / "cond", d / "clf", csv


def make_cfg(tmp_path, **overrides):
    base = {"output_dir": str(tmp_path / "out"), "num_samples": 3, "length": LENGTH, "steps": 8, "batch_size": 3,
            "progress": False, "num_threads": 1}
    return job_config("sample", **{**base, **overrides})


def records(tmp_path, name="samples"):
    return list(SeqIO.parse(str(tmp_path / "out" / f"{name}.fa"), "fasta"))


def test_exports_record_the_label_vocabulary(runs):
    cond, clf, _ = runs
    spec = json.loads((cond / "export" / "genodiff.json").read_text())
    assert spec["model"]["num_classes"] == 2
    block = spec["condition"]
    assert block["classes"] == ["background", "promoter"] and block["null_label"] == 2
    assert block["label_dropout"] == 0.1
    sizes = block["data"]["sizes"]
    assert sum(sizes.values()) == 80 and sizes["test"] == 40  # the preset holds half out for an oracle
    cspec = json.loads((clf / "export" / "genodiff.json").read_text())
    assert cspec["model"]["name"] == "sequence_classifier" and cspec["model"]["num_classes"] == 2
    assert cspec["classifier"]["classes"] == ["background", "promoter"]
    assert cspec["classifier"]["data"]["sizes"] == sizes  # the same split as the generator
    metrics = json.loads((clf / "summary.json").read_text())["metrics"]
    assert "val/accuracy" in metrics and "val/bits_per_token" not in metrics


@pytest.mark.parametrize("sampler", ["cached", "first_hitting"])
def test_classifier_free_guidance_cli_and_provenance(tmp_path, runs, sampler):
    cond, _, _ = runs
    summary = sample.run(make_cfg(tmp_path, checkpoint=str(cond), sampler=sampler, seed=5,
                                  **{"condition.label": "promoter", "guidance.scale": 1.5}))
    recs = records(tmp_path)
    assert len(recs) == 3 and all(len(r.seq) == LENGTH and set(str(r.seq)) <= set("ACGT") for r in recs)
    for key in ("label=promoter", "guidance=cfg", "scale=1.5"):
        assert key in recs[0].description
    g = summary["guidance"]
    assert g["kind"] == "classifier_free" and g["label_id"] == 1 and g["null_label"] == 2 and g["scale"] == 1.5
    side = json.loads((tmp_path / "out" / "samples.json").read_text())
    assert side["guidance"] == g and side["config"]["condition"]["label"] == "promoter"
    # a label given by id is the same class: same seed, same sequences
    sample.run(make_cfg(tmp_path, checkpoint=str(cond), sampler=sampler, seed=5, output_name="by_id",
                        **{"condition.label": 1, "guidance.scale": 1.5}))
    assert [str(r.seq) for r in records(tmp_path, "by_id")] == [str(r.seq) for r in recs]


def test_the_label_and_the_scale_reach_the_model(runs):
    cond, _, _ = runs
    model = load_model(cond, "cpu")
    x = torch.full((2, LENGTH), model.vocab.mask_id)
    x[:, ::3] = 10  # some known T bases
    out = {}
    for label, w in (("promoter", 0.0), ("background", 0.0), ("promoter", 2.0), (None, 0.0)):
        den = guided_denoiser(model, GuidanceConfig(label=label, scale=w)).denoiser
        out[(label, w)] = den(x, None).double()
    conditional = out[("promoter", 0.0)]
    # w = 0 is the conditional model's own output; the null label is the unconditional one
    with torch.no_grad():
        assert torch.equal(conditional.float(), model.module(x, label=torch.ones(2, dtype=torch.long))[..., :12])
        assert torch.equal(out[(None, 0.0)].float(), model.module(x, label=torch.full((2,), 2))[..., :12])
    assert (conditional - out[("background", 0.0)]).abs().max() > 0
    assert (torch.log_softmax(conditional[..., 7:11], -1) - out[("promoter", 2.0)][..., 7:11]).abs().max() > 0


def test_unguided_sampling_of_a_conditional_model_is_unconditional(tmp_path, runs):
    cond, _, _ = runs
    summary = sample.run(make_cfg(tmp_path, checkpoint=str(cond)))
    assert summary["guidance"] is None and "label=" not in records(tmp_path)[0].description


@pytest.mark.parametrize("mode", ["exact", "first_order"])
def test_classifier_guidance_cli(tmp_path, runs, mode):
    cond, clf, _ = runs
    summary = sample.run(make_cfg(tmp_path, checkpoint=str(cond), num_samples=2, batch_size=2, length=24, steps=4,
                                  **{"condition.label": "promoter", "guidance.scale": 1.0,
                                     "guidance.classifier": str(clf), "guidance.mode": mode}))
    desc = records(tmp_path)[0].description
    for key in ("label=promoter", "guidance=classifier", "scale=1", "classifier=sha256:", f"guidance_mode={mode}"):
        assert key in desc
    stats = summary["guidance"]["classifier_stats"]
    if mode == "exact":
        assert stats["exact_calls"] > 0 and stats["first_order_calls"] == 0 and stats["classifier_inputs"] > 0
    else:
        assert stats["first_order_calls"] > 0 and stats["exact_calls"] == 0


def test_guidance_errors_are_one_line(tmp_path, runs, tiny_run):
    cond, clf, _ = runs
    with pytest.raises(InputError, match=r"'enhancer' is not a class .* known: background \(0\), promoter \(1\)"):
        sample.run(make_cfg(tmp_path, checkpoint=str(cond), **{"condition.label": "enhancer"}))
    with pytest.raises(InputError, match="unconditional"):
        sample.run(make_cfg(tmp_path, checkpoint=str(tiny_run), **{"condition.label": "promoter"}))
    with pytest.raises(InputError, match="condition.label: required"):
        sample.run(make_cfg(tmp_path, checkpoint=str(cond), **{"guidance.scale": 2.0}))
    with pytest.raises(InputError, match="guidance.scale"):
        sample.run(make_cfg(tmp_path, checkpoint=str(cond), **{"condition.label": "promoter", "guidance.scale": -1}))
    with pytest.raises(InputError, match="guidance.mode"):
        sample.run(make_cfg(tmp_path, checkpoint=str(cond), **{"condition.label": "promoter", "guidance.mode": "x"}))
    with pytest.raises(InputError, match="not a noise-aware classifier"):
        sample.run(make_cfg(tmp_path, checkpoint=str(cond), **{"condition.label": "promoter",
                                                                "guidance.classifier": str(cond)}))
    with pytest.raises(InputError, match="is a noise-aware classifier, not a generator"):
        sample.run(make_cfg(tmp_path, checkpoint=str(clf)))
    with pytest.raises(InputError, match="guided design is for DNA"):
        sample.run(make_cfg(tmp_path, kind="text", checkpoint=str(cond), **{"condition.label": "promoter"}))
    assert not (tmp_path / "out" / "samples.fa").exists()  # no partial output


def test_labelled_data_errors(tmp_path):
    bad = tmp_path / "one_class.csv"
    bad.write_text("sequence,label\nACGTACGT,a\nACGTTTGT,a\n")
    with pytest.raises(InputError, match="only one class"):
        train.run(train_config("conditional_nontata", tmp_path / "r", bad))
    with pytest.raises(InputError, match="model.num_classes=3"):
        train.run(train_config("conditional_nontata", tmp_path / "r", labelled_csv(tmp_path / "ok.csv", 20),
                               "+model.num_classes=3"))


def _motif_rate(path: Path) -> float:
    seqs = [str(r.seq) for r in SeqIO.parse(str(path), "fasta")]
    return sum(MOTIF in s for s in seqs) / len(seqs)


@pytest.mark.slow
def test_planted_motif_rate_rises_with_w_for_a_trained_model(tmp_path):
    """A tiny conditional model trained for 600 steps on the planted-motif data: the fraction of samples that
    contain TATAAA rises with the classifier-free guidance scale (0, 1, 2, 4) and is above the null label's.
    Measured once (steps=64): 0.325, 0.48, 0.61, 0.72 for w = 0, 1, 2, 4 (training promoter rows: 1.0)."""
    csv = labelled_csv(tmp_path / "labelled.csv", 2000, seed=1)
    os.environ["GENODIFF_DATA"] = str(tmp_path / "cache")
    train.run(train_config("conditional_nontata", tmp_path / "cond", csv, "max_steps=600", "val_every_n_steps=300",
                           "checkpoint_every_n_steps=300", "global_batch_size=32", "max_per_device_batch_size=32",
                           "optim.lr=3e-3", "ema_decay=0.99"))
    n = 200
    rates = []
    for w in (0.0, 1.0, 2.0, 4.0):
        sample.run(make_cfg(tmp_path, checkpoint=str(tmp_path / "cond"), num_samples=n, batch_size=100, steps=64,
                            output_name=f"w{w:g}", **{"condition.label": "promoter", "guidance.scale": w}))
        rates.append(_motif_rate(tmp_path / "out" / f"w{w:g}.fa"))
    sample.run(make_cfg(tmp_path, checkpoint=str(tmp_path / "cond"), num_samples=n, batch_size=100, steps=64,
                        output_name="null_label"))
    null = _motif_rate(tmp_path / "out" / "null_label.fa")
    se = lambda p: np.sqrt(max(p * (1 - p), 1e-3) / n)
    assert rates[0] > null + 2 * se(null), (rates, null)
    for a, b in zip(rates, rates[1:]):
        assert b > a - 2 * se(a), (rates, null)  # non-decreasing up to noise
    assert rates[-1] > rates[0] + 3 * se(rates[0]), (rates, null)
