"""genodiff.benchmarks: genomic sequence classification benchmark (datasets -> splits -> fit/evaluate -> report).

Modules (imported lazily by the benchmark job; nothing heavy here):

* :mod:`~genodiff.benchmarks.datasets`: labeled sets tokenized once; tables (CSV/TSV/parquet), the Genomic
  Benchmarks materialized layout, GUE-style split folders; sorted, recorded class mapping.
* :mod:`~genodiff.benchmarks.gb`: Genomic Benchmarks coordinate CSVs + reference genome (manifests
  ``data_manifests/gb_<task>.yaml``).
* :mod:`~genodiff.benchmarks.folds`: stratified k-fold CV with inner validation splits; the paper protocol.
* :mod:`~genodiff.benchmarks.metrics`: accuracy, macro-F1, MCC, AUROC; mean / std / (max-min)/2.
* :mod:`~genodiff.benchmarks.kmer`: k-mer counts and the k-mer logistic-regression baseline.
* :mod:`~genodiff.benchmarks.neural`: backbone + classification head, GB CNN, training loop, checkpoint loader.
* :mod:`~genodiff.benchmarks.runner`: method specs, (parallel) execution of fit/predict units.
* :mod:`~genodiff.benchmarks.report`: report.md, results.csv/json, predictions.csv, plots, suite table.
* :mod:`~genodiff.benchmarks.published`: published numbers shown for reference (with their source).

The job is :func:`genodiff.tasks.benchmark.run` (``genodiff benchmark <task|path|suite>``).
"""
