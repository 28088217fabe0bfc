"""objective=plaid end to end: the training module trains, averages and exports the objective's learned parameters
(embeddings, schedule endpoints) with the backbone; evaluate and sample read them back."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from Bio import SeqIO
from omegaconf import OmegaConf

from _job_config import job_config
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
