# figures: rc_equivariance.png, variant_scores.png, nelbo_stderr.png
# %% [markdown]
# # 4. Reverse-complement equivariance and likelihoods
#
# DNA is double stranded: a sequence and its reverse complement (RC) describe the same molecule. This
# notebook shows, on real human sequence (hg38 chr2 from `../shared/data`):
#
# 1. **RC equivariance.** Caduceus-PS (parameter sharing, `rcps=True`) is equivariant by construction:
#    the prediction for a base read on the minus strand is the complement of the prediction on the plus
#    strand. Caduceus-Ph is not, unless its logits are *conjoined* post hoc (`Caduceus.conjoined_logits`).
# 2. **Variant scoring.** `genodiff score variants`: the log-likelihood ratio `llr = NELBO(ref) - NELBO(alt)`
#    in a window around each single-nucleotide variant, ref and alt scored with the same random draws.
# 3. **How precise is a NELBO estimate?** The NELBO is an expectation over diffusion times (or numbers of
#    masked bases); its Monte Carlo standard error falls like `1/sqrt(K)` with `K` samples.
#
# With `CHECKPOINT = None` the notebook trains its own small Caduceus-PS on the chr2 slice (the demo
# genome when `../shared` is absent). `SMOKE = True`: tiny model, few steps, few samples.

# %% tags=["parameters"]
SMOKE = False          # True: tiny model, few steps and samples (what the test suite runs)
OUTPUT_DIR = None      # PNG figures and run folders; None: notebooks/_output/04_equivariance_likelihood
CHECKPOINT = None      # a genodiff run / export folder; None: train a small Caduceus-PS here
SEED = 0

# %%
import math
import shutil
from functools import partial
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from genodiff.analysis.notebook_helpers import default_output, save_figure, shared_root
from genodiff.config import compose_config
from genodiff.data.genome.reference import Genome
from genodiff.data.genome.tokenizer import DNATokenizer
from genodiff.data.genome.vocab import COMPLEMENT_MAP, MASK_ID
from genodiff.diffusion import estimate_nelbo
from genodiff.interop.export import load_model
from genodiff.interop.hf_caduceus import load_caduceus
from genodiff.models import build_model, rc_ids, rc_logits
from genodiff.tasks import score, train
from genodiff.tasks.data import prepare_dataset


OUTPUT_DIR = Path(OUTPUT_DIR) if OUTPUT_DIR else default_output("04_equivariance_likelihood")
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
savefig = partial(save_figure, OUTPUT_DIR)  # savefig(fig, "name.png"): write, close, show
torch.manual_seed(SEED)
WINDOW = 128 if SMOKE else 256

# %% [markdown]
# ## Real sequence and a model
#
# The chr2 slice is `chr2:0-2,000,000` of hg38 (soft-masked; upper-cased on reading). Its last 200 kb are
# the test split of the `chr2_slice` preset: everything below (windows, variants) comes from there, so
# the model never trained on it.

# %%
CHR2 = shared_root() / "data" / "hg38_chr2_slice" / "chr2_1-2000000.fa.gz"
if CHR2.is_file():
    FASTA, source = CHR2, "hg38 chr2 slice"
else:  # no reference data on this machine: fall back to the built-in demo genome
    FASTA, source = Path(prepare_dataset("demo")["fasta"]), "demo genome (../shared not found)"
genome = Genome(FASTA)
CHROM = genome.names[-1]
TEST_START, TEST_END = genome.lengths[CHROM] - 200_000, genome.lengths[CHROM]
print(f"{source}: {FASTA}\n{CHROM}: {genome.lengths[CHROM]:,} bp; test region [{TEST_START:,}, {TEST_END:,})")


def real_windows(n: int, length: int, seed: int) -> list:
    """n random windows without N from the test region (0-based half-open starts)."""
    rng, out = np.random.default_rng(seed), []
    while len(out) < n:
        pos = int(rng.integers(TEST_START, TEST_END - length))
        seq = genome.fetch(CHROM, pos, pos + length)
        if "N" not in seq:
            out.append((pos, seq))
    return out


# %%
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
model = load_model(CHECKPOINT, "cpu")
backbone = model.module.eval()
print(model.name, "| parameters:", sum(p.numel() for p in backbone.parameters()))

# %% [markdown]
# ## 1. Reverse-complement equivariance
#
# Take a real window `x`, mask 15% of its bases and ask the model for the masked bases twice: once from
# `x` and once from `rc(x)`, mapping the second answer back with `rc_logits` (reverse the positions,
# swap A<->T and C<->G). An equivariant model gives the same numbers up to float rounding.
#
# For comparison: a Caduceus-Ph checkpoint in Hugging Face layout, made by the official Caduceus code
# (`../shared/fixtures/caduceus_parity/ph_small`, toy size; a random Caduceus-Ph when absent), with and
# without post-hoc conjoining.

# %%
complement = torch.tensor(COMPLEMENT_MAP)
tok = DNATokenizer()
(_, seq), = real_windows(1, WINDOW, SEED)
x = torch.as_tensor(tok.encode(seq), dtype=torch.long)[None]
gen = torch.Generator().manual_seed(SEED)
masked = torch.rand(x.shape, generator=gen) < 0.15
x_masked = torch.where(masked, torch.full_like(x, MASK_ID), x)

fixture = shared_root() / "fixtures" / "caduceus_parity" / "ph_small"
if (fixture / "config.json").is_file():
    ph, _ = load_caduceus(fixture)
    ph_name = "Caduceus-Ph (official-code fixture)"
else:
    ph = build_model("caduceus", d_model=32, n_layer=2, rcps=False).eval()
    ph_name = "Caduceus-Ph (random init)"


def strand_logits(fn, ids):
    """(logits from the + strand, logits from the - strand mapped back to +), over the 12 DNA token ids."""
    with torch.no_grad():
        fwd = fn(ids)[..., : len(COMPLEMENT_MAP)]
        rev = rc_logits(fn(rc_ids(ids, complement))[..., : len(COMPLEMENT_MAP)], complement)
    return fwd, rev


models = {
    f"Caduceus-PS (trained here, d={backbone.config.d_model})": backbone,
    ph_name: ph,
    ph_name.replace(")", ", conjoined)"): ph.conjoined_logits,
}
acgt = list(range(7, 11))  # A C G T token ids
rows, probs = [], {}
for name, fn in models.items():
    fwd, rev = strand_logits(fn, x_masked)
    p_fwd = fwd[..., acgt].softmax(-1)
    p_rev = rev[..., acgt].softmax(-1)
    rows.append({"model": name, "max |Δ logit|": float((fwd - rev)[..., acgt].abs().max()),
                 "max |Δ prob|": float((p_fwd - p_rev).abs().max())})
    truth = (x[masked] - 7).clamp(0, 3)
    probs[name] = (p_fwd[masked].gather(-1, truth[:, None])[:, 0], p_rev[masked].gather(-1, truth[:, None])[:, 0])
equivariance = pd.DataFrame(rows)
equivariance

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), gridspec_kw={"width_ratios": [1, 1.3]})
floor = 1e-9
axes[0].barh([f"{m}\nmax Δ = {v:.1e}" for m, v in zip(equivariance["model"], equivariance["max |Δ prob|"])],
             equivariance["max |Δ prob|"].clip(lower=floor),
             color=["tab:green", "tab:red", "tab:blue"])
axes[0].set_xscale("log")
axes[0].axvline(1e-6, color="grey", ls=":")
axes[0].set(xlabel="max |P(+ strand) - P(- strand, mapped back)|", title="equivariance error (log scale)")
for name, color, size in zip(models, ["tab:green", "tab:red", "tab:blue"], [40, 14, 8]):
    a, b = probs[name]
    axes[1].scatter(a, b, s=size, alpha=0.7, color=color, label=name)
axes[1].plot([0, 1], [0, 1], "k:")
axes[1].set(xlabel="P(true base) read from the + strand", ylabel="P(true base) read from the - strand",
            title=f"{int(masked.sum())} masked bases of a real {WINDOW}-bp window")
axes[1].legend(fontsize=8)
savefig(fig, "rc_equivariance.png")

# %% [markdown]
# ## 2. Variant scoring
#
# We make single-nucleotide variants at random positions of the test region (there is no VCF in the
# reference data, so these are *in silico* mutations): half of them C->T or G->A at a CpG, the most
# frequent human mutation, the rest random. `score.run` (= `genodiff score variants`) reads a TSV
# `chrom<TAB>pos<TAB>ref<TAB>alt` with 1-based positions, and returns the llr with its standard error from
# paired draws. A negative llr means the model prefers the reference allele.

# %%
rng = np.random.default_rng(SEED)
n_variants = 8 if SMOKE else 48
records = []
while len(records) < n_variants:
    pos0 = int(rng.integers(TEST_START + WINDOW, TEST_END - WINDOW))  # 0-based
    ctx = genome.fetch(CHROM, pos0 - 1, pos0 + 2)
    if "N" in ctx:
        continue
    ref = ctx[1]
    if len(records) % 2 == 0:  # CpG transition
        if ctx[1:3] == "CG":
            records.append((CHROM, pos0 + 1, ref, "T", "CpG C>T"))
        elif ctx[0:2] == "CG":
            records.append((CHROM, pos0 + 1, ref, "A", "CpG G>A"))
    else:
        records.append((CHROM, pos0 + 1, ref, str(rng.choice([b for b in "ACGT" if b != ref])), "random"))
variants_tsv = OUTPUT_DIR / "variants_in.tsv"
variants_tsv.write_text("".join(f"{c}\t{p}\t{r}\t{a}\n" for c, p, r, a, _ in records))
score_cfg = compose_config("score", ["mode=variants", f"checkpoint={CHECKPOINT}", f"input={variants_tsv}",
                                     f"genome={FASTA}", f"window={WINDOW}", f"num_samples={8 if SMOKE else 64}",
                                     "progress=false", "device=cpu", f"seed={SEED}",
                                     f"output_dir={OUTPUT_DIR / 'score'}"])
scored = score.run(score_cfg)
variants = pd.DataFrame(scored["rows"])
variants["class"] = [r[4] for r in records]
variants[["chrom", "pos", "ref", "alt", "class", "llr", "llr_stderr", "z"]].head(10)

# %% [markdown]
# Reading the llr: it is a likelihood ratio under the model, not a pathogenicity score. A model that has
# learned human dinucleotide statistics finds CpG-destroying transitions *more* likely than the reference
# (llr > 0): CpG is depleted in the genome because methylated cytosines deaminate to thymine. Random
# substitutions scatter on both sides of zero. With `SMOKE = True` the model has barely trained and the
# pattern is noise.

# %%
ordered = variants.sort_values("llr").reset_index(drop=True)
fig, ax = plt.subplots(figsize=(10, 3.6))
for cls, color in [("CpG C>T", "tab:red"), ("CpG G>A", "tab:orange"), ("random", "tab:blue")]:
    part = ordered[ordered["class"] == cls]
    ax.errorbar(part.index, part["llr"], yerr=1.96 * part["llr_stderr"], fmt="o", ms=4, capsize=2,
                color=color, label=cls)
ax.axhline(0, color="k", lw=0.8)
ax.set(xlabel="variant (sorted by llr)", ylabel="llr = NELBO(ref) - NELBO(alt)  [nats]",
       title=f"{len(ordered)} in-silico SNVs in {WINDOW}-bp windows (bars: 95% CI from paired draws)")
ax.legend()
savefig(fig, "variant_scores.png")
print(variants.groupby("class")[["llr", "z"]].mean().round(3))

# %% [markdown]
# ## 3. Standard error of the NELBO against the number of samples
#
# `estimate_nelbo(objective, denoiser, x0, num_samples=K, method=...)` averages `K` single-sample
# estimates per sequence and reports their standard error. Two estimators:
#
# * `antithetic`: stratified times `t_k = (k + u_k)/K` in the continuous-time integral (MDLM eq. 10);
# * `num_masked`: the time-agnostic form for MDLM without time conditioning -- draw the number of masked
#   bases `k` stratified over `1..n`, weight the masked cross-entropy by `n / k` (finite variance).
#
# The reported standard error (points) should fall like `1/sqrt(K)` (dotted line); the crosses are the
# spread of the estimate over independent repetitions (a noisy check with a few repetitions). For
# `num_masked` the two agree: its reported error uses the i.i.d. formula `std/sqrt(K)`, slightly
# conservative for stratified draws. For `antithetic` with the log-linear schedule the single-draw
# variance is formally infinite (time weight `1/t` near `t = 0`; see `genodiff.diffusion.likelihood`), so
# its reported error is unreliable and can understate the real spread -- one reason `genodiff evaluate`
# uses `num_masked` for MDLM. Expect `num_masked` to be about an order of magnitude more precise at the
# same K.

# %%
batch = torch.as_tensor(np.stack([tok.encode(s) for _, s in real_windows(4 if SMOKE else 8, WINDOW, SEED + 1)]),
                        dtype=torch.long)
Ks = [2, 4, 8, 16] if SMOKE else [2, 4, 8, 16, 32, 64]
repeats = 3 if SMOKE else 4  # independent repetitions, run as copies of the batch in one call
copies = batch.repeat(repeats, 1)
curves = []
for method in ("num_masked", "antithetic"):
    for K in Ks:
        est = estimate_nelbo(model.objective, model.denoiser, copies, None, K, method,
                             generator=torch.Generator().manual_seed(SEED + K))
        per_repeat = est.nelbo.view(repeats, -1).sum(1) / est.num_tokens.view(repeats, -1).sum(1) / math.log(2)
        var_per_repeat = est.stderr.view(repeats, -1).pow(2).sum(1)
        se_per_repeat = var_per_repeat.sqrt() / est.num_tokens.view(repeats, -1).sum(1) / math.log(2)
        curves.append({"method": method, "K": K, "bits_per_base": float(per_repeat.mean()),
                       "reported_stderr": float(se_per_repeat.mean()),
                       "spread_over_repeats": float(per_repeat.std(unbiased=True))})
curves = pd.DataFrame(curves)
curves

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for (method, part), color in zip(curves.groupby("method"), ["tab:blue", "tab:orange"]):
    axes[0].loglog(part["K"], part["reported_stderr"], "o-", color=color, label=f"{method}: reported")
    axes[0].loglog(part["K"], part["spread_over_repeats"], "x", color=color, ms=8, label=f"{method}: over repeats")
    ref = part["reported_stderr"].iloc[0] * math.sqrt(part["K"].iloc[0]) / np.sqrt(part["K"])
    axes[0].loglog(part["K"], ref, ":", color=color)
    axes[1].errorbar(part["K"], part["bits_per_base"], yerr=1.96 * part["reported_stderr"], fmt="o-",
                     capsize=3, color=color, label=method)
axes[0].set(xlabel="K (samples per sequence)", ylabel="standard error [bits/base]",
            title=f"{batch.shape[0]} real windows of {WINDOW} bp; dotted: 1/sqrt(K)")
axes[0].legend(fontsize=8)
axes[1].set_xscale("log")
for ax in axes:
    ax.set_xticks(Ks, [str(k) for k in Ks])
    ax.minorticks_off()
axes[1].set(xlabel="K", ylabel="NELBO estimate [bits/base]", title="estimate with 95% CI")
axes[1].legend()
savefig(fig, "nelbo_stderr.png")
