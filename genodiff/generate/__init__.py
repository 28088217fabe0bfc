"""Generation, conditioning (prefix / suffix / infilling), likelihood and variant scoring for biologists.

Modules: :mod:`.model` (load a genodiff export, run folder or Hugging Face Caduceus checkpoint),
:mod:`.fasta` (FASTA writing / reading that pyfaidx and ``samtools faidx`` can index),
:mod:`.conditioning` (templates with known bases, windowed filling, GC-target rejection),
:mod:`.scoring` (per-sequence NELBO with explicit, reusable random draws) and :mod:`.variants`
(VCF / TSV parsing and allele log-likelihood ratios with common random numbers).
The command-line front ends are ``genodiff.tasks.{sample,score}``.
"""
