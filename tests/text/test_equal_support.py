"""Equal support, proven: every objective and sampler runs with the DNA backbone and with the DiT.

One parametrized matrix over (backbone family x objective): a few training steps of the shared
:class:`DiffusionLitModule` lower the objective on a fixed held-out batch with fixed noise, Lightning
checkpoints and safetensors exports round-trip exactly, and every sampler that applies to the objective
(plus semi-autoregressive generation) returns valid tokens and keeps a known prefix.

Families: ``dna`` -- Caduceus (bidirectional, RC-equivariant) / Mamba LM (causal, for AR) on DNA token ids
(A/C/G/T = 7..10, Caduceus vocabulary); ``dit`` -- DiT / causal transformer on byte-level text ids
(V = 260). Both train on an order-2 Markov source (``MarkovTextSource``) over a 4-symbol alphabet.
"""

from __future__ import annotations

import lightning as L
import pytest
import torch

from genodiff.data.text.corpus import MarkovTextSource
from genodiff.data.text.tokenizers import ByteTokenizer, vocab_spec
from genodiff.diffusion.sampling import SampleOutput, Sampler
from genodiff.generate.conditioning import fill
from genodiff.interop.export import load_export, save_export
from genodiff.training.module import DiffusionLitModule

L_SEQ, BATCH, STEPS = 32, 16, 40

FAMILIES = {
    "dna": {"alphabet": "ACGT", "ids": [7, 8, 9, 10], "vocab": "dna",
            "model": {"name": "caduceus", "d_model": 32, "n_layer": 2, "rcps": True},
            "causal": {"name": "mamba_lm", "d_model": 32, "n_layer": 2}},
    "dit": {"alphabet": "abcd", "ids": [97, 98, 99, 100], "vocab": vocab_spec(ByteTokenizer()),
            "model": {"name": "dit", "vocab_size": 260, "hidden_size": 32, "n_blocks": 2, "n_heads": 2,
                      "cond_dim": 16, "dropout": 0.0},
            "causal": {"name": "transformer_ar", "vocab_size": 260, "hidden_size": 32, "n_blocks": 2,
                       "n_heads": 2, "dropout": 0.0}},
}
OBJECTIVES = {
    "mdlm": {"name": "mdlm"},
    "mdlm_tc": {"name": "mdlm", "time_conditioning": True},
    "sedd": {"name": "sedd"},
    "d3pm": {"name": "d3pm", "num_timesteps": 100},
    "ar": {"name": "ar"},
}
SAMPLERS = {
    "mdlm": ["ancestral", "cached", "first_hitting", "semi_ar"],
    "mdlm_tc": ["ancestral", "first_hitting", "semi_ar"],
    "sedd": ["sedd", "ancestral", "semi_ar"],
    "d3pm": ["ancestral", "semi_ar"],
    "ar": ["ar", "semi_ar"],
}
CASES = [(f, o) for f in FAMILIES for o in OBJECTIVES]
SAMPLER_CASES = [(f, o, s) for f, o in CASES for s in SAMPLERS[o]]


def _tokens(family: str, n: int, seed: int) -> torch.Tensor:
    fam = FAMILIES[family]
    src = MarkovTextSource(fam["alphabet"], order=2, concentration=0.3, seed=0)
    text = src.sample(n * L_SEQ, seed=seed)
    lut = {c: i for c, i in zip(fam["alphabet"], fam["ids"])}
    return torch.tensor([lut[c] for c in text], dtype=torch.long).view(n, L_SEQ)


def _module(family: str, objective: str) -> DiffusionLitModule:
    fam = FAMILIES[family]
    model = fam["causal"] if objective == "ar" else fam["model"]
    return DiffusionLitModule(model=dict(model), objective=dict(OBJECTIVES[objective]),
                              optim={"lr": 3e-3, "schedule": "constant", "warmup_steps": 0},
                              vocab=fam["vocab"], ema_decay=None, seed=0)


@torch.no_grad()
def _held_out_loss(module: DiffusionLitModule, x: torch.Tensor) -> float:
    module.eval()
    g = torch.Generator().manual_seed(123)
    t = None
    if hasattr(module.objective, "sample_t"):
        t = module.objective.sample_t(x.shape[0], generator=g)
    out = module.objective.loss(x, None, t, denoiser=module.denoiser, generator=g)
    module.train()
    return float(out.loss)


_TRAINED: dict = {}


def trained(family: str, objective: str):
    """(module, loss before, loss after), trained once per case and shared by the tests."""
    key = (family, objective)
    if key not in _TRAINED:
        L.seed_everything(0, verbose=False)
        module = _module(family, objective)
        held_out = _tokens(family, 64, seed=99)
        before = _held_out_loss(module, held_out)
        x = _tokens(family, BATCH * STEPS, seed=1).view(STEPS, BATCH, L_SEQ)
        batches = [{"input_ids": b, "attention_mask": torch.ones_like(b, dtype=torch.bool)} for b in x]
        trainer = L.Trainer(max_steps=STEPS, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                            limit_val_batches=0)
        trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
        _TRAINED[key] = (module, trainer, before, _held_out_loss(module, held_out))
    return _TRAINED[key]


@pytest.mark.parametrize(("family", "objective"), CASES)
def test_training_lowers_the_loss(family, objective):
    module, trainer, before, after = trained(family, objective)
    assert trainer.global_step == STEPS
    assert torch.isfinite(torch.tensor([before, after])).all()
    assert after < before - 0.05, (before, after)


@pytest.mark.parametrize(("family", "objective"), CASES)
def test_checkpoints_round_trip(family, objective, tmp_path):
    module, trainer, _, _ = trained(family, objective)
    x = _tokens(family, 2, seed=5)
    t = torch.full((2,), 0.5)
    module.eval()
    with torch.no_grad():
        reference = module.backbone(x, time=t)
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    reloaded = DiffusionLitModule.load_from_checkpoint(tmp_path / "last.ckpt", map_location="cpu").eval()
    spec = {"model": dict(module.hparams.model), "objective": dict(module.hparams.objective),
            "vocab": module.hparams.vocab, "training": {}}
    exported = load_export(save_export(module.backbone, spec, tmp_path / "export"))
    with torch.no_grad():
        assert torch.equal(reloaded.backbone(x, time=t), reference)
        assert torch.equal(exported.model(x, time=t), reference)
    module.train()


@pytest.mark.parametrize(("family", "objective", "method"), SAMPLER_CASES)
def test_samplers_produce_valid_output(family, objective, method):
    module, _, _, _ = trained(family, objective)
    module.eval()
    vocab = module.vocab
    spec = {"method": "ancestral" if method == "semi_ar" else method, "num_steps": 16, "seed": 0,
            "time_conditioning": bool(getattr(module.objective.config, "time_conditioning", False))}
    if objective == "ar":
        spec = {"method": "ar", "seed": 0}
    elif method == "semi_ar" and objective == "sedd":
        spec["method"] = "sedd"
    sampler = Sampler(spec, vocab)
    prefix = _tokens(family, 1, seed=7)[0, :5]
    with torch.no_grad():
        if method == "semi_ar":  # windows of L_SEQ, L_SEQ // 2 new tokens each, as genodiff sample does
            length = 2 * L_SEQ + 5
            x = torch.full((3, length), vocab.mask_id)
            x[:, :5] = prefix
            window = lambda x_init, generator: sampler.sample(module.denoiser, x_init=x_init, generator=generator)
            tokens, calls, steps = fill(window, x, vocab.mask_id, L_SEQ, L_SEQ // 2, torch.Generator().manual_seed(0))
            out = SampleOutput(tokens, calls, steps)
        else:
            known = torch.full((L_SEQ,), vocab.mask_id)
            known[:5] = prefix
            out = sampler.sample(module.denoiser, 3, L_SEQ, x_init=known.expand(3, L_SEQ).clone())
            length = L_SEQ
    module.train()
    tokens = out.tokens
    assert tokens.shape == (3, length) and out.num_denoiser_calls > 0
    assert not (tokens == vocab.mask_id).any()
    assert vocab.allowed_mask()[tokens].all()
    assert torch.equal(tokens[:, :5], prefix.expand(3, 5))
    # trained on a 4-symbol source: most generated tokens come from its alphabet
    in_alphabet = torch.isin(tokens, torch.tensor(FAMILIES[family]["ids"])).float().mean()
    assert in_alphabet > 0.8, float(in_alphabet)
