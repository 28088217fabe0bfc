"""The text path end to end: `text_*` presets train through the shared training task, export with the
tokenizer, resume, sample text (txt / jsonl, semi-AR beyond the context) and evaluate (NELBO bound,
generative perplexity under an AR evaluator, always with sample entropy)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from genodiff.errors import InputError
from genodiff.generate.text import generative_perplexity, sample_entropy
from genodiff.interop.export import load_export, read_spec
from genodiff.tasks import evaluate, sample, train


def text_config(run_dir: Path, *overrides: str, preset: str = "text_synthetic"):
    base = [f"experiment/pretrain={preset}", "data.seq_len=32", "data.max_eval_items=8",
            "data.synthetic.train_symbols=20000", "data.synthetic.valid_symbols=2000",
            "data.synthetic.test_symbols=2000", "global_batch_size=8", "max_per_device_batch_size=8", "max_steps=6",
            "val_every_n_steps=3", "checkpoint_every_n_steps=2", "loggers=[csv]", "progress=false",
            f"output_dir={run_dir}", "model.hidden_size=32", "model.n_blocks=2", "model.n_heads=2",
            "optim.warmup_steps=2"]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="genodiff.configs", version_base="1.3"):
            return compose(config_name="pretrain", overrides=base + list(overrides))
    finally:
        GlobalHydra.instance().clear()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("text_runs")
    mdlm = train.run(text_config(root / "mdlm", "model.cond_dim=16"))
    ar = train.run(text_config(root / "ar", "model=transformer_ar_mini", "objective=ar"))
    return root, mdlm, ar


def test_presets_train_export_with_tokenizer(runs):
    root, mdlm, ar = runs
    for summary, objective, model in ((mdlm, "mdlm", "dit"), (ar, "ar", "transformer_ar")):
        assert summary["global_step"] == 6
        assert all(torch.isfinite(torch.tensor(v)) for v in summary["metrics"].values())
        assert summary["vocab"] == {"num_tokens": 260, "mask_id": 259, "pad_id": 258}
        spec = read_spec(summary["export"])
        assert spec["objective"]["name"] == objective and spec["model"]["name"] == model
        assert spec["model"]["vocab_size"] == 260
        assert spec["training"]["text"]["seq_len"] == 32
        assert (Path(summary["export"]) / "tokenizer" / "text_tokenizer.json").is_file()
        assert load_export(summary["export"]).model.config.vocab_size == 260
    assert (root / "mdlm" / "checkpoints" / "last.ckpt").is_file()
    assert "val/perplexity_bound" in mdlm["metrics"]


def test_resume_continues_to_max_steps(runs):
    root, _, _ = runs
    summary = train.run(text_config(root / "mdlm", "model.cond_dim=16", "max_steps=8"))
    assert summary["resumed_from"].endswith("last.ckpt") and summary["global_step"] == 8


def _sample_cfg(checkpoint, out, **kw):
    text = {"output_format": kw.pop("fmt", "jsonl"), "prefix": kw.pop("prefix", None), "eval_model": kw.pop("eval_model", None)}
    return OmegaConf.create({"kind": "text", "checkpoint": str(checkpoint), "num_samples": 3, "length": kw.pop("length", None),
                             "sampler": kw.pop("sampler", "cached"), "steps": 16, "seed": 0, "temperature": 1.0,
                             "top_p": 1.0, "batch_size": 2, "output_dir": str(out), "text": text, **kw})


@pytest.mark.parametrize(("sampler", "fmt", "length"), [("cached", "jsonl", None), ("first_hitting", "txt", 80)])
def test_sample_text_writes_txt_or_jsonl(runs, tmp_path, sampler, fmt, length):
    root, mdlm, _ = runs
    summary = sample.run(_sample_cfg(root / "mdlm", tmp_path, sampler=sampler, fmt=fmt, length=length,
                                          prefix="ab"))
    path = tmp_path / f"samples.{fmt}"
    assert summary["output"] == str(path) and summary["length"] == (length or 32)
    if fmt == "jsonl":
        records = [json.loads(line) for line in path.read_text().splitlines()]
        assert [r["index"] for r in records] == [0, 1, 2]
        assert all(r["text"].startswith("ab") and r["num_tokens"] == 32 and r["entropy"] > 0 for r in records)
    else:
        parts = path.read_text().split("\n=====\n")
        assert len([p for p in parts if p]) == 3 and all(p.startswith("ab") for p in parts if p)
    assert summary["entropy_mean"] > 0
    assert json.loads((tmp_path / "summary.json").read_text())["num_samples"] == 3


def test_ar_model_samples_left_to_right_and_scores_generative_perplexity(runs, tmp_path):
    root, mdlm, ar = runs
    summary = sample.run(_sample_cfg(root / "ar", tmp_path / "ar_samples", sampler="cached"))
    assert summary["sampler"]["method"] == "ar"
    summary = sample.run(_sample_cfg(root / "mdlm", tmp_path / "scored", eval_model=str(root / "ar")))
    gen = summary["generative_perplexity"]
    assert gen["perplexity"] > 1.0 and gen["tokens"] > 0 and gen["entropy_mean"] > 0
    with pytest.raises(InputError, match="not ar"):
        sample.run(_sample_cfg(root / "mdlm", tmp_path / "bad", eval_model=str(root / "mdlm")))


def test_generative_perplexity_of_a_uniform_evaluator_is_the_vocabulary_size(runs, tmp_path):
    """Zero output weights: every allowed token (260 minus [MASK] and [PAD]) has probability 1/258."""
    import shutil

    from genodiff.interop.export import save_export

    root, _, ar = runs
    exported = load_export(ar["export"])
    with torch.no_grad():
        exported.model.output_layer.linear.weight.zero_()
        exported.model.output_layer.linear.bias.zero_()
    folder = save_export(exported.model, {k: v for k, v in exported.spec.items() if k not in ("format", "version")},
                         tmp_path / "uniform")
    shutil.copytree(Path(ar["export"]) / "tokenizer", folder / "tokenizer")
    texts = ["abcdabcd" * 10, "dcba", "x"]  # the longest spans several 32-token windows
    gen = generative_perplexity(texts, str(folder), context=32)
    assert gen["perplexity"] == pytest.approx(258.0, rel=1e-5)
    # text_synthetic packs without [BOS]: every token after the first of a text is scored once (windows
    # overlap by one token), a one-token text gives nothing to score
    assert gen["tokens"] == sum(len(t) - 1 for t in texts)
    assert gen["entropy_mean"] == pytest.approx((sample_entropy(list(b"abcd" * 20))
                                                 + sample_entropy(list(b"dcba")) + 0.0) / 3)


def test_evaluate_nelbo_bound_and_generative_perplexity(runs, tmp_path):
    root, mdlm, ar = runs
    cfg = text_config(tmp_path / "unused")
    sample.run(_sample_cfg(root / "mdlm", tmp_path / "s"))
    eval_cfg = OmegaConf.create({
        "data": OmegaConf.to_container(cfg.data), "checkpoints": [str(root / "mdlm"), str(root / "ar")],
        "split": "test", "num_samples": 2, "method": "auto", "batch_size": 4, "seed": 0, "device": "cpu",
        "output_dir": str(tmp_path / "eval"), "samples": str(tmp_path / "s" / "samples.jsonl"),
        "eval_model": str(root / "ar")})
    results = evaluate.run(eval_cfg)
    mdlm_row, ar_row = results["rows"]
    assert mdlm_row["method"] == "num_masked" and ar_row["method"] == "antithetic"
    for row in results["rows"]:
        assert 0 < row["nats_per_token"] < 6 and row["perplexity_bound"] > 1 and row["tokens"] == 8 * 32
    assert ar_row["nats_per_token_stderr"] == 0.0  # exact NLL
    assert results["generative"]["perplexity"] > 1 and results["generative"]["entropy_mean"] > 0
    assert "Generative perplexity" in (tmp_path / "eval" / "report.md").read_text()


def test_hf_causal_lm_evaluator_offline_is_one_line(offline):
    with pytest.raises(InputError) as err:
        generative_perplexity(["some text"], "gpt2-large")
    assert "gpt2-large" in str(err.value) and "\n" not in str(err.value)


def test_sample_config_of_the_cli_drives_text_sampling(runs, tmp_path):
    """``genodiff sample text checkpoint=... length=40 text.output_format=jsonl`` as composed by the CLI."""
    root, _, _ = runs
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="genodiff.configs", version_base="1.3"):
            cfg = compose(config_name="sample", overrides=[
                "kind=text", f"checkpoint={root / 'mdlm'}", "length=40", "num_samples=2", "steps=8",
                "text.output_format=jsonl", f"output_dir={tmp_path}", "conditioning.prefix=abc", "num_threads=1"])
    finally:
        GlobalHydra.instance().clear()
    summary = sample.run(cfg)
    records = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(r["text"].startswith("abc") and r["num_tokens"] == 40 for r in records)
    assert summary["block_length"] == 32  # the training seq_len: 40 tokens need two semi-AR windows
