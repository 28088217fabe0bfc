# figures: text_training.png, generation_quality.png
# %% [markdown]
# # 5. The text path: a tiny DiT with MDLM
#
# The diffusion core is shared between DNA and text. Here a small DiT (diffusion transformer) is trained
# with the MDLM objective on real English -- the docstrings of the Python
# standard library, present on every machine, byte tokens -- next to an autoregressive (AR) transformer of
# the same size:
#
# 1. training curves: the MDLM validation NELBO (an upper bound) against the AR model's exact NLL;
# 2. held-out bits per token with standard errors -- `genodiff.tasks.evaluate.run` on text data;
# 3. samples -- `genodiff.tasks.sample.run` with `kind=text` (`genodiff sample text`) -- and their
#    **generative perplexity** under the AR model as evaluator, always read together with the samples'
#    **entropy** (repetitive text has a deceptively low generative perplexity), for several numbers of
#    sampling steps; real held-out docstrings give the reference point.
#
# The MDLM paper uses GPT-2 Large as the evaluator; offline, our own AR model plays that role (pass a
# Hugging Face causal LM name as `EVAL_MODEL` where `transformers` and the weights are available).

# %% tags=["parameters"]
SMOKE = False          # True: a 2-block 32-wide model, 20 steps (what the test suite runs)
OUTPUT_DIR = None      # PNG figures and run folders; None: notebooks/_output/05_text_path
EVAL_MODEL = None      # generative-perplexity evaluator; None: the AR model trained here
MAX_STEPS = 400        # training steps per model (the presets' full 1200 take ~10 min each on 2 cores)
SEED = 0

# %%
import json
import shutil
from functools import partial
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from omegaconf import OmegaConf

from genodiff.analysis.notebook_helpers import default_output, save_figure
from genodiff.config import compose_config
from genodiff.data.text.corpus import python_docs_documents
from genodiff.generate.text import generative_perplexity
from genodiff.tasks import evaluate, sample, train
from genodiff.tasks.train import quiet_lightning_logging


quiet_lightning_logging()  # Lightning's logs once, without the advertising tip
OUTPUT_DIR = Path(OUTPUT_DIR) if OUTPUT_DIR else default_output("05_text_path")
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
savefig = partial(save_figure, OUTPUT_DIR)  # savefig(fig, "name.png"): write, close, show

# %% [markdown]
# ## Train MDLM (DiT) and AR (causal transformer)
#
# Presets `text_cpu` and `text_cpu_ar` (`genodiff pretrain text_cpu`): byte tokens, documents wrapped with
# `[BOS]`/`[EOS]` and packed into 128-token windows, 5% of the documents held out for validation and 5%
# for testing.

# %%
size = (["data.seq_len=64", "data.max_eval_items=16", "global_batch_size=8", "max_per_device_batch_size=8",
         "max_steps=20", "val_every_n_steps=10", "checkpoint_every_n_steps=20", "model.hidden_size=32",
         "model.n_blocks=2", "model.n_heads=2", "optim.warmup_steps=2", "trainer.log_every_n_steps=2"]
        if SMOKE else [f"max_steps={MAX_STEPS}", f"val_every_n_steps={max(1, MAX_STEPS // 4)}", "checkpoint_every_n_steps=200",
                       "optim.warmup_steps=40", "trainer.log_every_n_steps=10", "data.max_eval_items=64"])
runs = {}
for name, preset, extra in [("MDLM (DiT)", "text_cpu", ["model.cond_dim=16"] if SMOKE else []),
                            ("AR (transformer)", "text_cpu_ar", [])]:
    run_dir = OUTPUT_DIR / preset
    shutil.rmtree(run_dir, ignore_errors=True)
    cfg = compose_config("pretrain", [f"experiment/pretrain={preset}", f"output_dir={run_dir}", "loggers=[csv]",
                                      "progress=false", "resume=null", f"seed={SEED}", *size, *extra])
    summary = train.run(cfg)
    runs[name] = {"dir": run_dir, "cfg": cfg, "summary": summary}
    print(f"{name}: {summary['global_step']} steps in {summary['seconds']:.0f} s")
SEQ_LEN = int(runs["MDLM (DiT)"]["cfg"].data.seq_len)
AR_EXPORT = runs["AR (transformer)"]["dir"] / "export"
EVAL_MODEL = EVAL_MODEL or str(AR_EXPORT)

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.6))
for (name, r), color in zip(runs.items(), ["tab:red", "tab:blue"]):
    m = pd.read_csv(r["dir"] / "logs" / "metrics.csv")
    tr = m.dropna(subset=["train/bits_per_token"])
    va = m.dropna(subset=["val/bits_per_token"])
    ax.plot(tr["step"], tr["train/bits_per_token"], ".-", color=color, alpha=0.4, label=f"{name} train")
    ax.plot(va["step"], va["val/bits_per_token"], "o-", color=color, label=f"{name} validation")
ax.axhline(8, color="grey", ls=":", label="uniform over bytes (8 bits)")
ax.set(xlabel="optimizer step", ylabel="bits per token (MDLM: upper bound)", title="python-docs, byte tokens")
ax.legend(fontsize=8)
savefig(fig, "text_training.png")

# %% [markdown]
# ## Held-out likelihood

# %%
ev = evaluate.run(OmegaConf.create({
    "checkpoints": [str(r["dir"]) for r in runs.values()],
    "data": OmegaConf.to_container(runs["MDLM (DiT)"]["cfg"].data, resolve=True), "split": "test",
    "num_samples": 4 if SMOKE else 16, "method": "auto", "batch_size": 8, "max_windows": 16 if SMOKE else 64,
    "seed": SEED, "device": "cpu", "output_dir": str(OUTPUT_DIR / "evaluate")}))
pd.DataFrame(ev["rows"])[["model", "objective", "bits_per_token", "nats_per_token_stderr", "perplexity_bound"]]

# %% [markdown]
# ## Samples, generative perplexity and entropy
#
# More reverse steps give the sampler more chances to condition later tokens on earlier ones. We sample
# with several step counts, score every set with the evaluator, and compare with real test-time text
# (docstrings cut to the same length) and with samples of the AR model itself.

# %%
steps_grid = [4, 16] if SMOKE else [8, 32, 128]
n = 4 if SMOKE else 32
points = []
for steps in steps_grid:
    res = sample.run(compose_config("sample", [
        "kind=text", f"checkpoint={runs['MDLM (DiT)']['dir']}", f"num_samples={n}", f"length={SEQ_LEN}",
        f"steps={steps}", "sampler=ancestral", f"seed={SEED}", "device=cpu", "text.output_format=jsonl",
        f"+text.eval_model={EVAL_MODEL}", f"output_dir={OUTPUT_DIR / f'samples_mdlm_{steps}'}"]))
    points.append({"set": f"MDLM, {steps} steps", "gen_ppl": res["generative_perplexity"]["perplexity"],
                   "entropy": res["entropy_mean"], "file": res["output"]})
res = sample.run(compose_config("sample", [
    "kind=text", f"checkpoint={AR_EXPORT}", f"num_samples={n}", f"length={SEQ_LEN}", f"seed={SEED}",
    "device=cpu", "text.output_format=jsonl", f"+text.eval_model={EVAL_MODEL}",
    f"output_dir={OUTPUT_DIR / 'samples_ar'}"]))
points.append({"set": "AR samples", "gen_ppl": res["generative_perplexity"]["perplexity"],
               "entropy": res["entropy_mean"], "file": res["output"]})
docs = python_docs_documents()
real = [d[:SEQ_LEN] for d in docs[-n:]]  # byte tokens: SEQ_LEN characters of ASCII text ~ SEQ_LEN tokens
gp = generative_perplexity(real, EVAL_MODEL)
points.append({"set": "real docstrings", "gen_ppl": gp["perplexity"], "entropy": gp["entropy_mean"], "file": None})
quality = pd.DataFrame(points)
quality[["set", "gen_ppl", "entropy"]]

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), gridspec_kw={"width_ratios": [1, 1.2]})
mdlm = quality[quality["set"].str.startswith("MDLM")]
axes[0].plot(steps_grid, mdlm["gen_ppl"], "o-", color="tab:red", label="MDLM samples")
for label, color in [("AR samples", "tab:blue"), ("real docstrings", "black")]:
    axes[0].axhline(float(quality.loc[quality["set"] == label, "gen_ppl"].iloc[0]), color=color, ls="--", label=label)
axes[0].set_xscale("log")
axes[0].set_xticks(steps_grid, [str(k) for k in steps_grid])
axes[0].minorticks_off()
axes[0].set(xlabel="sampling steps", ylabel="generative perplexity", title=f"evaluator: {Path(EVAL_MODEL).parent.name}")
axes[0].legend(fontsize=8)
for i, row in quality.iterrows():
    color = "tab:red" if row["set"].startswith("MDLM") else "tab:blue" if row["set"].startswith("AR") else "black"
    axes[1].scatter(row["entropy"], row["gen_ppl"], color=color)
    axes[1].annotate(row["set"], (row["entropy"], row["gen_ppl"]), fontsize=8, textcoords="offset points",
                     xytext=(-110, -12 * (i + 1)) if row["set"].startswith("MDLM") else (4, 4))
axes[1].set(xlabel="mean sample entropy [nats]", ylabel="generative perplexity",
            title="read both: low perplexity + low entropy = repetition")
savefig(fig, "generation_quality.png")

# %% [markdown]
# How to read this: at a CPU budget of a few hundred steps the AR model learns faster than MDLM. The
# MDLM bound is still near the level of byte frequencies (the model barely uses context yet), so its
# samples are close to random bytes: high entropy, high generative perplexity. The AR samples sit closer
# to real text on both axes but are not readable either. Both improve with training (`MAX_STEPS`, or a GPU
# preset such as `text_small`); the number to watch is the MDLM bound in the likelihood table, which
# should approach the AR NLL. The first samples of the MDLM model with the most steps:

# %%
best = mdlm.iloc[-1]["file"]
for line in Path(best).read_text().splitlines()[:3]:
    print(repr(json.loads(line)["text"]), "\n")
