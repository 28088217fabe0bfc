"""objective=plaid end to end: the training module trains, averages and exports the objective's learned parameters
(embeddings, schedule endpoints) with the backbone; evaluate and sample read them back."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch
from Bio import SeqIO
from omegaconf import OmegaConf

from _job_config import job_config
from genodiff.config import compose_config
from genodiff.diffusion.plaid import PlaidObjective
from genodiff.errors import InputError
from genodiff.interop.export import OBJECTIVE_WEIGHTS_NAME, load_model
from genodiff.tasks import evaluate, sample, score, train
from train_helpers import tiny_config



def test_plaid_trains_exports_evaluates_and_samples(tmp_path):
    cfg = tiny_config("pretrain", tmp_path / "run", "objective=plaid", "ema_decay=0.5", "optim.lr=1e-2",
                      "objective.embed_dim=4", "objective.time_features=2", "model.input_dim=16")
    summary = train.run(cfg)
    assert summary["global_step"] == 6
    assert all(torch.isfinite(torch.tensor(v)) for v in summary["metrics"].values())
    export = Path(summary["export"])
    assert (export / OBJECTIVE_WEIGHTS_NAME).is_file()
    loaded = load_model(export, "cpu")
    assert isinstance(loaded.objective, PlaidObjective) and loaded.objective.rc_symmetric
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    shadow = ckpt["ema"]["shadow"]
    assert {"objective.embedding", "objective.gamma_bounds"} <= set(shadow)  # trained and averaged with the model
    torch.testing.assert_close(loaded.objective.embedding, shadow["objective.embedding"], rtol=0, atol=0)
    torch.testing.assert_close(loaded.objective.gamma_bounds, shadow["objective.gamma_bounds"], rtol=0, atol=0)
    assert loaded.objective.endpoints() != (-3.0, 6.0)  # the endpoints were learned (lr 1e-2, 6 steps)
    for name, param in loaded.module.named_parameters():
        assert torch.equal(param.detach(), shadow["backbone." + name].to(param.dtype)), name

    data = tiny_config("pretrain", tmp_path / "unused").data
    results = evaluate.run(OmegaConf.create({
        "data": OmegaConf.to_container(data), "checkpoints": [str(export)], "split": "test", "num_samples": 2,
        "method": "auto", "batch_size": 4, "max_windows": 4, "markov_orders": [], "markov_alpha": 1.0,
        "markov_max_train_bases": 1000, "seed": 0, "device": "cpu", "output_dir": str(tmp_path / "eval")}))
    row = results["rows"][0]
    assert row["estimator"] == "antithetic" and row["likelihood"] == "upper bound"
    assert 1.0 < row["bits_per_base"] < 10.0 and row["bits_per_base_stderr"] > 0

    scfg = job_config("sample", **{"checkpoint": str(export), "output_dir": str(tmp_path / "out"), "num_samples": 2,
                                   "length": 40, "steps": 4, "batch_size": 2, "progress": False,
                                   "conditioning.prefix": "ACGTAC"})
    out = sample.run(scfg)
    recs = list(SeqIO.parse(str(tmp_path / "out" / "samples.fa"), "fasta"))
    assert len(recs) == 2 and all(len(r.seq) == 40 and str(r.seq).startswith("ACGTAC") for r in recs)
    assert set("".join(str(r.seq) for r in recs)) <= set("ACGT")
    assert out["sampler"]["sampler"] == "plaid" and out["denoiser_calls"] == 2 * 5  # one batch: 2 calls x (4 steps + decoding)

    fasta = tmp_path / "seqs.fa"
    fasta.write_text(">s\nACGTACGTAC\n")
    score_cfg = job_config("score", checkpoint=str(export), input=str(fasta), output_dir=str(tmp_path / "score"),
                           progress=False)
    with pytest.raises(InputError, match="objective 'plaid'"):  # a clear refusal, not a traceback
        score.run(score_cfg)

    broken = tmp_path / "broken"
    shutil.copytree(export, broken)
    (broken / OBJECTIVE_WEIGHTS_NAME).unlink()
    with pytest.raises(InputError, match=OBJECTIVE_WEIGHTS_NAME):
        load_model(broken, "cpu")


def test_plaid_trains_a_dit_on_text_and_samples(tmp_path):
    """The text path: objective=plaid on the DiT (continuous inputs sized by the objective) over byte tokens trains,
    exports, evaluates to a finite bound above zero and samples text through `genodiff sample text`."""
    corpus = tmp_path / "prose.txt"
    corpus.write_text("The committee met on Tuesday to discuss the budget and the new shelves. " * 40)
    overrides = ["experiment/pretrain=text_cpu", "data=text_local", f"data.text_files=[{corpus}]",
                 f"data.cache_dir={tmp_path / 'cache'}", "data.seq_len=32", "data.max_eval_items=4",
                 "objective=plaid", "objective.embed_dim=4", "objective.time_features=2", "model.hidden_size=32",
                 "model.n_blocks=1", "model.n_heads=2", "model.cond_dim=16", "global_batch_size=4",
                 "max_per_device_batch_size=4", "max_steps=4", "val_every_n_steps=4", "checkpoint_every_n_steps=4",
                 "optim.warmup_steps=1", "loggers=[csv]", "progress=false", f"output_dir={tmp_path / 'run'}"]
    summary = train.run(compose_config("pretrain", overrides))
    assert summary["global_step"] == 4
    loaded = load_model(summary["export"], "cpu")
    assert isinstance(loaded.objective, PlaidObjective) and loaded.spec["model"]["name"] == "dit"
    assert loaded.spec["model"]["input_dim"] == loaded.objective.input_dim > 0
    assert math.isfinite(summary["metrics"]["val/bits_per_token"]) and summary["metrics"]["val/bits_per_token"] > 0

    scfg = job_config("sample", kind="text", checkpoint=summary["export"], output_dir=str(tmp_path / "out"),
                      num_samples=2, length=16, steps=4, batch_size=2, progress=False)
    out = sample.run(scfg)
    assert out["sampler"]["method"] == "plaid"
    assert out["denoiser_calls"] == 2 * (4 + 1)  # Plaid's own reverse process: (4 steps + decoding) x self-conditioning
    assert (tmp_path / "out" / "samples.txt").read_text(errors="replace").strip()
    with pytest.raises(InputError, match="temperature"):
        sample.run(job_config("sample", kind="text", checkpoint=summary["export"], output_dir=str(tmp_path / "t"),
                              num_samples=1, length=16, steps=4, temperature=0.5, progress=False))
    bad = overrides + ["model.input_dim=8", f"output_dir={tmp_path / 'bad'}"]
    with pytest.raises(InputError, match="model.input_dim=8 but objective plaid feeds"):
        train.run(compose_config("pretrain", bad))
