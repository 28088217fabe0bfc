"""Published Genomic Benchmarks numbers, shown beside ours for reference only (never used in computations).

Source: Schiff Y., Kao C.-H., Gokaslan A., Dao T., Gu A., Kuleshov V. "Caduceus: Bi-Directional Equivariant
Long-Range DNA Sequence Modeling", ICML 2024 (arXiv:2403.03234), Table 1 "Genomic Benchmarks": top-1 accuracy,
5-fold cross-validation (random 90/10 train/val splits of the official train set, best checkpoint by val
accuracy, scored on the official test set), mean ± (max - min) / 2. Columns: the CNN baseline of Gresova
et al. (2023) as re-run there (264K parameters), HyenaDNA (436K), Mamba (468K, next-token pre-training),
Caduceus-Ph (470K), Caduceus-PS (470K). The paper's "Caduceus w/o Equiv." column is not reproduced here.

All 40 values below were checked against the text of the paper (arXiv:2403.03234v2 = ICML 2024 camera-ready,
Table 1, as stored in a public text extraction of the PDF); no value differed. Note: in that extraction the
"Caduceus w/o Equiv." header is printed out of place, so the Mamba column was identified as the third numeric
column (header order CNN, HyenaDNA, Mamba, Caduceus-Ph, Caduceus-PS); the CNN, HyenaDNA, Caduceus-Ph and
Caduceus-PS columns are also quoted identically by a later paper (JanusDNA) that reprints this table.
Only the numbers were checked; the split/checkpoint details in the protocol sentence above were not.

``PUBLISHED_MDLM``: Sahoo S. S., Arriola M., Schiff Y., Gokaslan A., Marroquin E., Chiu J. T., Rush A.,
Kuleshov V. "Simple and Effective Masked Diffusion Language Models", NeurIPS 2024 (arXiv:2406.07524), Table 7
"Genomic Benchmarks": top-1 accuracy across 5-fold cross-validation for a pre-trained AR Mamba and a pre-trained
Caduceus fine-tuned with different objectives. Columns as in the paper: Mamba AR (465K), Caduceus MLM (467K),
Caduceus Plaid (507K), Caduceus SEDD (467K), Caduceus MDLM (467K; "MDLM (ours)" in the paper). The paper's
caption says: "Error bars indicate the difference between the maximum and minimum values across 5 random seeds
used for CV", i.e. ± is stated as (max - min), not (max - min) / 2 as for ``PUBLISHED`` above.
All 40 values were read from stored public text extractions of the paper's PDF (two independent extractions,
identical values; the arXiv version of those PDFs was not identified). One cell is garbled in both extractions
(Human NonTATA Promoters / Caduceus Plaid: "0.935 {±01007}", "0.935 {±0l007}"); 0.007 is the reading given by the
second extraction's corrected overlay and by a slide deck that reprints the table. That slide deck differs from
both PDF extractions in two ± values (Human Enhancers Cohn / Caduceus MLM: ±0.011 vs ±0.001; Human OCR Ensembl /
Caduceus MLM: ±0.004 vs ±0.000); the PDF values are kept here.
"""

from __future__ import annotations

__all__ = ["PUBLISHED", "PUBLISHED_SOURCE", "PUBLISHED_MODELS", "TASK_TITLES",
           "PUBLISHED_MDLM", "PUBLISHED_MDLM_MODELS", "PUBLISHED_MDLM_SOURCE"]

PUBLISHED_SOURCE = ("Schiff et al., Caduceus, ICML 2024 (arXiv:2403.03234), Genomic Benchmarks table; "
                    "top-1 accuracy, mean ± (max-min)/2 over 5 seeds; values checked against the paper's text "
                    "(arXiv:2403.03234v2 Table 1)")

PUBLISHED_MODELS = ("CNN", "HyenaDNA", "Mamba", "Caduceus-Ph", "Caduceus-PS")


def _by_model(models: tuple, rows: dict) -> dict:
    """``{task: {model: (mean, ±)}}`` from ``{task: ((mean, ±) of each model, in the order of models)}``."""
    return {task: dict(zip(models, values, strict=True)) for task, values in rows.items()}


TASK_TITLES = {
    "dummy_mouse_enhancers_ensembl": "Mouse Enhancers",
    "demo_coding_vs_intergenomic_seqs": "Coding vs. Intergenomic",
    "demo_human_or_worm": "Human vs. Worm",
    "human_enhancers_cohn": "Human Enhancers Cohn",
    "human_enhancers_ensembl": "Human Enhancers Ensembl",
    "human_ensembl_regulatory": "Human Regulatory",
    "human_ocr_ensembl": "Human OCR Ensembl",
    "human_nontata_promoters": "Human NonTATA Promoters",
}

#: task -> model -> (mean accuracy, ± half range)
PUBLISHED = _by_model(PUBLISHED_MODELS, {
    "dummy_mouse_enhancers_ensembl":    ((0.715, 0.087), (0.780, 0.025), (0.743, 0.054), (0.754, 0.074), (0.793, 0.058)),
    "demo_coding_vs_intergenomic_seqs": ((0.892, 0.008), (0.904, 0.005), (0.904, 0.004), (0.915, 0.003), (0.910, 0.003)),
    "demo_human_or_worm":               ((0.942, 0.002), (0.964, 0.002), (0.967, 0.002), (0.973, 0.001), (0.968, 0.002)),
    "human_enhancers_cohn":             ((0.702, 0.021), (0.729, 0.014), (0.732, 0.029), (0.747, 0.004), (0.745, 0.007)),
    "human_enhancers_ensembl":          ((0.744, 0.122), (0.849, 0.006), (0.862, 0.008), (0.893, 0.008), (0.900, 0.006)),
    "human_ensembl_regulatory":         ((0.872, 0.005), (0.869, 0.012), (0.814, 0.211), (0.872, 0.011), (0.873, 0.007)),
    "human_ocr_ensembl":                ((0.698, 0.013), (0.783, 0.007), (0.815, 0.002), (0.828, 0.006), (0.818, 0.006)),
    "human_nontata_promoters":          ((0.861, 0.009), (0.944, 0.002), (0.933, 0.007), (0.946, 0.007), (0.945, 0.010)),
})

PUBLISHED_MDLM_SOURCE = ("Sahoo et al., Simple and Effective Masked Diffusion Language Models, NeurIPS 2024 "
                         "(arXiv:2406.07524; arXiv version of the read PDF text not identified), Table 7 "
                         "'Genomic Benchmarks'; top-1 accuracy across 5-fold CV, ± = difference between the maximum "
                         "and minimum values across 5 random seeds (as stated in the caption)")

PUBLISHED_MDLM_MODELS = ("Mamba AR", "Caduceus MLM", "Caduceus Plaid", "Caduceus SEDD", "Caduceus MDLM")

#: task -> model -> (mean accuracy, ± as printed: max - min over 5 seeds)
PUBLISHED_MDLM = _by_model(PUBLISHED_MDLM_MODELS, {
    "dummy_mouse_enhancers_ensembl":    ((0.763, 0.008), (0.810, 0.016), (0.745, 0.079), (0.784, 0.058), (0.795, 0.029)),
    "demo_coding_vs_intergenomic_seqs": ((0.897, 0.004), (0.913, 0.003), (0.908, 0.003), (0.913, 0.005), (0.913, 0.003)),
    "demo_human_or_worm":               ((0.967, 0.002), (0.970, 0.002), (0.971, 0.001), (0.970, 0.003), (0.970, 0.003)),
    "human_enhancers_cohn":             ((0.734, 0.027), (0.737, 0.001), (0.743, 0.010), (0.746, 0.015), (0.743, 0.016)),
    "human_enhancers_ensembl":          ((0.856, 0.003), (0.907, 0.000), (0.885, 0.003), (0.905, 0.006), (0.899, 0.004)),
    "human_ensembl_regulatory":         ((0.861, 0.008), (0.874, 0.003), (0.868, 0.010), (0.828, 0.037), (0.868, 0.004)),
    "human_ocr_ensembl":                ((0.806, 0.005), (0.821, 0.000), (0.820, 0.004), (0.816, 0.008), (0.823, 0.008)),
    "human_nontata_promoters":          ((0.926, 0.008), (0.935, 0.014), (0.935, 0.007), (0.935, 0.014), (0.940, 0.007)),
})
