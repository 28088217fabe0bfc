"""genodiff.diffusion -- the shared masked-diffusion core (pure torch).

Conventions (MDLM, Sahoo et al. 2024): time t in [0, 1], 0 = clean, 1 = fully masked; ``alpha_t``
is the probability a token is still unmasked; losses are in nats; a *denoiser* is any callable
``denoiser(x_t: LongTensor[B, L], t: FloatTensor[B] | None) -> FloatTensor[B, L, V]`` returning raw
logits (``t`` is ``None`` when time conditioning is off). The core applies the SUBS
parameterization itself (no mass on [MASK] or on ids outside ``vocab.allowed_output_ids``;
unmasked tokens are carried over), so backbones know nothing about diffusion.

Modules:

* :mod:`.vocab`       -- :class:`DiffusionVocab` (``.dna()``, ``.generic()``).
* :mod:`.schedules`   -- noise schedules (log-linear, linear, geometric, cosine, cosine-squared).
* :mod:`.process`     -- forward masking, stratified time sampling over a global batch, SUBS.
* :mod:`.objectives`  -- MDLM (continuous / discrete), AR, SEDD-absorbing, D3PM-absorb;
  ``objective.loss(x0, attention_mask, t=None) -> ObjectiveOutput``.
* :mod:`.sampling`    -- ancestral, cached, first-hitting, SEDD analytic, AR (one window each; longer
  sequences: :func:`genodiff.generate.conditioning.fill`); conditioning on known positions;
  :class:`Sampler` / :class:`SamplerConfig`.
* :mod:`.likelihood`  -- :func:`estimate_nelbo` (mean, standard error, bits/token, perplexity bound).
* :mod:`.plaid`       -- Plaid: Gaussian diffusion on learned token embeddings (VDM bound, learned schedule
  endpoints, self-conditioning, ancestral sampler); its denoiser takes continuous inputs ``[B, L, C]``.
* :mod:`.testing`     -- exhaustive tiny worlds with the exact denoiser (verification).
"""

# The public names of the core, importable as ``from genodiff.diffusion import ...``.
from genodiff.diffusion.likelihood import NELBOEstimate, estimate_nelbo  # noqa: F401
from genodiff.diffusion.objectives import (  # noqa: F401
    ARConfig,
    ARObjective,
    D3PMConfig,
    D3PMObjective,
    MDLMConfig,
    MDLMObjective,
    ObjectiveOutput,
    SEDDConfig,
    SEDDObjective,
    make_objective,
)
from genodiff.diffusion.plaid import PlaidConfig, PlaidObjective, plaid_sample  # noqa: F401
from genodiff.diffusion.process import mask_tokens, stratified_times, subs_log_probs  # noqa: F401
from genodiff.diffusion.sampling import (  # noqa: F401
    SampleOutput,
    Sampler,
    SamplerConfig,
    ancestral_sample,
    ar_sample,
    first_hitting_sample,
    make_sampler,
    sedd_analytic_sample,
)
from genodiff.diffusion.schedules import NoiseSchedule, ScheduleConfig, make_schedule  # noqa: F401
from genodiff.diffusion.vocab import DiffusionVocab  # noqa: F401
