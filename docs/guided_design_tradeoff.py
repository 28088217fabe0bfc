"""Guided design trade-off: class fidelity vs diversity vs naturalness for w in {0, 1, 2, 4} and classifier guidance.

Usage (after ``genodiff finetune conditional_nontata output_dir=runs/cond`` and, optionally,
``genodiff finetune noisy_classifier_nontata init=runs/cond/export output_dir=runs/clf``)::

    python docs/guided_design_tradeoff.py --cond runs/cond --label 1 [--classifier runs/clf] \\
        [--ws 0,1,2,4] [--num-samples 200] [--length 251] [--sampler cached --steps 128 --order random] \\
        [--out runs/tradeoff]

What it measures, per set of sequences (guided samples for each w, classifier guidance, the model's null
label, and real sequences of each class the generator never saw):

* ``oracle_p``: mean probability of the target class under an independent oracle, a tuned k-mer logistic
  regression (``genodiff.benchmarks.kmer.KmerLogReg``) trained on the generator's held-out TEST split (the
  conditional export records how the task was split; the same split is rebuilt here), and ``oracle_frac``:
  the fraction the oracle assigns to the target class. The oracle's own accuracy on a held-out fifth of that
  split is reported.
* diversity: ``identity`` (mean pairwise identity of equal-length sequences over up to 2,000 random pairs)
  and ``distinct_6mers`` (distinct 6-mers / 6-mers).
* naturalness: ``markov_bits`` (bits per base under an order-5 Markov chain fitted on the generator's
  TRAIN sequences of the target class; lower = closer to real sequences of the class).

Writes ``<out>/tradeoff.json`` and ``<out>/tradeoff.md`` and prints the table. Each sample set is kept as
``<out>/<set>.fa`` with the overrides that made it; a rerun reuses the sets whose overrides are unchanged.
Guidance with w > 0 is not exact sampling from a tilted distribution (docs/generate.md, "Guided design"); this
measures what it does.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from Bio import SeqIO

from genodiff.analysis.markov import MarkovModel
from genodiff.analysis.sequence_stats import kmer_counts
from genodiff.benchmarks.datasets import LabeledSet, encode_sequences
from genodiff.benchmarks.folds import inner_split
from genodiff.benchmarks.kmer import KmerLogReg
from genodiff.config import compose_config
from genodiff.data.files import read_json
from genodiff.generate.conditioning import decode
from genodiff.interop.export import resolve_export
from genodiff.tasks import sample
from genodiff.tasks.train import load_labelled
from genodiff.training.datamodule import LabelledDataConfig


def _labelled_set(seqs, labels, classes) -> LabeledSet:
    ids, lengths, _, _ = encode_sequences(list(seqs), "samples")
    return LabeledSet(ids, lengths, np.asarray(labels, dtype=np.int64), list(classes))


def _strings(arrays) -> list[str]:
    return [decode(arrays.ids[i, : arrays.lengths[i]]) for i in range(len(arrays))]


def diversity(seqs: list[str], rng: np.random.Generator, pairs: int = 2000) -> dict:
    counts = kmer_counts(seqs, 6)
    out = {"distinct_6mers": float((counts > 0).sum() / max(counts.sum(), 1))}
    same = [s for s in seqs if len(s) == len(seqs[0])]
    if len(same) >= 2:
        a = np.frombuffer("".join(same).encode(), dtype=np.uint8).reshape(len(same), -1)
        i, j = rng.integers(0, len(same), (2, pairs))
        keep = i != j
        out["identity"] = float((a[i[keep]] == a[j[keep]]).mean())
    return out


def measure(name: str, seqs: list[str], oracle, target: int, classes, markov: MarkovModel, rng) -> dict:
    data = _labelled_set(seqs, np.zeros(len(seqs)), classes)
    proba = oracle.predict_proba(data)[:, target]
    ids = [data.ids[i, : data.lengths[i]] for i in range(len(data))]
    row = {"set": name, "n": len(seqs), "oracle_p": float(proba.mean()),
           "oracle_frac": float((oracle.predict_proba(data).argmax(1) == target).mean()),
           "markov_bits": float(markov.bits_per_base(ids)), **diversity(seqs, rng)}
    print(json.dumps(row))
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cond", required=True, help="class-conditional MDLM run or export folder")
    ap.add_argument("--label", required=True, help="target class name")
    ap.add_argument("--classifier", default=None, help="noise-aware classifier run or export (classifier guidance)")
    ap.add_argument("--classifier-scale", type=float, default=1.0)
    ap.add_argument("--classifier-mode", default="auto", help="guidance.mode: auto | exact | first_order")
    ap.add_argument("--max-exact-candidates", type=int, default=1024,
                    help="guidance.max_exact_candidates (auto: exact re-weighting while a call has at most this many)")
    ap.add_argument("--ws", default="0,1,2,4")
    ap.add_argument("--num-samples", type=int, default=200)
    ap.add_argument("--length", type=int, default=None, help="bp (default: the most common real length)")
    ap.add_argument("--sampler", default="cached")
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--order", default="random", help="reveal order (docs/results.md's table: random)")
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num-threads", type=int, default=None, help="torch CPU threads for sampling")
    ap.add_argument("--out", default="outputs/guided_design_tradeoff")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)

    export = resolve_export(args.cond)
    condition = read_json(export / "genodiff.json").get("condition")
    if not condition:
        raise SystemExit(f"{export}: not a class-conditional export (no 'condition' block)")
    classes = list(condition["classes"])
    target = classes.index(args.label)
    split = condition["data"]
    config = LabelledDataConfig(task=split["task"], valid_fraction=split["valid_fraction"],
                                test_fraction=split["test_fraction"], seed=split["split_seed"])
    splits, loaded_classes, info = load_labelled(config)
    if loaded_classes != classes or info["sizes"] != split["sizes"]:
        raise SystemExit("the task no longer splits as it did when the model was trained")
    test, train = splits["test"], splits["train"]

    # the oracle: trained only on the test split (never seen by the generator), scored on a fifth of it
    test_set = LabeledSet(test.ids, test.lengths, test.labels, classes)
    fit_idx, eval_idx = inner_split(np.arange(len(test)), test.labels, 0.2, args.seed)
    fit_tr, fit_va = inner_split(fit_idx, test.labels, 0.125, args.seed + 1)
    oracle = KmerLogReg(ks=(3, 4, 5, 6), select="accuracy", seed=args.seed)  # the rule its documented numbers used
    oracle.fit(test_set.subset(fit_tr), test_set.subset(fit_va))
    held = test_set.subset(eval_idx)
    oracle_acc = float((oracle.predict_proba(held).argmax(1) == held.labels).mean())
    print(f"oracle: k-mer LR on {len(fit_idx)} test-split sequences, accuracy {oracle_acc:.4f} on {len(eval_idx)}")

    markov = MarkovModel.fit([train.ids[i, : train.lengths[i]] for i in range(len(train)) if train.labels[i] == target],
                             order=5)
    test_strings = _strings(test)
    length = args.length or int(np.bincount(test.lengths).argmax())
    rows = []
    for c, name in enumerate(classes):
        real = [s for s, y in zip(test_strings, test.labels) if y == c][: args.num_samples]
        rows.append(measure(f"real {name} (test split)", real, oracle, target, classes, markov, rng))

    def run_sample(tag: str, **keys) -> list[str]:
        overrides = [f"checkpoint={export}", f"num_samples={args.num_samples}", f"length={length}",
                     f"sampler={args.sampler}", f"steps={args.steps}", f"order={args.order}",
                     f"batch_size={args.batch_size}", f"seed={args.seed}", f"output_dir={out}", f"output_name={tag}",
                     "progress=false"]
        if args.num_threads:
            overrides.append(f"num_threads={args.num_threads}")
        overrides += [f"{k}={v}" for k, v in keys.items()]
        done = out / f"{tag}.overrides.json"  # a set sampled with the same overrides is reused (resume)
        if not (done.is_file() and read_json(done) == overrides and (out / f"{tag}.fa").is_file()):
            sample.run(compose_config("sample", overrides))
            done.write_text(json.dumps(overrides))
        return [str(r.seq) for r in SeqIO.parse(str(out / f"{tag}.fa"), "fasta")]

    rows.append(measure("null label (unconditional)", run_sample("null_label"), oracle, target, classes, markov, rng))
    for w in (float(x) for x in args.ws.split(",")):
        seqs = run_sample(f"cfg_w{w:g}", **{"condition.label": args.label, "guidance.scale": w})
        rows.append(measure(f"classifier-free, w = {w:g}", seqs, oracle, target, classes, markov, rng))
    if args.classifier:
        seqs = run_sample("classifier", **{"condition.label": args.label, "guidance.scale": args.classifier_scale,
                                           "guidance.classifier": str(resolve_export(args.classifier)),
                                           "guidance.mode": args.classifier_mode,
                                           "guidance.max_exact_candidates": args.max_exact_candidates})
        rows.append(measure(f"classifier guidance, w = {args.classifier_scale:g}", seqs, oracle, target, classes,
                            markov, rng))

    header = ("| set | n | oracle P(target) | oracle: target | pairwise identity | distinct 6-mers "
              "| Markov-5 bits/base |")
    lines = [header, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['set']} | {r['n']} | {r['oracle_p']:.3f} | {r['oracle_frac']:.3f} | "
                     f"{r.get('identity', float('nan')):.3f} | {r['distinct_6mers']:.3f} | {r['markov_bits']:.4f} |")
    table = "\n".join(lines)
    note = (f"Target class: {args.label}. Oracle: k-mer LR trained on {len(fit_idx)} sequences of the generator's "
            f"held-out test split, accuracy {oracle_acc:.4f} on {len(eval_idx)} others. Markov chain: order 5 on "
            f"the generator's train sequences of the target class. Length {length} bp, sampler {args.sampler} "
            f"({args.steps} steps, {args.order} order), seed {args.seed}.")
    (out / "tradeoff.md").write_text(table + "\n\n" + note + "\n")
    (out / "tradeoff.json").write_text(json.dumps({"rows": rows, "oracle_accuracy": oracle_acc, "note": note,
                                                   "args": vars(args), "split": info}, indent=2))
    print(table)
    print(note)


if __name__ == "__main__":
    main()
