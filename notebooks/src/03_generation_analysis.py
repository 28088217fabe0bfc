# figures: generation_stats.png, kmer_scatter.png, infilling.png
# %% [markdown]
# # 3. Generation analysis: do samples look like real DNA?
#
# 1. **Unconditional samples** of an MDLM Caduceus model against real held-out windows of the hg38 chr2
#    slice (`../shared/data`), with an order-5 Markov chain fitted on the training part as the classical
#    baseline: GC content, k-mer spectra (k = 1..6) and their Jensen-Shannon divergence to the real
#    windows -- `genodiff.tasks.analyze.run` (= `genodiff analyze`). A second set of real windows (from
#    the validation region) shows how large the divergence is between two *real* sets of the same size:
#    roughly where a perfect generator would land. (Pooled spectra do not reward diversity: a generator
#    of "average" sequences can score below that level -- compare the GC standard deviations.)
# 2. **Infilling** a region of the real FASTA: mask `chrom:[start, end)`, keep its flanks, let the model
#    fill it in -- `genodiff.tasks.sample.run` with `conditioning.region` (= `genodiff sample
#    conditioning.fasta=... conditioning.region=...`) -- and compare with the true bases.
#
# With `CHECKPOINT = None` a small Caduceus-PS is trained here on the chr2 slice (the demo genome when
# `../shared` is absent). A model this small, trained for minutes on a CPU, learns mostly base composition
# and short-range statistics: expect its samples to be *further* from real DNA than an order-5 Markov
# chain, and its infilling to be close to chance. For serious analysis pass a larger model trained on a GPU
# as `CHECKPOINT` (a run or export folder, or `hf:<owner>/<repo>` / a local Hugging Face Caduceus folder).

# %% tags=["parameters"]
SMOKE = False          # True: tiny model, few steps and samples (what the test suite runs)
OUTPUT_DIR = None      # PNG figures and run folders; None: notebooks/_output/03_generation_analysis
CHECKPOINT = None      # a genodiff run / export folder; None: train a small Caduceus-PS here
SEED = 0

# %%
import json
import shutil
from functools import partial
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from genodiff.analysis.markov import MarkovModel
from genodiff.analysis.notebook_helpers import default_output, save_figure, shared_root
from genodiff.analysis.sequence_stats import kmer_spectrum
from genodiff.config import compose_config
from genodiff.data.genome.reference import Genome
from genodiff.data.genome.tokenizer import DNATokenizer
from genodiff.data.genome.vocab import MASK_ID
from genodiff.generate.fasta import read_fasta, write_fasta
from genodiff.interop.export import load_model
from genodiff.tasks import analyze, sample, train
from genodiff.tasks.data import prepare_dataset


OUTPUT_DIR = Path(OUTPUT_DIR) if OUTPUT_DIR else default_output("03_generation_analysis")
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
savefig = partial(save_figure, OUTPUT_DIR)  # savefig(fig, "name.png"): write, close, show
WINDOW = 128 if SMOKE else 256
N_SAMPLES = 8 if SMOKE else 64

# %% [markdown]
# ## Real sequence, splits and a model
#
# The `chr2_slice` preset holds out the last 200 kb of the slice for testing and the 100 kb before them
# for validation; the model and the Markov chain see only the rest.

# %%
CHR2 = shared_root() / "data" / "hg38_chr2_slice" / "chr2_1-2000000.fa.gz"
if CHR2.is_file():
    FASTA, source = CHR2, "hg38 chr2 slice"
else:
    FASTA, source = Path(prepare_dataset("demo")["fasta"]), "demo genome (../shared not found)"
genome = Genome(FASTA)
CHROM = genome.names[-1]
END = genome.lengths[CHROM]
SPLITS = {"train": (0, END - 300_000), "valid": (END - 300_000, END - 200_000), "test": (END - 200_000, END)}
print(f"{source}: {CHROM}, {END:,} bp;", {k: f"[{a:,}, {b:,})" for k, (a, b) in SPLITS.items()})


def real_windows(split: str, n: int, length: int, seed: int) -> list:
    """n random windows without N from a split (0-based half-open coordinates)."""
    lo, hi = SPLITS[split]
    rng, out = np.random.default_rng(seed), []
    while len(out) < n:
        pos = int(rng.integers(lo, hi - length))
        seq = genome.fetch(CHROM, pos, pos + length)
        if "N" not in seq:
            out.append(seq)
    return out


if CHECKPOINT is None:
    RUN_DIR = OUTPUT_DIR / "run"
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    overrides = ["experiment/pretrain=chr2_slice", f"data.fasta={FASTA}", f"data.window={WINDOW}",
                 f"output_dir={RUN_DIR}", "loggers=[csv]", "progress=false", "resume=null", f"seed={SEED}"]
    if SMOKE:
        overrides += ["data.train_stride=2048", "data.max_eval_windows=4", "global_batch_size=8",
                      "max_per_device_batch_size=8", "max_steps=12", "val_every_n_steps=0",
                      "checkpoint_every_n_steps=12", "model.d_model=16", "optim.warmup_steps=2", "ema_decay=0.5"]
    else:
        overrides += ["data.max_eval_windows=16", "max_steps=150", "val_every_n_steps=75",
                      "checkpoint_every_n_steps=75", "optim.warmup_steps=15"]
    train.run(compose_config("pretrain", overrides))
    CHECKPOINT = RUN_DIR

# %% [markdown]
# ## 1. Unconditional samples against real windows

# %%
sampled = sample.run(compose_config("sample", [
    f"checkpoint={CHECKPOINT}", f"num_samples={N_SAMPLES}", f"length={WINDOW}", f"steps={32 if SMOKE else 128}",
    "progress=false", "device=cpu", f"seed={SEED}", f"output_dir={OUTPUT_DIR / 'samples'}"]))

tok = DNATokenizer()
lo, hi = SPLITS["train"]
markov = MarkovModel.fit([genome.fetch_ids(CHROM, lo, min(hi, lo + (200_000 if SMOKE else 1_000_000)))], order=5)
rng = np.random.default_rng(SEED)
sets = {
    "real (test)": real_windows("test", max(N_SAMPLES, 64), WINDOW, SEED),
    "real (valid)": real_windows("valid", N_SAMPLES, WINDOW, SEED + 1),
    "Markov order 5": [tok.decode(markov.sample(WINDOW, rng)) for _ in range(N_SAMPLES)],
}
fasta_of = {}
for label, seqs in sets.items():
    slug = label.replace(" ", "_").replace("(", "").replace(")", "")
    fasta_of[label] = write_fasta(OUTPUT_DIR / f"{slug}.fa", [(f"{slug}_{i}", "", s) for i, s in enumerate(seqs)])
analysis = analyze.run(compose_config("analyze", [
    f"samples={sampled['fasta']}", f"reference={fasta_of['real (test)']}", f"markov={fasta_of['Markov order 5']}",
    f"+extra.real_valid={fasta_of['real (valid)']}", f"seed={SEED}", f"output_dir={OUTPUT_DIR / 'analyze'}"]))

# %%
labels = {"samples": "MDLM samples", "markov": "Markov order 5", "real_valid": "real (valid)",
          "reference": "real (test)"}
table = pd.DataFrame({labels.get(k, k): {"sequences": s["num_sequences"], "GC mean": s["gc_mean"],
                                         "GC sd": s["gc_std"], **{f"JS k={k}": v for k, v in s["kmer_js_bits"].items()}}
                      for k, s in analysis["sets"].items()}).T
table.round(4)

# %%
colors = {"MDLM samples": "tab:red", "Markov order 5": "tab:blue", "real (valid)": "tab:green",
          "real (test)": "black"}
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
for key, s in analysis["sets"].items():
    label = labels.get(key, key)
    gc = np.array([g for g in s["gc_values"] if g is not None])
    axes[0].hist(gc, bins=16, range=(0.2, 0.8), histtype="step", lw=2, density=True, label=label,
                 color=colors.get(label))
    if key != "reference":
        ks = sorted(int(k) for k in s["kmer_js_bits"])
        axes[1].semilogy(ks, [s["kmer_js_bits"][str(k)] if str(k) in s["kmer_js_bits"] else s["kmer_js_bits"][k]
                              for k in ks], "o-", label=label, color=colors.get(label))
axes[0].set(xlabel="GC fraction per sequence", title=f"GC content ({WINDOW}-bp sequences)")
axes[0].legend(fontsize=8)
axes[1].set(xlabel="k", ylabel="JS divergence to real (test) [bits]",
            title="k-mer spectra; real (valid) = real-vs-real level")
axes[1].legend(fontsize=8)
savefig(fig, "generation_stats.png")

# %%
samples = [s for _, s in read_fasta(sampled["fasta"])]
ref4 = kmer_spectrum(sets["real (test)"], 4)
fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharex=True, sharey=True)
for ax, (label, seqs) in zip(axes, [("MDLM samples", samples), ("Markov order 5", sets["Markov order 5"])]):
    spec = kmer_spectrum(seqs, 4)
    ax.loglog(ref4 + 1e-5, spec + 1e-5, ".", alpha=0.6, color=colors[label])
    ax.plot([1e-5, 0.05], [1e-5, 0.05], "k:")
    ax.set(xlabel="real 4-mer frequency", title=label)
axes[0].set_ylabel("generated 4-mer frequency")
savefig(fig, "kmer_scatter.png")

# %% [markdown]
# ## 2. Infilling a real region
#
# Mask `chrom:[start, end)` (0-based half-open) of the real sequence, keep `flank` bp of context on each
# side, and generate the masked bases `N` times. We compare with the true bases in two ways:
#
# * the model's probability of the true base at each masked position, from a single denoiser call with
#   the whole region masked (the first step of the reverse process);
# * how often the sampled base equals the true one, against chance (drawing from the base composition).

# %%
REGION_LEN, FLANK = (32, 48) if SMOKE else (64, 96)
rng = np.random.default_rng(SEED + 7)
while True:
    start = int(rng.integers(SPLITS["test"][0] + FLANK, SPLITS["test"][1] - FLANK - REGION_LEN))
    if "N" not in genome.fetch(CHROM, start - FLANK, start + REGION_LEN + FLANK):
        break
region = f"{CHROM}:{start}-{start + REGION_LEN}"
infill = sample.run(compose_config("sample", [
    f"checkpoint={CHECKPOINT}", f"num_samples={8 if SMOKE else 32}", f"steps={32 if SMOKE else 128}",
    f"conditioning.fasta={FASTA}", f"conditioning.region={region}", f"conditioning.flank={FLANK}",
    "progress=false", "device=cpu", f"seed={SEED}", f"output_dir={OUTPUT_DIR / 'infill'}"]))
runs = json.loads((OUTPUT_DIR / "infill" / "samples.infill.json").read_text())["runs"]
a, b = runs[0]["start"], runs[0]["end"]  # on the output records
context = genome.fetch(CHROM, runs[0]["genome_start"] - a, runs[0]["genome_end"] + FLANK)
truth = context[a:b]
filled = [s[a:b] for _, s in read_fasta(infill["fasta"])]
print(f"region {region}: true   {truth}")
for s in filled[:4]:
    print(" " * (len(region) + 8) + f"sampled {''.join(c if c != t else '.' for c, t in zip(s, truth))}")

# %%
model = load_model(CHECKPOINT, "cpu")
x = torch.as_tensor(tok.encode(context), dtype=torch.long)[None].clone()
x[0, a:b] = MASK_ID
t = torch.ones(1) if model.time_conditioning else None
with torch.no_grad():
    probs = model.denoiser(x, t)[0, a:b, 7:11].double().softmax(-1)  # A C G T
true_idx = torch.tensor(["ACGT".index(c) for c in truth])
p_true = probs.gather(-1, true_idx[:, None])[:, 0].numpy()
match = np.array([[s[i] == truth[i] for s in filled] for i in range(len(truth))]).mean(1)
composition = kmer_spectrum(sets["real (test)"], 1)
chance = float((composition ** 2).sum())

fig, axes = plt.subplots(2, 1, figsize=(11, 5.2), gridspec_kw={"height_ratios": [1.3, 1]}, sharex=True)
pos = np.arange(a, b)
axes[0].bar(pos, match, color="tab:orange", alpha=0.6, label=f"sampled base = true base ({len(filled)} samples)")
axes[0].plot(pos, p_true, "k.-", label="model P(true base), region fully masked")
axes[0].axhline(chance, color="grey", ls=":", label=f"chance from base composition ({chance:.2f})")
axes[0].set(ylabel="fraction / probability", ylim=(0, 1.05),
            title=f"infilling {region} with {FLANK} bp flanks: identity {match.mean():.2f} vs chance {chance:.2f}")
axes[0].legend(fontsize=8, loc="upper right")
codes = {"A": 0, "C": 1, "G": 2, "T": 3}
tracks = np.array([[codes[c] for c in truth]] + [[codes.get(c, 4) for c in s] for s in filled[:12]])
axes[1].imshow(tracks, aspect="auto", interpolation="nearest", extent=(a - 0.5, b - 0.5, len(tracks) - 0.5, -0.5),
               cmap=plt.matplotlib.colors.ListedColormap(["tab:green", "tab:blue", "tab:orange", "tab:red", "k"]),
               vmin=0, vmax=4)
axes[1].set(xlabel="position in the template (bp)", ylabel="row 0 = truth")
savefig(fig, "infilling.png")
print(f"mean P(true base) {p_true.mean():.3f}; sampled identity {match.mean():.3f}; chance {chance:.3f}")
