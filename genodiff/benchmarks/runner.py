"""Run methods over splits (folds or seeds), serially or in parallel worker processes.

A *method spec* is a plain dict (picklable, recorded verbatim in results.json)::

    {"kind": "kmer_lr", "label": "k-mer LR (tuned)", "ks": [3,4,5,6,7], "Cs": [1e-5, ..., 10], ...}
    {"kind": "gkm_svm", "label": "gkm-SVM (l=7, k=4)", "l": 7, "k": 4, "Cs": [...], "kernels": [...]}
    {"kind": "sk_kmer", "label": "sklearn 4-mer counts + LR (C=0.001)", "k": 4, "C": 0.001}
    {"kind": "cnn", "label": "CNN", "train": {...trainer keys...}}
    {"kind": "neural", "label": "Caduceus", "name": "caduceus", "config": {...}, "init": null,
     "pooling": "mean", "rc": "ps", "train": {...}}

Every unit is ``fit(train, val)`` then ``predict_proba(test)``: the test part never reaches ``fit`` (and
thus never reaches early stopping or hyper-parameter choice). The tokenized set is built once; units get
index subsets of it. Grid-search baselines (``GRID_KINDS``: kmer_lr, gkm_svm) instead get the whole set and
the index arrays (``fit_indexed(set, train, val)``, ``predict_proba_indexed(set, test)``) so that their
features / Gram matrix are computed once per task; they run in this process, one unit after the other,
each searching its grid with ``n_jobs`` threads, before the other units go to the worker processes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Optional

import numpy as np

from genodiff.benchmarks.datasets import LabeledSet
from genodiff.benchmarks.folds import Split
from genodiff.benchmarks.gkm import GkmSVM
from genodiff.benchmarks.kmer import DEFAULT_CS, VIEWS, KmerLogReg
from genodiff.benchmarks.metrics import classification_metrics
from genodiff.benchmarks.plain import SklearnKmerLR
from genodiff.data.progress import progress_bar
from genodiff.errors import InputError

__all__ = ["build_method", "run_units", "TRAIN_KEYS", "GRID_KINDS"]

#: methods that take the whole labeled set + index arrays and search their grid in parallel threads
GRID_KINDS = ("kmer_lr", "gkm_svm")

TRAIN_KEYS = ("lr", "weight_decay", "batch_size", "max_steps", "warmup_steps", "min_lr_ratio", "eval_every",
              "patience", "rc_augment", "max_epochs", "eval_batch_size", "grad_clip")


def build_method(spec: dict, seed: int, progress: bool = False, n_jobs: int = 1):
    """Instantiate the fit/predict object of a method spec (``n_jobs``: threads of a grid search)."""
    kind = spec.get("kind")
    if kind == "kmer_lr":
        return KmerLogReg(ks=spec.get("ks", (3, 4, 5, 6, 7)), Cs=spec.get("Cs", DEFAULT_CS),
                          features=spec.get("features", VIEWS), canonical=spec.get("canonical", (False, True)),
                          combine=spec.get("combine", True), max_iter=spec.get("max_iter", 1000),
                          grid_max_iter=spec.get("grid_max_iter", 100), refit=spec.get("refit", True),
                          cv_below=spec.get("cv_below", 2000), select=spec.get("select", "log_loss"), n_jobs=n_jobs,
                          seed=seed)
    if kind == "gkm_svm":
        return GkmSVM(l=spec.get("l", 7), k=spec.get("k", 4), Cs=spec.get("Cs", (0.1, 1.0, 10.0, 100.0)),
                      kernels=spec.get("kernels", ("linear", "rbf")), gamma=spec.get("gamma", 1.0),
                      exact_max=spec.get("exact_max", 8000), n_components=spec.get("n_components", 3000),
                      gram_max=spec.get("gram_max", 12000), cv_below=spec.get("cv_below", 2000), n_jobs=n_jobs,
                      seed=seed)
    if kind == "sk_kmer":
        return SklearnKmerLR(k=spec.get("k", 4), C=spec.get("C", 1e-3), max_iter=spec.get("max_iter", 1000),
                             seed=seed)
    train = {k: v for k, v in dict(spec.get("train") or {}).items() if k in TRAIN_KEYS}
    unknown = set(dict(spec.get("train") or {})) - set(TRAIN_KEYS)
    if unknown:
        raise InputError(f"methods.{spec.get('label', kind)}.train: unknown key(s) {', '.join(sorted(unknown))}")
    # torch (through neural) is imported only when a neural method runs: 1.7 s less start-up per k-mer worker
    from genodiff.benchmarks.neural import GBCNN, BackboneClassifier, TorchMethod, load_backbone

    if kind == "cnn":
        cnn = dict(spec.get("cnn") or {})

        def factory(data):
            return GBCNN(int(spec.get("seq_len") or data.ids.shape[1]), len(data.classes), **cnn)
        return TorchMethod(spec.get("label", "cnn"), factory, seed=seed, progress=progress, **train)
    if kind == "neural":
        def factory(data):
            backbone, desc = load_backbone(spec.get("name"), spec.get("config"), spec.get("init"), seed=seed)
            factory.desc = desc
            return BackboneClassifier(backbone, len(data.classes), pooling=spec.get("pooling", "mean"),
                                      rc=spec.get("rc", "none"), dropout=float(spec.get("dropout", 0.0)))
        return TorchMethod(spec.get("label", "neural"), factory, seed=seed, progress=progress, **train)
    raise InputError(f"methods: unknown kind {kind!r} (kmer_lr, gkm_svm, sk_kmer, cnn, neural)")


CLASSICAL_KINDS = GRID_KINDS + ("sk_kmer",)


def _run_unit(spec: dict, split: Split, train_set: LabeledSet, test_set: LabeledSet, threads: int,
              progress: bool = False, builder: Optional[Callable] = None, grid_jobs: int = 1) -> dict:
    if threads and (spec.get("kind") not in CLASSICAL_KINDS or "torch" in sys.modules):
        import torch  # not imported for k-mer-only workers (faster worker start)

        torch.set_num_threads(int(threads))
    t0 = time.time()
    if builder is not None:
        method = builder(spec, split.seed, progress)
    else:
        method = build_method(spec, split.seed, progress, n_jobs=grid_jobs)
    te_labels = test_set.labels[split.test]
    if hasattr(method, "fit_indexed"):
        method.fit_indexed(train_set, split.train, split.val)
        proba = method.predict_proba_indexed(test_set, split.test)
    else:
        method.fit(train_set.subset(split.train), train_set.subset(split.val))
        proba = method.predict_proba(test_set.subset(split.test))
    proba = np.asarray(proba, dtype=np.float64)
    metrics = classification_metrics(te_labels, proba, len(test_set.classes))
    info = dict(getattr(method, "info", {}) or {})
    return {"method": spec.get("label", spec.get("kind")), "split": split.name, "seed": split.seed,
            "test_index": split.test.tolist(), "y_true": te_labels.tolist(), "proba": proba.tolist(),
            "metrics": metrics, "info": info, "seconds": round(time.time() - t0, 2),
            "n_train": len(split.train), "n_val": len(split.val), "n_test": len(split.test)}


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def resolve_jobs(n_jobs, n_units: int) -> int:
    cpus = _cpu_count()
    if n_jobs in (None, "auto", 0):
        n = min(cpus, n_units)
    else:
        n = int(n_jobs)
        if n < 0:
            n = max(1, cpus + 1 + n)
    return max(1, min(n, n_units))


def run_units(specs: list, splits: list, sets: dict, n_jobs=1, progress: bool = False,
              builder: Optional[Callable] = None, start_method: str = "spawn",
              torch_threads: Optional[int] = None, log: bool = False) -> list:
    """Run every (method spec, split) pair. ``sets``: ``{name: LabeledSet}`` referenced by the splits.

    ``n_jobs`` > 1 runs units in worker processes (``start_method``; each worker uses ``torch_threads``
    torch threads, default ``cpus // n_jobs``); grid-search baselines (``GRID_KINDS``) run here first, each
    with ``n_jobs`` threads. In-process runs change the thread count only when ``torch_threads`` is given.
    Results come back in (spec, split) order.
    """
    units = [(s, sp) for s in specs for sp in splits]
    grid_jobs = resolve_jobs(n_jobs, 1 << 30)
    pooled = [i for i, (s, _) in enumerate(units) if s.get("kind") not in GRID_KINDS]
    jobs = resolve_jobs(n_jobs, max(1, len(pooled)))
    threads = int(torch_threads) if torch_threads else max(1, _cpu_count() // jobs)
    bar = progress_bar(len(units), "benchmark", progress and sys.stderr.isatty())
    results: dict = {}

    def done(i, r):
        results[i] = r
        bar.update(1)
        if log:
            print(f"[{len(results)}/{len(units)}] {r['method']} {r['split']}: accuracy "
                  f"{r['metrics']['accuracy']:.4f} ({r['seconds']:.0f} s)", flush=True)

    local = [i for i in range(len(units)) if i not in set(pooled) or jobs == 1 or builder is not None]
    for i in local:
        spec, sp = units[i]
        done(i, _run_unit(spec, sp, sets[sp.train_set], sets[sp.test_set], int(torch_threads or 0), progress,
                          builder, grid_jobs))
    rest = [i for i in pooled if i not in results]
    if rest:
        ctx = mp.get_context(start_method)
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futures = {i: pool.submit(_run_unit, units[i][0], units[i][1], sets[units[i][1].train_set],
                                      sets[units[i][1].test_set], threads) for i in rest}
            for i, f in futures.items():
                done(i, f.result())
    bar.close()
    return [results[i] for i in range(len(units))]
