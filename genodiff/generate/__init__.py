"""Generation, conditioning (prefix / suffix / infilling), likelihood and variant scoring, for DNA and text.

Modules: :mod:`.conditioning` (templates with known bases, windowed filling past the model's context --
the semi-autoregressive machinery of DNA and text alike -- and GC-target rejection), :mod:`.text` (text
generation, sample entropy, samples files, generative perplexity under an AR evaluator), :mod:`.fasta`
(FASTA writing / reading that pyfaidx and ``samtools faidx`` can index), :mod:`.scoring` (per-sequence NELBO
with explicit, reusable random draws, and the held-out NELBO of ``genodiff evaluate``) and :mod:`.variants`
(VCF / TSV parsing and allele log-likelihood ratios with common random numbers). Models are loaded with
:func:`genodiff.interop.export.load_model`. The command-line front ends are ``genodiff.tasks.{sample,score,
evaluate}``.
"""
