"""The benchmark task end to end on small generated data: report files, label mapping, protocols, suite,
bad inputs (one line, nothing half-written), parallel == serial, and the CLI when registered."""

from __future__ import annotations

import csv
import json
import shlex
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_module

from genodiff.errors import InputError
from genodiff.tasks.benchmark import run

from bench_helpers import motif_csv, motif_dataset, write_gb_folder

FAST = ["progress=false", "n_jobs=1", "kmer_lr.ks=[2,3]", "kmer_lr.Cs=[1.0]",
        "kmer_lr.cv_below=0", "gkm_svm.l=5", "gkm_svm.k=3", "gkm_svm.Cs=[1.0]", "gkm_svm.kernels=[linear]",
        "cnn.train.max_steps=6", "cnn.train.eval_every=3", "cnn.train.batch_size=16",
        "train.max_steps=2", "train.eval_every=1", "train.batch_size=16", "train.warmup_steps=1",
        "model.d_model=8", "model.n_layer=1"]


def compose_cfg(overrides):
    with initialize_config_module("genodiff.configs", version_base="1.3"):
        return compose("benchmark", overrides=overrides)


def test_config_composes_with_presets():
    cfg = compose_cfg(["task=x", "benchmark/preset=cpu", "model=caduceus_ph", "model.init=/ckpt"])
    assert cfg.data.subsample == 2000 and cfg.train.max_steps == 200
    assert cfg.model.name == "caduceus_ph" and cfg.model.rc == "auto" and cfg.model.init == "/ckpt"
    from genodiff.tasks.benchmark import method_specs

    specs = method_specs(cfg)
    assert [s["kind"] for s in specs] == ["kmer_lr", "gkm_svm", "cnn", "neural"]
    spec = specs[3]
    assert spec["name"] == "caduceus_ph" and spec["config"] == {"d_model": 118, "n_layer": 4}
    assert spec["init"] == "/ckpt" and spec["label"] == "caduceus_ph 118x4 [ckpt]"
    kmer = specs[0]
    assert kmer["ks"] == [3, 4, 5, 6, 7] and kmer["Cs"][0] == 1e-5 and kmer["Cs"][-1] == 10.0
    assert kmer["features"] == ["count", "freq", "tfidf"] and kmer["canonical"] == [False, True]
    plain = method_specs(compose_cfg(["task=x", "methods=[sk_kmer]", "sk_kmer.ks=[4,6]", "sk_kmer.Cs=[0.001,1]"]))
    assert [s["label"] for s in plain] == [f"sklearn {k}-mer counts + LR (C={c})" for k in (4, 6)
                                           for c in ("0.001", "1")]


def test_cv_report_files(tmp_path):
    data = motif_csv(tmp_path, 60)
    out = tmp_path / "out"
    res = run(compose_cfg([f"task={data}", f"output_dir={out}", "cv.folds=3", *FAST]))
    assert res["protocol"] == "cv" and res["label_map"] == {"0": 0, "1": 1}
    for name in ("report.md", "results.csv", "results.json", "predictions.csv", "per_fold.png", "summary.png",
                 "confusion_m0.png", "roc_m0.png", "confusion_m3.png"):
        assert (out / name).is_file(), name
    assert not list(out.glob(".staging-*"))
    payload = json.loads((out / "results.json").read_text())
    assert payload["label_map"] == {"0": 0, "1": 1}
    assert payload["config"]["seed"] == 0 and payload["config"]["cv"]["folds"] == 3
    assert "versions" in payload["environment"] and "git" in payload["environment"]
    assert len(payload["units"]) == 12
    rows = list(csv.DictReader((out / "results.csv").open()))
    methods = {r["method"] for r in rows}
    assert len(methods) == 4
    kmer = [r for r in rows if r["method"].startswith("k-mer")]
    folds = [float(r["accuracy"]) for r in kmer if r["split"].startswith("fold")]
    half = [float(r["accuracy"]) for r in kmer if r["split"] == "half_range"][0]
    assert half == pytest.approx((max(folds) - min(folds)) / 2, abs=1e-6)
    report = (out / "report.md").read_text()
    assert "| 0 | `0` |" in report and "| 1 | `1` |" in report
    # the chosen hyper-parameters of the grid-search baselines, per fold, in the report and results.json
    assert "### Model selection (inner validation split only)" in report
    kmer_units = [u for u in payload["units"] if u["method"].startswith("k-mer")]
    assert all(set(u["info"]["choice"]) == {"k", "features", "canonical", "C"} for u in kmer_units)
    assert all(u["info"]["grid"] for u in kmer_units)
    assert "![summary](summary.png)" in report and "![per_fold](per_fold.png)" in report
    preds = list(csv.DictReader((out / "predictions.csv").open()))
    idx = sorted(int(r["test_index"]) for r in preds if r["method"].startswith("k-mer"))
    assert idx == list(range(60))  # every record predicted exactly once across folds


def test_gb_folder_paper_protocol_and_suite(tmp_path):
    seqs, labels = motif_dataset(60, 30, seed=4)
    neg = [s for s, y in zip(seqs, labels) if y == 0]
    pos = [s for s, y in zip(seqs, labels) if y == 1]
    root = write_gb_folder(tmp_path / "toy_task", {"train": {"positive": pos[:20], "negative": neg[:20]},
                                                   "test": {"negative": neg[20:], "positive": pos[20:]}})
    out = tmp_path / "paper"
    res = run(compose_cfg([f"task={root}", f"output_dir={out}", "methods=[kmer_lr]", "paper.seeds=[0,1]", *FAST]))
    assert res["protocol"] == "paper" and res["label_map"] == {"negative": 0, "positive": 1}
    payload = json.loads((out / "results.json").read_text())
    assert [u["split"] for u in payload["units"]] == ["seed0", "seed1"]
    assert all(u["n_test"] == 20 and u["n_train"] + u["n_val"] == 40 for u in payload["units"])
    # suite over two tasks
    other = motif_csv(tmp_path, 40)
    out2 = tmp_path / "suite"
    res = run(compose_cfg(["task=suite", f"output_dir={out2}", f"suite.tasks=[{root},{other}]",
                           "methods=[kmer_lr]", "cv.folds=2", "paper.seeds=[0]", *FAST]))
    assert (out2 / "suite.md").is_file() and (out2 / "suite.csv").is_file()
    assert (out2 / "toy_task" / "report.md").is_file() and (out2 / "motif" / "report.md").is_file()
    table = (out2 / "suite.md").read_text()
    assert "Caduceus-PS (published)" in table and "toy_task" in table


@pytest.mark.parametrize("overrides, match", [
    (["task=/definitely/not/here.csv"], "not a known task"),
    (["task=null"], "missing task"),
    (["protocol=bogus"], "protocol must be"),
    (["methods=[svm]"], "unknown method"),
    (["data.label_column=nope"], "missing label column 'nope'"),
    (["protocol=paper"], "protocol=paper needs official train and test"),
])
def test_bad_inputs_one_line_nothing_written(tmp_path, overrides, match):
    data = motif_csv(tmp_path, 40)
    out = tmp_path / "out"
    with pytest.raises(InputError, match=match) as e:
        run(compose_cfg([f"task={data}", f"output_dir={out}", *FAST, *overrides]))
    assert "\n" not in str(e.value)
    assert not out.exists() or not any(out.iterdir())


def test_failure_mid_run_leaves_no_report(tmp_path, monkeypatch):
    from genodiff.benchmarks import report

    data = motif_csv(tmp_path, 40)
    out = tmp_path / "out"

    def boom(*a, **k):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(report, "_plots", boom)
    with pytest.raises(RuntimeError):
        run(compose_cfg([f"task={data}", f"output_dir={out}", "methods=[kmer_lr]", "cv.folds=2", *FAST]))
    assert not any(out.iterdir())


def test_parallel_equals_serial(tmp_path):
    data = motif_csv(tmp_path, 60)
    res = {}
    for jobs in (1, 2):
        out = tmp_path / f"j{jobs}"
        r = run(compose_cfg([f"task={data}", f"output_dir={out}", "methods=[kmer_lr,gkm_svm,sk_kmer]", "cv.folds=2",
                             *FAST, "gkm_svm.Cs=[0.1,10]", "kmer_lr.Cs=[0.01,1]", "sk_kmer.ks=[3]",
                             "sk_kmer.Cs=[0.1]", f"n_jobs={jobs}"]))
        res[jobs] = r["summary"]
    assert res[1] == res[2]


def _cli_registered() -> bool:
    from genodiff import cli

    return "benchmark" in getattr(cli, "JOBS", {})


@pytest.mark.skipif(not _cli_registered(), reason="benchmark job not registered in genodiff/cli.py yet")
def test_cli(tmp_path):
    data = motif_csv(tmp_path, 40)
    out = tmp_path / "cli"
    proc = subprocess.run([sys.executable, "-m", "genodiff.cli", "benchmark", str(data), "methods=[kmer_lr]",
                           "cv.folds=2", f"hydra.run.dir={out}", *FAST], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (out / "report.md").is_file()
    bad = subprocess.run([sys.executable, "-m", "genodiff.cli", "benchmark", str(tmp_path / "missing.csv")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0
    assert bad.stderr.startswith("genodiff: error:")


def test_cli_honours_output_dir(tmp_path):
    """Like every job, the benchmark writes into output_dir= when given (not into Hydra's run folder)."""
    data = motif_csv(tmp_path, 40)
    out, hydra_dir = tmp_path / "chosen", tmp_path / "hydra dir"
    args = [str(data), "methods=[kmer_lr]", "cv.folds=2", f"output_dir={out}", "cv.duplicates=keep",
            "benchmark/preset=cpu", f"hydra.run.dir={hydra_dir}", *FAST]
    proc = subprocess.run([sys.executable, "-m", "genodiff.cli", "benchmark", *args],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (out / "report.md").is_file()
    assert not (hydra_dir / "report.md").exists()
    # the reproduce command at the top of the report is exact: every override in order (Hydra's own hydra.*
    # overrides last, which composes the same config), shell-quoted ("hydra dir" has a space)
    report = (out / "report.md").read_text().splitlines()
    command = report[report.index("Reproduce with:") + 3]
    hydra_args = [a for a in args if a.startswith("hydra.")]
    assert shlex.split(command) == ["genodiff", "benchmark", *[a for a in args if a not in hydra_args], *hydra_args]
    assert "'hydra.run.dir=" in command
    assert json.loads((out / "results.json").read_text())["command"] == command


def test_pretrained_vs_random_init_paired(tmp_path):
    """model.init=[random, <export>]: two neural methods on the same folds, compared split by split."""
    import torch

    from genodiff.interop.export import save_export
    from genodiff.models.registry import build_model

    cfg = {"d_model": 8, "n_layer": 1, "rcps": True}
    torch.manual_seed(3)
    export = save_export(build_model("caduceus", **cfg), {"model": {"name": "caduceus", **cfg},
                                                          "objective": {"name": "mdlm"}, "vocab": {"name": "dna"}},
                         tmp_path / "run" / "export")
    data = motif_csv(tmp_path, 60)
    out = tmp_path / "out"
    run(compose_cfg([f"task={data}", f"output_dir={out}", "cv.folds=3", *FAST, "methods=[neural]",
                     "model=caduceus_tiny", "model.d_model=8", "model.n_layer=1", f"model.init=[random,{export}]"]))
    payload = json.loads((out / "results.json").read_text())
    methods = sorted({u["method"] for u in payload["units"]})
    assert methods == ["caduceus 8x1 [random init]", "caduceus 8x1 [run/export]"]
    (pair,) = payload["paired"]
    assert (pair["a"], pair["b"]) == ("caduceus 8x1 [run/export]", "caduceus 8x1 [random init]")
    assert pair["splits"] == ["fold0", "fold1", "fold2"]
    acc = {m: {u["split"]: u["metrics"]["accuracy"] for u in payload["units"] if u["method"] == m} for m in methods}
    expect = [acc[pair["a"]][s] - acc[pair["b"]][s] for s in pair["splits"]]
    assert pair["metrics"]["accuracy"]["diff"] == pytest.approx(expect)
    report = (out / "report.md").read_text()
    assert "### Paired comparisons (same splits)" in report and "Wilcoxon" in report
    # the pretrained weights were really loaded: same folds, seeds and budget, yet different predictions
    preds = list(csv.DictReader((out / "predictions.csv").open()))
    by = {m: {(r["split"], r["test_index"]): r["p_1"] for r in preds if r["method"] == m} for m in methods}
    assert by[methods[0]].keys() == by[methods[1]].keys()
    assert by[methods[0]] != by[methods[1]]


def test_init_bundled_resolves_to_the_bundled_export(tmp_path, monkeypatch):
    import torch

    from genodiff.interop import export as E
    from genodiff.models.registry import build_model
    from genodiff.tasks.benchmark import method_specs

    root = tmp_path / "models"
    cfg = {"d_model": 8, "n_layer": 1, "rcps": True}
    torch.manual_seed(0)
    E.save_export(build_model("caduceus", **cfg), {"model": {"name": "caduceus", **cfg}, "objective": {"name": "mdlm"},
                                                   "vocab": {"name": "dna"}}, root / E.DEFAULT_MODEL)
    monkeypatch.setattr(E, "bundled_models_dir", lambda: root)
    specs = method_specs(compose_cfg(["task=x", "methods=[neural]", "model=caduceus_tiny",
                                      f"model.init=[random,bundled,bundled:{E.DEFAULT_MODEL}]"]))
    assert [s["init"] for s in specs] == [None, str(root / E.DEFAULT_MODEL), str(root / E.DEFAULT_MODEL)]
    assert specs[1]["label"].endswith("[bundled]") and specs[0]["label"].endswith("[random init]")
    with pytest.raises(InputError, match="no bundled model 'nope'"):
        method_specs(compose_cfg(["task=x", "methods=[neural]", "model.init=bundled:nope"]))


def test_suite_resumes_finished_tasks_with_the_same_settings(tmp_path, monkeypatch, capsys):
    """A suite rerun into the same output_dir reuses task reports written with the same settings (a killed suite
    continues), recomputes those whose settings changed, and writes the same suite table."""
    import genodiff.tasks.benchmark as B

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = motif_csv(tmp_path / "a", 40), motif_csv(tmp_path / "b", 40)
    out = tmp_path / "suite"
    base = ["task=suite", f"output_dir={out}", f"suite.tasks=[{a},{b}]", "methods=[kmer_lr]", "cv.folds=2", *FAST]
    run(compose_cfg(base))
    table = (out / "suite.md").read_text()
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["b_motif", "motif"]
    (out / "b_motif").rename(tmp_path / "b_report")  # as if the run had been killed during the second task
    calls = []
    real = B.run_task
    monkeypatch.setattr(B, "run_task", lambda cfg, task, folder, command: calls.append(task) or real(cfg, task, folder,
                                                                                                       command))
    run(compose_cfg(base + ["progress=true", "n_jobs=2"]))  # run-only keys may differ
    assert calls == [str(b)] and "reusing" in capsys.readouterr().out
    assert (out / "suite.md").read_text() == table
    calls.clear()
    run(compose_cfg(base + ["kmer_lr.Cs=[0.1]"]))  # a result setting changed: everything is recomputed
    assert calls == [str(a), str(b)]
    calls.clear()
    run(compose_cfg(base + ["kmer_lr.Cs=[0.1]", "suite.resume=false"]))
    assert calls == [str(a), str(b)]
