"""genodiff.benchmarks: genomic sequence classification benchmark (datasets -> splits -> fit/evaluate -> report).

Modules (imported lazily by the benchmark job; nothing heavy here):

* :mod:`~genodiff.benchmarks.datasets`: labeled sets tokenized once; tables (CSV/TSV/parquet), the Genomic
  Benchmarks materialized layout, GUE-style split folders; sorted, recorded class mapping.
* :mod:`~genodiff.benchmarks.gb`: Genomic Benchmarks coordinate CSVs + reference genome (manifests
  ``data_manifests/gb_<task>.yaml``).
* :mod:`~genodiff.benchmarks.duplicates`: exact duplicates on either strand: leakage report, CV groups,
  ``cv.duplicates=group|drop|keep``.
* :mod:`~genodiff.benchmarks.folds`: stratified (grouped) k-fold CV with inner validation splits; the paper
  protocol.
* :mod:`~genodiff.benchmarks.metrics`: accuracy, macro-F1, MCC, AUROC; mean / std / (max-min)/2.
* :mod:`~genodiff.benchmarks.kmer`: k-mer counts (once per task) and the tuned k-mer logistic regression
  (k, count/freq/TF-IDF, canonical, C chosen on the inner validation split).
* :mod:`~genodiff.benchmarks.gkm`: the gapped k-mer kernel (exact) and the gkm-SVM baseline.
* :mod:`~genodiff.benchmarks.plain`: plain scikit-learn reference pipelines (k-mer counts + LR, no tuning).
* :mod:`~genodiff.benchmarks.neural`: backbone + classification head, GB CNN, training loop, checkpoint loader.
* :mod:`~genodiff.benchmarks.runner`: method specs, (parallel) execution of fit/predict units.
* :mod:`~genodiff.benchmarks.report`: report.md, results.csv/json, predictions.csv, plots, suite table.
* :mod:`~genodiff.benchmarks.published`: published numbers shown for reference (with their source).

The job is :func:`genodiff.tasks.benchmark.run` (``genodiff benchmark <task|path|suite>``).
"""
