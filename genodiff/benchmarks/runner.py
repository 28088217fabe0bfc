"""Run methods over splits (folds or seeds), serially or in parallel worker processes.

A *method spec* is a plain dict (picklable, recorded verbatim in results.json)::

    {"kind": "kmer_lr", "label": "k-mer LR", "ks": [3,4,5,6], "Cs": [0.01, 0.1, 1.0]}
    {"kind": "cnn", "label": "CNN", "train": {...trainer keys...}}
    {"kind": "neural", "label": "Caduceus", "name": "caduceus", "config": {...}, "init": null,
     "pooling": "mean", "rc": "ps", "train": {...}}

Every unit is ``fit(train, val)`` then ``predict_proba(test)``: the test part never reaches ``fit`` (and
thus never reaches early stopping or hyper-parameter choice). The tokenized set is built once; units get
index subsets of it.
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
from genodiff.benchmarks.kmer import KmerLogReg
from genodiff.benchmarks.metrics import classification_metrics
from genodiff.data.progress import progress_bar
from genodiff.errors import InputError

__all__ = ["build_method", "run_units", "TRAIN_KEYS"]

TRAIN_KEYS = ("lr", "weight_decay", "batch_size", "max_steps", "warmup_steps", "min_lr_ratio", "eval_every",
              "patience", "rc_augment", "max_epochs", "eval_batch_size", "grad_clip")


def build_method(spec: dict, seed: int, progress: bool = False):
    """Instantiate the fit/predict object of a method spec."""
    kind = spec.get("kind")
    if kind == "kmer_lr":
        return KmerLogReg(ks=spec.get("ks", (3, 4, 5, 6)), Cs=spec.get("Cs", (0.01, 0.1, 1.0)),
                          max_iter=spec.get("max_iter", 300), seed=seed)
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
    raise InputError(f"methods: unknown kind {kind!r} (kmer_lr, cnn, neural)")


def _run_unit(spec: dict, split: Split, train_set: LabeledSet, test_set: LabeledSet, threads: int,
              progress: bool = False, builder: Optional[Callable] = None) -> dict:
    if threads and (spec.get("kind") != "kmer_lr" or "torch" in sys.modules):
        import torch  # not imported for k-mer-only workers (faster worker start)

        torch.set_num_threads(int(threads))
    t0 = time.time()
    method = (builder or build_method)(spec, split.seed, progress)
    tr, va, te = train_set.subset(split.train), train_set.subset(split.val), test_set.subset(split.test)
    method.fit(tr, va)
    proba = np.asarray(method.predict_proba(te), dtype=np.float64)
    metrics = classification_metrics(te.labels, proba, len(te.classes))
    info = dict(getattr(method, "info", {}) or {})
    return {"method": spec.get("label", spec.get("kind")), "split": split.name, "seed": split.seed,
            "test_index": split.test.tolist(), "y_true": te.labels.tolist(), "proba": proba.tolist(),
            "metrics": metrics, "info": info, "seconds": round(time.time() - t0, 2),
            "n_train": len(tr), "n_val": len(va), "n_test": len(te)}


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
    torch threads, default ``cpus // n_jobs``). In-process runs change the thread count only when
    ``torch_threads`` is given. Results come back in (spec, split) order.
    """
    units = [(s, sp) for s in specs for sp in splits]
    jobs = resolve_jobs(n_jobs, len(units))
    threads = int(torch_threads) if torch_threads else max(1, _cpu_count() // jobs)
    bar = progress_bar(len(units), "benchmark", progress and sys.stderr.isatty())
    results = []

    def done(r):
        bar.update(1)
        if log:
            print(f"[{len(results)}/{len(units)}] {r['method']} {r['split']}: accuracy "
                  f"{r['metrics']['accuracy']:.4f} ({r['seconds']:.0f} s)", flush=True)

    if jobs == 1 or builder is not None:
        for spec, sp in units:
            results.append(_run_unit(spec, sp, sets[sp.train_set], sets[sp.test_set],
                                     int(torch_threads or 0), progress, builder))
            done(results[-1])
    else:
        ctx = mp.get_context(start_method)
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futures = [pool.submit(_run_unit, spec, sp, sets[sp.train_set], sets[sp.test_set], threads)
                       for spec, sp in units]
            for f in futures:
                results.append(f.result())
                done(results[-1])
    bar.close()
    return results
