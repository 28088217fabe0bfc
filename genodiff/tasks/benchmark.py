"""``genodiff benchmark <task|path|suite> [key=value ...]``: genomic sequence classification benchmark.

``task`` is one of

* a Genomic Benchmarks task name (``human_nontata_promoters``, ...; files from ``genodiff data download
  gb_<task>``, or ``data.root=<folder>`` with the materialized ``{train,test}/<class>/*.txt`` layout);
* a task preset in ``configs/benchmark/tasks/<name>.yaml`` (e.g. ``gb_nontata_test``, ``gue_prom_core_all``);
* a path: a CSV/TSV/parquet file with sequence + label columns, a folder with split tables
  (``train.csv``, ``dev.csv``, ``test.csv``: GUE style) or a Genomic Benchmarks materialized folder;
* ``suite``: every task in ``suite.tasks``, plus one table in the papers' layout.

Protocols: ``cv`` (stratified k-fold on one labeled set, inner stratified train/val split per fold for early
stopping) and ``paper`` (per seed a 90/10 train/val split of the official train split, best checkpoint by val
accuracy, scored on the official test split). ``auto``: ``paper`` when the task has train and test splits.

Methods (``methods=[...]``): ``kmer_lr`` (tuned k-mer logistic regression), ``gkm_svm`` (gapped k-mer kernel
SVM), ``sk_kmer`` (plain scikit-learn pipelines, one per (k, C), for comparison), ``cnn`` (the GB CNN),
``neural`` (a genodiff backbone + head). Identical sequences on either strand are reported and, by default,
kept in one fold (``cv.duplicates=group|drop|keep``).

Outputs (``output_dir``, else the Hydra run dir): report.md (the exact reproduce command first), results.csv,
results.json, predictions.csv and PNG plots (summary of all methods, per split, confusion, ROC), written to a
staging folder and moved into place at the end.
"""

from __future__ import annotations

import json
import re
import shlex
from importlib import resources
from pathlib import Path
from typing import Optional

import numpy as np
import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from sklearn.model_selection import train_test_split

from genodiff.benchmarks import datasets as ds
from genodiff.benchmarks.datasets import _stem
from genodiff.benchmarks.duplicates import POLICIES, apply_policy, duplicate_report, format_duplicates
from genodiff.benchmarks.folds import cv_splits, has_duplicates, paper_splits
from genodiff.benchmarks.gb import GB_TASKS, load_gb_task
from genodiff.benchmarks.published import PUBLISHED, PUBLISHED_SOURCE, TASK_TITLES
from genodiff.benchmarks.report import fmt_pm, write_report, write_suite_report
from genodiff.benchmarks.runner import run_units
from genodiff.benchmarks.text_tasks import load_text_task, resolve_text_tokenizer
from genodiff.config import to_plain
from genodiff.data.manifest import shared_root
from genodiff.errors import InputError
from genodiff.interop.export import BUNDLED_PREFIX, resolve_export
from genodiff.ops import configure_from
from genodiff.tasks.run_folder import output_dir

__all__ = ["run", "load_task", "method_specs", "resolve_path"]

REPO_ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------- paths
def resolve_path(text: str) -> Path:
    """``shared:<rel>`` -> ``$GENODIFF_SHARED`` (default ``<repo>/../shared``)/<rel>; relative paths are
    tried against the working directory, then the repository root."""
    if text.startswith("shared:"):
        return shared_root() / text[len("shared:"):]
    p = Path(text).expanduser()
    if p.is_absolute() or p.exists():
        return p
    alt = REPO_ROOT / p
    return alt if alt.exists() else p


def _task_presets() -> dict:
    folder = resources.files("genodiff.configs").joinpath("benchmark").joinpath("tasks")
    if not folder.is_dir():
        return {}
    return {p.name[:-5]: p for p in folder.iterdir() if p.name.endswith(".yaml")}




# ------------------------------------------------------------------------------------------- data
def load_task(task: str, data_cfg: dict, cache_dir: Optional[str] = None):
    """Resolve ``task`` to ``(BenchmarkData, meta)``; ``meta`` has ``published`` (GB task name or None)."""
    data_cfg = dict(data_cfg or {})
    max_length = data_cfg.get("max_length")
    cols = dict(seq_column=data_cfg.get("seq_column"), label_column=data_cfg.get("label_column"),
                where=data_cfg.get("where"))
    presets = _task_presets()
    meta: dict = {"published": None, "title": task}
    if task in presets:
        with resources.as_file(presets[task]) as p:
            spec = yaml.safe_load(Path(p).read_text()) or {}
        unknown = set(spec) - {"path", "published", "title", "seq_column", "label_column", "where", "description"}
        if unknown:
            raise InputError(f"configs/benchmark/tasks/{task}.yaml: unknown key(s) {', '.join(sorted(unknown))}")
        for k in ("seq_column", "label_column", "where"):
            if spec.get(k) is not None and cols[k] is None:
                cols[k] = spec[k]
        meta.update(published=spec.get("published"), title=spec.get("title", task),
                    description=spec.get("description"))
        data, _ = load_task(str(resolve_path(spec["path"])), {**data_cfg, **cols}, cache_dir)
        data.name = task
        return data, meta
    if task in GB_TASKS:
        meta.update(published=task)

        meta["title"] = TASK_TITLES.get(task, task)
        root = data_cfg.get("root")
        if root:
            data = ds.load_gb_folder(resolve_path(str(root)), max_length)
            data.name = task
        else:
            data = load_gb_task(task, cache_dir, max_length)
        return data, meta
    path = resolve_path(task)
    if path.is_dir():
        if ds.is_gb_folder(path):
            data = ds.load_gb_folder(path, max_length)
        else:
            data = ds.load_split_folder(path, max_length=max_length, **cols)
        if data.name in GB_TASKS:
            meta["published"] = data.name
        return data, meta
    if path.is_file():
        return ds.load_table(path, max_length=max_length, **cols), meta
    known = sorted(set(GB_TASKS) | set(presets))
    raise InputError(f"task '{task}': not a known task ({', '.join(known)}, suite) and no such file or folder")


def _subsample(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    idx = np.arange(len(labels))
    if n is None or n >= len(labels):
        return idx
    keep, _ = train_test_split(idx, train_size=int(n), random_state=seed, shuffle=True, stratify=labels)
    return np.sort(keep)


# ------------------------------------------------------------------------------------------- methods
def method_specs(cfg: DictConfig) -> list:
    """Method spec dicts (see :mod:`genodiff.benchmarks.runner`) for ``cfg.methods``."""
    specs = []
    for name in list(cfg.methods):
        if name == "kmer_lr":
            k = to_plain(cfg.kmer_lr)
            specs.append({"kind": "kmer_lr", "label": "k-mer LR (tuned)", **k})
        elif name == "gkm_svm":
            g = to_plain(cfg.gkm_svm)
            specs.append({"kind": "gkm_svm", "label": f"gkm-SVM (l={g['l']}, k={g['k']})", **g})
        elif name == "sk_kmer":
            p = to_plain(cfg.sk_kmer)
            for k in p["ks"]:
                for C in p["Cs"]:
                    specs.append({"kind": "sk_kmer", "label": f"sklearn {k}-mer counts + LR (C={float(C):g})",
                                  "k": int(k), "C": float(C), "max_iter": p.get("max_iter", 1000)})
        elif name == "cnn":
            c = to_plain(cfg.cnn)
            specs.append({"kind": "cnn", "label": "CNN (GB baseline)", "cnn": c.get("net") or {},
                          "train": c.get("train") or {}})
        elif name == "neural":
            m = dict(to_plain(cfg.model))
            head = {k: m.pop(k, d) for k, d in (("init", None), ("pooling", "mean"), ("rc", "auto"),
                                                ("dropout", 0.0), ("label", None))}
            mname = m.pop("name", None)
            config = m.pop("config", None) or {}
            config.update(m)
            inits = head["init"] if isinstance(head["init"], (list, tuple)) else [head["init"]]
            base = head["label"] or _backbone_label(mname, config)
            for init in inits:
                pretrained = init not in (None, "", "random", "pretrained")
                own = "random init" if mname != "hf_mlm" else "pretrained weights"  # hf_mlm builds from its weights
                specs.append({"kind": "neural", "label": f"{base} [{_init_name(init) if pretrained else own}]",
                              "name": mname, "config": config, "backbone": base,
                              "init": _resolve_init(init) if pretrained else None,
                              "pooling": head["pooling"], "rc": head["rc"], "dropout": head["dropout"],
                              "train": to_plain(cfg.train)})
        else:
            raise InputError(f"methods: unknown method '{name}' (choose from kmer_lr, gkm_svm, sk_kmer, cnn, "
                             "neural)")
    if not specs:
        raise InputError("methods: empty list")
    return specs


def _resolve_init(init) -> str:
    """An init checkpoint folder: ``bundled`` / ``bundled:<name>`` (the models shipped with genodiff, ``genodiff
    models``) or a path (relative to the current folder, else the repository)."""
    text = str(init)
    if text == "bundled" or text.startswith(BUNDLED_PREFIX):
        return str(resolve_export(None if text == "bundled" else text))
    return str(resolve_path(text))


def _init_name(init) -> str:
    """A short name for a checkpoint folder: ``runs/mdlm/export`` -> ``mdlm/export``."""
    if str(init) == "bundled" or str(init).startswith(BUNDLED_PREFIX):
        return str(init)
    path = Path(str(init))
    return "/".join(path.parts[-2:]) if path.name == "export" and len(path.parts) > 1 else path.name


def paired_methods(specs: list) -> list:
    """``(pretrained, random init)`` method labels of the same backbone: the pairs the report compares split by
    split (``model.init=[random,<export>]``)."""
    random_init = {s["backbone"]: s["label"] for s in specs if s["kind"] == "neural" and s["init"] is None}
    return [(s["label"], random_init[s["backbone"]]) for s in specs
            if s["kind"] == "neural" and s["init"] is not None and s["backbone"] in random_init]


def _backbone_label(name, config: dict) -> str:
    if name == "hf_mlm":
        return f"hf_mlm {Path(str(config.get('pretrained'))).name}"
    size = "x".join(str(config[k]) for k in ("d_model", "n_layer") if k in config)
    size = size or "x".join(str(config[k]) for k in ("hidden_size", "n_blocks") if k in config)
    return f"{name} {size}".strip()


# ------------------------------------------------------------------------------------------- run
def _command(cfg: DictConfig) -> str:
    """The shell command that reruns this job: every override given, in order (the job's, then Hydra's own
    ``hydra.*`` ones, which compose the same config), each shell-quoted where needed."""
    if HydraConfig.initialized():
        hc = HydraConfig.get()
        ov = [o for o in hc.overrides.task if not o.startswith("task=")]
        ov += [o for o in hc.overrides.hydra if not o.startswith("hydra.mode=")]
        return " ".join(["genodiff benchmark", shlex.quote(str(cfg.task)), *map(shlex.quote, ov)])
    return f"genodiff benchmark {shlex.quote(str(cfg.task))} (composed config in results.json)"


def _validate(cfg: DictConfig) -> None:
    if cfg.protocol not in ("auto", "cv", "paper"):
        raise InputError(f"protocol must be auto, cv or paper, got {cfg.protocol!r}")
    if int(cfg.cv.folds) < 2:
        raise InputError(f"cv.folds must be >= 2, got {cfg.cv.folds}")
    if cfg.cv.get("duplicates", "group") not in POLICIES:
        raise InputError(f"cv.duplicates must be one of {', '.join(POLICIES)}, got {cfg.cv.duplicates!r}")
    for key in ("cv.val_fraction", "paper.val_fraction"):
        v = float(OmegaConf.select(cfg, key))
        if not 0.0 <= v < 0.5:
            raise InputError(f"{key} must be in [0, 0.5), got {v}")


def _text_task(task: str, data_cfg: dict, specs: list):
    """``data.kind=text``: the task tokenized once with the backbone's tokenizer
    (:mod:`genodiff.benchmarks.text_tasks`); the neural method only, without strands (``rc=none``, no RC
    augmentation), a random-init backbone's vocabulary sized to the tokenizer."""
    neural = [s for s in specs if s["kind"] == "neural"]
    if not neural:
        raise InputError("methods: data.kind=text runs the neural method only (methods=[neural])")
    first = neural[0]
    tok = resolve_text_tokenizer(data_cfg.get("tokenizer", "auto"), first["name"], first["config"],
                                 [s["init"] for s in neural])
    data = load_text_task(task, data_cfg, tok)
    for s in neural:
        s["rc"], s["train"] = "none", {**s["train"], "rc_augment": False}
        if s["init"] is None:
            s["config"] = {**s["config"], "vocab_size": max(int(s["config"].get("vocab_size") or 0), tok.vocab_size)}
    skipped = sorted({s["kind"] for s in specs if s["kind"] != "neural"})
    data.notes.append(f"text task: tokenizer {tok.name} ({tok.vocab_size} tokens), records encoded as "
                      "[BOS] a [EOS] (b [EOS])" + (f"; DNA-only methods not run: {', '.join(skipped)}" if skipped else ""))
    return data, {"published": None, "title": task}, neural


def run_task(cfg: DictConfig, task: str, out_dir: Path, command: str) -> dict:
    data_cfg = to_plain(cfg.data)
    specs = method_specs(cfg)
    if data_cfg.get("kind", "dna") == "text":
        data, meta, specs = _text_task(task, data_cfg, specs)
    else:
        if any(s.get("name") == "hf_mlm" for s in specs):
            raise InputError("model=hf_mlm tokenizes with its own tokenizer: set data.kind=text (DNA sequences are "
                             "then read as text)")
        data, meta = load_task(task, data_cfg, cfg.get("cache_dir"))
    seed = int(cfg.seed)
    protocol = cfg.protocol
    if protocol == "auto":
        protocol = "paper" if {"train", "test"} <= set(data.splits) else "cv"
    notes = list(data.notes)
    sub = data_cfg.get("subsample")
    policy = str(cfg.cv.get("duplicates", "group"))
    dups = duplicate_report(data.splits)
    if protocol == "paper":
        if not {"train", "test"} <= set(data.splits):
            raise InputError(f"protocol=paper needs official train and test splits; task '{task}' has "
                             f"{', '.join(data.splits)} (use protocol=cv)")
        train, test = data.splits["train"], data.splits["test"]
        train, groups, dups["policy"] = apply_policy(train, policy, against=test)
        if sub:
            keep = _subsample(train.labels, int(sub), seed)
            train, groups = train.subset(keep), (groups[keep] if groups is not None else None)
            notes.append(f"train split subsampled (stratified, seed {seed}) to {len(train)} records")
        sets = {"train": train, "test": test}
        splits = paper_splits(train.labels, len(test), [int(s) for s in cfg.paper.seeds],
                              float(cfg.paper.val_fraction), groups)
        proto = {"protocol": "paper: per seed a stratified random (1 - val_fraction)/val_fraction split of the "
                             "official train split, best checkpoint by val accuracy, scored on the official test "
                             "split", "seeds": list(cfg.paper.seeds), "val_fraction": float(cfg.paper.val_fraction)}
    else:
        which = data_cfg.get("split") or "auto"
        if which == "auto":
            which = "all" if "all" in data.splits else ("train" if "train" in data.splits else next(iter(data.splits)))
        if which not in data.splits:
            raise InputError(f"data.split={which}: task '{task}' has splits {', '.join(data.splits)}")
        labeled, groups, dups["policy"] = apply_policy(data.splits[which], policy)
        if sub:
            keep = _subsample(labeled.labels, int(sub), seed)
            labeled, groups = labeled.subset(keep), (groups[keep] if groups is not None else None)
            notes.append(f"labeled set subsampled (stratified, seed {seed}) to {len(labeled)} records")
        sets = {"all": labeled}
        splits = cv_splits(labeled.labels, int(cfg.cv.folds), seed, float(cfg.cv.val_fraction), groups)
        kfold = "StratifiedGroupKFold" if has_duplicates(groups) else "StratifiedKFold"
        proto = {"protocol": f"cv: {int(cfg.cv.folds)}-fold {kfold}(shuffle=True, random_state={seed}) "
                             f"on split '{which}'; per fold a stratified inner train/val split "
                             f"(val_fraction {float(cfg.cv.val_fraction)}, seed {seed}+1000+fold; grouped like the "
                             "folds) for early stopping and hyper-parameter choice; the held-out fold is used only "
                             "for scoring",
                 "folds": int(cfg.cv.folds), "seed": seed, "split": which}
    proto["duplicates"] = dups["policy"]
    proto["methods"] = [s["label"] for s in specs]
    for line in format_duplicates(dups):
        print(f"duplicates (either strand) {line}", flush=True)
    desc = data.describe()
    desc["notes"] = notes
    desc["title"], desc["published"] = meta.get("title", task), meta.get("published")
    desc["used"] = {k: {"n": len(v), "class_counts": v.class_counts()} for k, v in sets.items()}
    results = run_units(specs, splits, sets, n_jobs=cfg.n_jobs, progress=bool(cfg.progress),
                        torch_threads=cfg.get("torch_threads"), log=bool(cfg.get("log_units", True)))
    published = None
    if meta.get("published") in PUBLISHED:
        published = {"source": PUBLISHED_SOURCE, "values": PUBLISHED[meta["published"]]}
    config = to_plain(cfg)
    config["task"] = task
    rep = write_report(out_dir, task=task, data_desc=desc, protocol=proto, results=results, config=config,
                       command=command, published=published, duplicates=dups, paired=paired_methods(specs))
    return {"task": task, "title": meta.get("title", task), "output_dir": str(out_dir), "files": rep["files"],
            "summary": rep["summary"], "published": published["values"] if published else None,
            "protocol": protocol, "label_map": desc["label_map"]}


def run(cfg: DictConfig) -> dict:
    """Entry point of ``genodiff benchmark``. Returns ``{"output_dir", "files", "summary", ...}``."""
    if not cfg.get("task"):
        raise InputError("benchmark: missing task (usage: genodiff benchmark <task|path|suite> [key=value ...])")
    _validate(cfg)
    configure_from(cfg.get("ops"))  # ops.scan_backend (fold workers inherit it through the environment)
    out = output_dir(cfg, "benchmark")
    command = _command(cfg)
    task = str(cfg.task)
    if task != "suite":
        res = run_task(cfg, task, out, command)
        _print_summary(res)
        return res

    tasks = list(cfg.suite.tasks)
    if not tasks:
        raise InputError("suite.tasks: empty list")
    rows, used = [], set()
    for t in tasks:
        sub = _suite_folder(str(t), used)
        res = _finished_task(cfg, str(t), out / sub) if cfg.suite.get("resume", True) else None
        if res is None:
            res = run_task(cfg, str(t), out / sub, command)
        else:
            print(f"suite: {t}: reusing {out / sub} (written earlier with the same settings)", flush=True)
        _print_summary(res)
        rows.append({"task": str(t), "title": res["title"], "summary": res["summary"],
                     "published": res["published"], "report_dir": sub, "protocol": res["protocol"]})
    files = write_suite_report(out, rows, to_plain(cfg), command)
    print(f"suite table: {out / 'suite.md'}")
    return {"task": "suite", "output_dir": str(out), "files": files, "rows": rows}


#: config keys that change how a job runs or reports progress, not its results
_RUN_ONLY_KEYS = ("output_dir", "progress", "n_jobs", "torch_threads", "log_units", "suite", "cache_dir", "hydra")


def _result_settings(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in _RUN_ONLY_KEYS}


def _finished_task(cfg: DictConfig, task: str, folder: Path) -> Optional[dict]:
    """The result of a suite task already reported in ``folder`` with the same result-relevant settings (every
    key but those of :data:`_RUN_ONLY_KEYS`), in :func:`run_task`'s form; None when it must be (re)computed."""
    path = folder / "results.json"
    if not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    config = to_plain(cfg)
    config["task"] = task
    if _result_settings(payload.get("config") or {}) != _result_settings(json.loads(json.dumps(config, default=str))):
        return None
    data = payload.get("data") or {}
    published = PUBLISHED.get(data.get("published")) if data.get("published") else None
    return {"task": task, "title": data.get("title", task), "output_dir": str(folder),
            "files": sorted(str(p) for p in folder.iterdir() if p.is_file()), "summary": payload["summary"],
            "published": published, "protocol": payload["protocol"]["protocol"].split(":", 1)[0],
            "label_map": payload["label_map"]}


def _suite_folder(task: str, used: set) -> str:
    """Report folder of a suite task: the file stem, prefixed with parent folders while it is a split name
    or starts with one (``gue/EMP/H3/test.csv.gz`` -> ``H3_test``, ``gue/tf/0/dev.csv.gz`` -> ``tf_0_dev``), or is
    already used."""
    parts = Path(task.split(":", 1)[-1]).parts[:-1]
    name = _stem(Path(task))
    i = len(parts) - 1
    first = name.lower().split("_")[0]
    while i >= 0 and (first in ds.SPLIT_NAMES or first.isdigit() or name in used):
        name = f"{parts[i]}_{name}"
        first = name.lower().split("_")[0]
        i -= 1
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "task"
    while name in used:
        name += "_"
    used.add(name)
    return name


def _print_summary(res: dict) -> None:
    print(f"{res['task']}: {res['protocol']}, classes {res['label_map']}")
    for m, s in res["summary"].items():
        print(f"  {m:<40} accuracy {fmt_pm(s['accuracy'])}  macro-F1 {fmt_pm(s['f1_macro'])}  "
              f"MCC {fmt_pm(s['mcc'])}  AUROC {fmt_pm(s['auroc'])}")
    print(f"  report: {Path(res['output_dir']) / 'report.md'}")
