"""``genodiff models`` (listing, cards), bundling an export with perf/bundle_model.py, and ``sample`` / ``score``
without ``checkpoint=`` (the bundled model, named in the provenance). Tiny random exports in a temporary bundled
folder; the evaluation is a real ``genodiff evaluate`` run on a small random genome."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import random
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "interop"))
from _job_config import job_config  # noqa: E402
from bundle_helpers import TINY_MODEL, make_export, use_bundled_dir  # noqa: E402

from genodiff.cli import main  # noqa: E402
from genodiff.config import compose_config  # noqa: E402
from genodiff.errors import InputError  # noqa: E402
from genodiff.interop import export as E  # noqa: E402
from genodiff.tasks import models as M  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
torch.set_num_threads(1)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _random_fasta(path: Path, n: int, seed: int = 0, name: str = "chrT") -> Path:
    rng = random.Random(seed)
    seq = "".join(rng.choice("ACGT") for _ in range(n))
    path.write_text(f">{name}\n" + "".join(seq[i:i + 60] + "\n" for i in range(0, n, 60)))
    return path


@pytest.fixture
def bundled(tmp_path, monkeypatch):
    root = use_bundled_dir(monkeypatch, tmp_path / "bundled")
    folder, model = make_export(root / E.DEFAULT_MODEL, seed=0, global_step=11)
    (folder / E.CARD_NAME).write_text(f"# {E.DEFAULT_MODEL}\n\nA card line.\n\nMore.\n")
    return folder, model


DATA = ["data=local", "data.window=64", "data.valid_tail_bp=500", "data.test_tail_bp=1000", "data.train_stride=64",
        "data.max_eval_windows=6"]


@pytest.fixture
def run_folder(tmp_path, monkeypatch):
    """A training run folder as `genodiff pretrain` leaves it (export/, .hydra/, summary.json) on a 5 kb genome:
    train chrT:0-3500, valid 3500-4000, test 4000-5000."""
    monkeypatch.setenv("GENODIFF_DATA", str(tmp_path / "cache"))
    fasta = _random_fasta(tmp_path / "genome.fa", 5000)
    run = tmp_path / "run"
    make_export(run / "export", seed=3, global_step=9)
    overrides = ["experiment/pretrain=demo", *TINY_MODEL, *DATA, f"data.fasta={fasta}", "global_batch_size=4",
                 "max_steps=9"]
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(compose_config("pretrain", overrides), run / ".hydra" / "config.yaml")
    (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (run / "summary.json").write_text(json.dumps({"seconds": 12.5, "metrics": {"val/nelbo": 1.25, "train/loss": 2}}))
    return run, fasta


def _evaluate(tmp_path, checkpoint: Path, fasta: Path, split: str = "test", name: str = "eval") -> Path:
    from genodiff.tasks import evaluate

    cfg = compose_config("evaluate", [*DATA, f"data.fasta={fasta}", f"checkpoints=[{checkpoint}]", f"split={split}",
                                      "num_samples=2", "markov_orders=[0,1,2]", "device=cpu",
                                      f"output_dir={tmp_path / name}"])
    evaluate.run(cfg)
    return tmp_path / name / "results.json"


# ----------------------------------------------------------------------------------------------- listing
def test_listing_bundled_and_local_exports(bundled, run_folder, tmp_path):
    folder, model = bundled
    run, _ = run_folder
    outputs = tmp_path / "outputs_like"
    make_export(outputs / "a" / "export", seed=4)
    make_export(outputs / ".export.tmp1", seed=5)  # a save_export staging folder: skipped
    (outputs / "broken").mkdir()
    (outputs / "broken" / E.CONFIG_NAME).write_text('{"format": "other"}')
    (outputs / "broken" / E.WEIGHTS_NAME).write_bytes(b"")
    future, _ = make_export(outputs / "future" / "export", seed=6)  # a backbone this genodiff does not know
    spec = json.loads((future / E.CONFIG_NAME).read_text())
    spec["model"]["name"] = "hyena_2030"
    (future / E.CONFIG_NAME).write_text(json.dumps(spec))
    listing = M.list_models(outputs, card_lines=2)
    (row,) = listing["bundled"]
    assert row["name"] == E.DEFAULT_MODEL and row["default"] and row["kind"] == "bundled"
    assert row["parameters"] == sum(p.numel() for p in model.parameters())
    assert row["digest"] == "sha256:" + _sha(folder / E.WEIGHTS_NAME)[:16]
    assert row["steps"] == 11 and row["tokens"] is None  # a bundled export without recorded tokens
    assert row["card_head"] == [f"# {E.DEFAULT_MODEL}", "A card line."]
    assert [r["path"] for r in listing["local"]] == [str(outputs / "a" / "export"), str(future)]
    assert listing["local"][0]["card"] is None and not listing["local"][0]["default"]
    assert listing["local"][0]["parameters"] == row["parameters"] and listing["local"][1]["parameters"] is None
    text = M.format_listing(listing)
    assert f"  {E.DEFAULT_MODEL}  [default" in text and "A card line." in text and "More." not in text
    assert str(outputs / "a" / "export") in text and "card        (none)" in text
    assert "hyena_2030 (d_model=8" in text and "? parameters" in text
    # tokens of a local run folder: steps x global batch x window from its .hydra/config.yaml
    local = M.list_models(run.parent, card_lines=0)["local"]
    assert [r["tokens"] for r in local if r["path"] == str(run / "export")] == [9 * 4 * 64]
    # no search folder: bundled only; a missing folder: none
    assert M.list_models(None)["local"] == [] and M.list_models(None)["search"] is None
    assert M.list_models(tmp_path / "nowhere")["local"] == []


def test_show_prints_cards_and_facts(bundled, run_folder):
    folder, _ = bundled
    run, _ = run_folder
    card = (folder / E.CARD_NAME).read_text()
    assert M.show_card(E.DEFAULT_MODEL) == card
    assert M.show_card(f"bundled:{E.DEFAULT_MODEL}") == card
    assert M.show_card(None) == card
    facts = M.show_card(str(run))
    assert facts.startswith(f"{run / 'export'}: no {E.CARD_NAME}")
    assert "9 steps, 2,304 tokens" in facts and "card        (none)" in facts
    with pytest.raises(InputError, match="no bundled model 'nope'"):
        M.show_card("bundled:nope")
    with pytest.raises(InputError, match=r"^target: 'nope' is neither a bundled model \(bundled: caduceus-ps-tiny"):
        M.show_card("nope")
    with pytest.raises(InputError, match="action: 'bogus'"):
        M.run(job_config("models", action="bogus"))
    with pytest.raises(InputError, match="target: only for"):
        M.run(job_config("models", target="x"))


def test_cli_models_list_and_show(bundled, tmp_path, capsys):
    assert main(["models", f"search={tmp_path / 'none'}", "card_lines=1"]) == 0
    out = capsys.readouterr().out
    assert E.DEFAULT_MODEL in out and "local exports under" in out and "(none)" in out
    assert main(["models", "show", E.DEFAULT_MODEL]) == 0
    assert capsys.readouterr().out == (bundled[0] / E.CARD_NAME).read_text()
    assert main(["models", "show", "bundled:nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("genodiff: error: checkpoint: no bundled model 'nope'")
    assert main(["models", "bogus"]) == 2


# ---------------------------------------------------------------------------------------------- bundling
def test_bundle_export_writes_a_card_of_facts(run_folder, tmp_path, monkeypatch):
    run, fasta = run_folder
    root = use_bundled_dir(monkeypatch, tmp_path / "pkg_models")
    results = _evaluate(tmp_path, run / "export", fasta)
    measured = json.loads(results.read_text())
    folder = M.bundle_export(run, E.DEFAULT_MODEL, evaluate=results, data_note="Random test genome (no licence).",
                             facts=["machine: a test"])
    assert folder == root / E.DEFAULT_MODEL
    assert sorted(p.name for p in folder.iterdir()) == sorted([E.WEIGHTS_NAME, E.CONFIG_NAME, E.CARD_NAME])
    assert [p.name for p in root.iterdir()] == [E.DEFAULT_MODEL]  # no staging folder left
    assert (folder / E.WEIGHTS_NAME).read_bytes() == (run / "export" / E.WEIGHTS_NAME).read_bytes()
    loaded = E.load_model(None, "cpu")
    assert loaded.checkpoint == f"bundled:{E.DEFAULT_MODEL}"
    spec = E.read_spec(folder)
    assert spec["training"]["tokens"] == 9 * 4 * 64 and spec["training"]["window"] == 64
    card = (folder / E.CARD_NAME).read_text()
    assert card.startswith(f"# {E.DEFAULT_MODEL}\n")
    assert _sha(folder / E.WEIGHTS_NAME) in card and loaded.digest in card
    assert "Random test genome (no licence)." in card and "- machine: a test" in card
    assert "genodiff pretrain experiment/pretrain=demo model=caduceus_tiny model.d_model=8" in card
    assert "- train: `chrT:0-3,500` (3,500 bp)" in card and "- test: `chrT:4,000-5,000` (1,000 bp)" in card
    assert "| training tokens | 2,304 (steps x batch x window) |" in card
    assert "| wall-clock time of the fit | 12 s" in card and "val/nelbo 1.2500" in card and "train/loss" not in card
    model_row = next(r for r in measured["rows"] if r["kind"] == "model")
    assert f"| this model | upper bound | {model_row['bits_per_base']:.4f} | " \
           f"{model_row['bits_per_base_stderr']:.4f} |" in card
    for row in (r for r in measured["rows"] if r["kind"] == "markov"):
        assert f"| {row['model']} | exact | {row['bits_per_base']:.4f} | |" in card
    assert "Not measured" not in card and "{" not in card.split("```yaml")[0]  # every placeholder filled
    listing = M.list_models(None)["bundled"][0]
    assert listing["tokens"] == 2304 and listing["card_head"][0] == f"# {E.DEFAULT_MODEL}"


def test_bundle_refuses_numbers_that_are_not_held_out_or_not_these_weights(run_folder, tmp_path, monkeypatch):
    run, fasta = run_folder
    root = use_bundled_dir(monkeypatch, tmp_path / "pkg_models")
    note = "Random test genome."
    other, _ = make_export(tmp_path / "other" / "export", seed=8)
    wrong_weights = _evaluate(tmp_path, other, fasta, name="eval_other")
    with pytest.raises(InputError, match="no model row evaluates these weights"):
        M.bundle_export(run, "m", evaluate=wrong_weights, data_note=note)
    on_train = _evaluate(tmp_path, run / "export", fasta, split="train", name="eval_train")
    with pytest.raises(InputError, match="overlaps the training split by 3,500 bp"):
        M.bundle_export(run, "m", evaluate=on_train, data_note=note)
    with pytest.raises(InputError, match="no data and licence note"):
        M.bundle_export(run, "m")
    with pytest.raises(InputError, match="more than max_mb"):
        M.bundle_export(run, "m", data_note=note, max_mb=0.001)
    with pytest.raises(InputError, match="no .hydra/config.yaml"):
        M.bundle_export(tmp_path / "other", "m", data_note=note)  # a run folder without .hydra/
    other_run = tmp_path / "other_run"  # a config that is not this export's run (another model)
    make_export(other_run / "export", seed=3)
    (other_run / ".hydra").mkdir()
    OmegaConf.save(compose_config("pretrain", ["experiment/pretrain=demo", *DATA, f"data.fasta={fasta}"]),
                   other_run / ".hydra" / "config.yaml")
    with pytest.raises(InputError, match=r"is not the run of this export \(model "):
        M.bundle_export(other_run, "m", data_note=note)
    with_folder, _ = make_export(tmp_path / "text_like" / "export", seed=3)
    (with_folder / "tokenizer").mkdir()  # a text export: not shippable by the package-data globs
    with pytest.raises(InputError, match="a bundled model is files only"):
        M.bundle_export(with_folder, "m", data_note=note)
    with pytest.raises(InputError, match="name: 'a b'"):
        M.bundle_export(run, "a b", data_note=note)
    assert not root.exists() or list(root.iterdir()) == []  # nothing installed by a refused bundle
    # without an evaluation the card says so instead of inventing numbers
    card = (M.bundle_export(run, "m", data_note=note) / E.CARD_NAME).read_text()
    assert "Not measured" in card and "| this model |" not in card


def test_known_data_gets_its_licence_note_and_the_script_runs(tmp_path, monkeypatch, capsys):
    """The chr2 slice's file name selects the hg38/UCSC note; perf/bundle_model.py wraps bundle_export."""
    monkeypatch.setenv("GENODIFF_DATA", str(tmp_path / "cache"))
    plain = _random_fasta(tmp_path / "plain.fa", 5000)
    gz = tmp_path / "chr2_1-2000000.fa.gz"  # the name of the shared chr2 slice, random content
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    run = tmp_path / "run"
    make_export(run / "export", seed=3)
    config = tmp_path / "hydra_elsewhere" / "config.yaml"  # a run with output_dir=: Hydra's own folder
    config.parent.mkdir()
    OmegaConf.save(compose_config("pretrain", ["experiment/pretrain=demo", *TINY_MODEL, *DATA, f"data.fasta={gz}"]),
                   config)
    (config.parent / "overrides.yaml").write_text("- experiment/pretrain=chr2_slice\n")
    spec = importlib.util.spec_from_file_location("bundle_model", REPO / "perf" / "bundle_model.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    dest = tmp_path / "dest"
    assert script.main([str(run), "--name", "m", "--dest", str(dest)]) == 2  # no config next to this run
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("genodiff: error: config: no .hydra/config.yaml")
    assert script.main([str(run), "--name", "m", "--dest", str(dest), "--config", str(config)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["path"] == str(dest / "m") and printed["tokens"] == 7 * int(OmegaConf.load(config).global_batch_size) * 64
    card = (dest / "m" / E.CARD_NAME).read_text()
    assert "GCA_000001405.15" in card and "https://genome.ucsc.edu/conditions.html" in card
    assert "genodiff pretrain experiment/pretrain=chr2_slice" in card


# ------------------------------------------------------------------------------- sample / score default
def test_sample_and_score_without_checkpoint_use_the_bundled_model(bundled, tmp_path):
    from Bio import SeqIO

    from genodiff.tasks import sample, score

    folder, _ = bundled
    digest = "sha256:" + _sha(folder / E.WEIGHTS_NAME)[:16]
    base = {"num_samples": 2, "length": 32, "steps": 4, "batch_size": 2, "progress": False, "device": "cpu"}
    sample.run(job_config("sample", output_dir=str(tmp_path / "s"), **base))
    (rec, _) = SeqIO.parse(str(tmp_path / "s" / "samples.fa"), "fasta")
    assert f" model={E.DEFAULT_MODEL} checkpoint={digest} " in rec.description + " "
    side = json.loads((tmp_path / "s" / "samples.json").read_text())
    assert side["model"]["name"] == E.DEFAULT_MODEL and side["model"]["digest"] == digest
    assert side["model"]["checkpoint"] == f"bundled:{E.DEFAULT_MODEL}"
    # negative control: an explicit local checkpoint is named as itself
    local, _ = make_export(tmp_path / "local_export", seed=9)
    sample.run(job_config("sample", output_dir=str(tmp_path / "s2"), checkpoint=str(local), **base))
    side2 = json.loads((tmp_path / "s2" / "samples.json").read_text())
    assert side2["model"]["checkpoint"] == str(local) and side2["model"]["digest"] != digest
    fa = _random_fasta(tmp_path / "in.fa", 48, seed=4, name="r1")
    score.run(job_config("score", input=str(fa), output_dir=str(tmp_path / "sc"), num_samples=2, progress=False,
                       device="cpu"))
    tsv = (tmp_path / "sc" / "scores.tsv").read_text()
    assert f"model={E.DEFAULT_MODEL} checkpoint={digest}" in tsv.splitlines()[0]
    # text has no bundled model
    with pytest.raises(InputError, match="no text model is bundled"):
        sample.run(job_config("sample", kind="text", output_dir=str(tmp_path / "t"), **base))
