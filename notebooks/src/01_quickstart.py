# figures: loss_curves.png, evaluation.png, samples.png
# %% [markdown]
# # 1. Quickstart: fine-tune, evaluate, sample
#
# This notebook walks through the whole genodiff loop on the built-in **demo genome** (generated offline
# by `genodiff data prepare demo`, so it needs no download):
#
# 1. fine-tune a tiny Caduceus-PS (reverse-complement equivariant) backbone with the MDLM objective
#    (Sahoo et al. 2024) -- `genodiff.tasks.train.run`, the same function as `genodiff finetune demo`;
# 2. plot the loss curves the run's CSV logger wrote;
# 3. evaluate held-out bits per base (an upper bound from the NELBO) next to order-k Markov chains --
#    `genodiff.tasks.evaluate.run` (`genodiff evaluate`);
# 4. sample new sequences -- `genodiff.tasks.sample.run` (`genodiff sample`) -- and look at them.
#
# Set `GENOME = "chr2_slice"` to train on real DNA instead (2 Mb of hg38 chr2 from `../shared/data`).
# `SMOKE = True` switches to tiny windows, a 16-wide model and a few steps (the test suite runs that).
# Figures are written as PNG files to `OUTPUT_DIR`.

# %% tags=["parameters"]
SMOKE = False          # True: tiny data and a few steps (seconds; what the test suite runs)
OUTPUT_DIR = None      # PNG figures and run folders; None: notebooks/_output/01_quickstart
GENOME = "demo"        # "demo" (built-in, synthetic) or "chr2_slice" (real hg38 chr2:0-2,000,000)
SEED = 0

# %%
import shutil
from functools import partial
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from omegaconf import OmegaConf

import genodiff
from genodiff.analysis.notebook_helpers import default_output, save_figure, shared_data
from genodiff.analysis.sequence_stats import gc_values, js_divergence, kmer_spectrum
from genodiff.config import compose_config
from genodiff.data.genome.reference import Genome
from genodiff.data.genome.intervals import read_bed
from genodiff.generate.fasta import read_fasta
from genodiff.tasks import evaluate, sample, train
from genodiff.tasks.data import prepare_dataset


OUTPUT_DIR = Path(OUTPUT_DIR) if OUTPUT_DIR else default_output("01_quickstart")
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
savefig = partial(save_figure, OUTPUT_DIR)  # savefig(fig, "name.png"): write, close, show
print("genodiff", genodiff.__version__, "| outputs in", OUTPUT_DIR.resolve())

# %% [markdown]
# ## Data
#
# `prepare_dataset("demo")` generates the demo genome once (two contigs, 3 Mb, with N gaps and
# soft-masked repeats), writes a BED of train / valid / test windows and builds the encoded cache the
# data loaders read. The cache lives in `$GENODIFF_DATA` (default: the user cache folder).

# %%
if GENOME == "demo":
    data = prepare_dataset("demo")
    FASTA, BED = data["fasta"], data["intervals"][0]["path"]
    print(f"demo genome: {data['summary']['contigs']} contigs, {data['summary']['bp']:,} bp, "
          f"{data['summary']['n']:,} N; splits {data['intervals'][0]['by_name']}")
elif GENOME == "chr2_slice":
    FASTA, BED = shared_data() / "hg38_chr2_slice" / "chr2_1-2000000.fa.gz", None
    assert FASTA.is_file(), f"{FASTA} not found: set GENODIFF_SHARED or use GENOME='demo'"
    print("real DNA:", FASTA)
else:
    raise ValueError(f"GENOME must be 'demo' or 'chr2_slice', not {GENOME!r}")

# %% [markdown]
# ## Fine-tune
#
# The config is composed exactly as the command line does (`genodiff finetune demo key=value ...`).
# The run folder gets `checkpoints/`, `logs/metrics.csv` and `export/` (safetensors + `genodiff.json`,
# EMA weights). Without network access the demo starts from random initialisation; with it, add
# `init=hf:kuleshov-group/caduceus-ph_seqlen-1k_d_model-118_n_layer-4_lr-8e-3 model=caduceus_ph` to
# fine-tune the published Caduceus checkpoint.

# %%
RUN_DIR = OUTPUT_DIR / "run"
shutil.rmtree(RUN_DIR, ignore_errors=True)  # a fresh run each time the notebook is executed
common = [f"output_dir={RUN_DIR}", "loggers=[csv]", "progress=false", "resume=null", f"seed={SEED}"]
if GENOME == "demo":
    job, preset = "finetune", ["experiment/finetune=demo"]
else:
    job, preset = "pretrain", ["experiment/pretrain=chr2_slice", f"data.fasta={FASTA}"]
if SMOKE:
    size = ["data.window=128", "data.max_eval_windows=8", "global_batch_size=8", "max_per_device_batch_size=8",
            "max_steps=16", "val_every_n_steps=8", "checkpoint_every_n_steps=16", "model.d_model=16",
            "optim.warmup_steps=2", "trainer.log_every_n_steps=2", "ema_decay=0.5"]
elif GENOME == "demo":
    size = ["trainer.log_every_n_steps=5"]  # the demo preset as is: 512-bp windows, 120 steps
else:  # chr2_slice: the preset's 400 steps of 1024 bp take ~20 min; half the window and steps for a quickstart
    size = ["trainer.log_every_n_steps=5", "data.window=512", "max_steps=200", "val_every_n_steps=100",
            "data.max_eval_windows=64"]
cfg = compose_config(job, preset + common + size)
print(OmegaConf.to_yaml(cfg.model), f"window {cfg.data.window} bp, {cfg.max_steps} steps of "
      f"{cfg.global_batch_size} windows")

# %%
summary = train.run(cfg)
print({k: round(v, 4) for k, v in summary["metrics"].items()})

# %% [markdown]
# ## Loss curves
#
# `logs/metrics.csv` has one row per logging event: the training loss (nats per base, one batch) and,
# every `val_every_n_steps`, the validation NELBO. Bits per base = nats / ln 2; 2 bits is a uniform guess.

# %%
metrics = pd.read_csv(RUN_DIR / "logs" / "metrics.csv")
train_curve = metrics.dropna(subset=["train/bits_per_token"])
val_curve = metrics.dropna(subset=["val/bits_per_token"])
fig, ax = plt.subplots(figsize=(6.5, 3.6))
ax.plot(train_curve["step"], train_curve["train/bits_per_token"], ".-", label="train (batch)")
ax.plot(val_curve["step"], val_curve["val/bits_per_token"], "o-", label="validation NELBO")
ax.axhline(2.0, color="grey", ls=":", label="uniform (2 bits)")
ax.set(xlabel="optimizer step", ylabel="bits per base (upper bound)", title=f"MDLM on {GENOME}")
ax.legend()
savefig(fig, "loss_curves.png")

# %% [markdown]
# ## Evaluate against Markov baselines
#
# `evaluate.run` estimates each test window's NELBO with `num_samples` masking draws (the
# time-agnostic `num_masked` estimator for MDLM, which has finite variance) and reports bits per base
# with a standard error. The same bases are scored by order-k Markov chains fitted on the training
# split: a neural model is only interesting once it beats them.

# %%
eval_cfg = OmegaConf.create({
    "data": OmegaConf.to_container(cfg.data, resolve=True), "checkpoints": [str(RUN_DIR)], "split": "test",
    "num_samples": 4 if SMOKE else 32, "method": "auto", "batch_size": 8, "max_windows": 8 if SMOKE else 64,
    "markov_orders": [0, 1, 2, 3] if SMOKE else [0, 1, 2, 3, 4, 5, 6],
    "markov_alpha": 1.0, "markov_max_train_bases": 200_000 if SMOKE else 5_000_000,
    "seed": SEED, "device": "cpu", "output_dir": str(OUTPUT_DIR / "evaluate"),
})
results = evaluate.run(eval_cfg)
table = pd.DataFrame(results["rows"])[["model", "bits_per_base", "bits_per_base_stderr", "perplexity_bound"]]
table["model"] = [m if m.startswith("Markov") else "MDLM (this run)" for m in table["model"]]
table

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.6))
colors = ["tab:red" if m.startswith("MDLM") else "tab:blue" for m in table["model"]]
ax.bar(table["model"], table["bits_per_base"], yerr=1.96 * table["bits_per_base_stderr"].fillna(0),
       color=colors, capsize=4)
low = float(table["bits_per_base"].min())
ax.set_ylim(max(0.0, low - 0.15), max(2.05, float(table["bits_per_base"].max()) + 0.05))
ax.set(ylabel="test bits per base", title=f"{results['windows']} test windows of {results['window']} bp "
       "(bars: 95% CI)")
ax.tick_params(axis="x", rotation=30)
savefig(fig, "evaluation.png")

# %% [markdown]
# How to read this: order-k Markov chains are exact likelihoods of a classical model, the MDLM number is
# an upper bound (NELBO) with its standard error. A few hundred CPU steps from random initialisation
# usually land between the order-0 and order-2 chains; the published Caduceus + MDLM models, trained for
# days on GPUs, reach well below every Markov order. Beating the best Markov order is the bar to clear.

# %% [markdown]
# ## Sample
#
# `sample.run` is `genodiff sample`: the cached ancestral sampler (one denoiser call per step where some
# base unmasks), written as FASTA with the provenance in each header. We compare the samples with real
# windows of the same length from the test split: GC content, base composition and 3-mer spectra.

# %%
n_samples = 4 if SMOKE else 16
sample_cfg = compose_config("sample", [f"checkpoint={RUN_DIR}", f"num_samples={n_samples}",
                                       f"length={cfg.data.window}", f"steps={32 if SMOKE else 128}",
                                       "progress=false", "device=cpu", f"seed={SEED}",
                                       f"output_dir={OUTPUT_DIR / 'samples'}"])
sampled = sample.run(sample_cfg)
samples = [seq for _, seq in read_fasta(sampled["fasta"])]
for name, seq in read_fasta(sampled["fasta"])[:3]:
    print(f">{name}\n{seq[:120]}...")


# %%
def real_windows(fasta, bed, n: int, length: int, seed: int) -> list:
    """n random windows without N from the test split (BED split column), or from the last 200 kb."""
    genome = Genome(fasta)
    if bed is not None:
        regions = [(iv.chrom, iv.start, iv.end) for iv in read_bed(bed) if iv.split == "test"]
    else:
        chrom = genome.names[-1]
        regions = [(chrom, genome.lengths[chrom] - 200_000, genome.lengths[chrom])]
    rng, out = np.random.default_rng(seed), []
    while len(out) < n:
        chrom, start, end = regions[rng.integers(len(regions))]
        pos = int(rng.integers(start, end - length))
        seq = genome.fetch(chrom, pos, pos + length)
        if "N" not in seq:
            out.append(seq)
    return out


real = real_windows(FASTA, BED, max(n_samples, 32), int(cfg.data.window), SEED)
alphabet = {"A": 0, "C": 1, "G": 2, "T": 3}
fig, axes = plt.subplots(1, 3, figsize=(14, 3.6), gridspec_kw={"width_ratios": [1.6, 1, 1], "wspace": 0.3})
tracks = np.array([[alphabet.get(b, 4) for b in s[:128]] for s in samples[:16]])  # first 128 bp
axes[0].imshow(tracks, aspect="auto", cmap=plt.matplotlib.colors.ListedColormap(
    ["tab:green", "tab:blue", "tab:orange", "tab:red", "black"]), vmin=0, vmax=4, interpolation="nearest")
axes[0].set(xlabel="position (bp)", ylabel="sample", title="samples (A green, C blue, G orange, T red)",
            yticks=range(len(tracks)))
axes[1].hist([gc_values(real), gc_values(samples)], bins=np.linspace(0.2, 0.8, 19), density=True,
             label=["real", "sampled"])
axes[1].set(xlabel="GC fraction per sequence", title="GC content")
axes[1].legend()
k3_real, k3_samp = kmer_spectrum(real, 3), kmer_spectrum(samples, 3)
axes[2].scatter(k3_real, k3_samp, s=10)
lim = max(k3_real.max(), k3_samp.max()) * 1.05
axes[2].plot([0, lim], [0, lim], "k:")
axes[2].set(xlabel="real 3-mer frequency", ylabel="sampled 3-mer frequency",
            title=f"3-mers: JS = {js_divergence(k3_real, k3_samp):.3f} bits")
savefig(fig, "samples.png")
print(f"{len(samples)} samples; mean GC sampled {np.nanmean(gc_values(samples)):.3f} vs real "
      f"{np.nanmean(gc_values(real)):.3f}")

# %% [markdown]
# ## Next steps
#
# * `02_benchmark_report` -- genomic classification benchmarks with 5-fold cross-validation;
# * `03_generation_analysis` -- k-mer spectra of samples and infilling of a real region;
# * `04_equivariance_likelihood` -- reverse-complement equivariance, variant scoring, NELBO error bars;
# * `05_text_path` -- the same diffusion core on text with a DiT.
