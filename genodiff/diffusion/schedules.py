"""Noise schedules for the absorbing ("masking") forward process.

Convention (MDLM, Sahoo et al. 2024, Sec. 3): time ``t`` runs from 0 (clean) to 1 (fully noised).
``alpha_t`` is the probability that a token is still *unmasked* at time ``t``; each token is masked
independently with probability ``1 - alpha_t``. Equivalently ``alpha_t = exp(-sigma(t))`` with the
total noise ``sigma(t) >= 0``.

Every schedule exposes (all elementwise on a FloatTensor ``t`` of any shape, same dtype out):

* ``alpha(t)``, ``dalpha(t)``          -- alpha_t and d alpha_t / dt (<= 0);
* ``sigma(t)``, ``dsigma(t)``          -- -log alpha_t and its derivative (>= 0);
* ``mask_prob(t)``                     -- 1 - alpha_t, computed without cancellation (expm1 etc.);
* ``loss_weight(t)``                   -- the continuous-time NELBO weight
  ``w(t) = -alpha'_t / (1 - alpha_t) = sigma'(t) / expm1(sigma(t))`` of MDLM eq. 10/11
  (nats per masked token; the NELBO is ``E_t[ w(t) * sum_masked -log p_theta(x0|z_t) ]``). For the
  log-linear schedule ``w(t) = 1/t`` exactly;
* ``t_from_mask_prob(m)``              -- the inverse map ``m = 1 - alpha_t -> t`` (used by the
  first-hitting sampler).

Schedules: ``loglinear`` (default; ``alpha_t = 1 - (1 - eps) t``), ``linear`` (sigma linear in t),
``geometric`` (sigma geometric in t), ``cosine`` (``alpha_t = eps + (1-eps) cos(pi t / 2)``),
``cosine_sqr`` (``alpha_t = eps + (1-eps) cos^2(pi t / 2)``). With ``eps = 0`` the alpha-based
schedules reach ``alpha_1 = 0`` exactly (no prior term), which the exactness tests use.

Ends of the schedule: ``alpha(1) > 0`` (``eps > 0``, ``linear``, ``geometric``) leaves tokens unmasked at t = 1,
``alpha(0) < 1`` (``geometric``, ``linear`` with ``sigma_min > 0``) masks some at t = 0. The samplers always
start from all-``[MASK]`` at t = 1 and reveal what is left in their last step: they sample the reverse process
of the forward process *conditioned on being all-[MASK] at t = 1*, :class:`ConditionedSchedule`
(``1 - alpha~_t = (1 - alpha_t) / (1 - alpha_1)``, same loss weight ``w(t)``), whose prior term is exactly 0.
The likelihood bounds use it (see :meth:`NoiseSchedule.conditioned`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import torch

from genodiff.diffusion.specs import split_spec

__all__ = [
    "NoiseSchedule",
    "LogLinearSchedule",
    "LinearSchedule",
    "GeometricSchedule",
    "CosineSchedule",
    "CosineSqrSchedule",
    "ConditionedSchedule",
    "ScheduleConfig",
    "make_schedule",
]


def _t(t: Any) -> torch.Tensor:
    t = torch.as_tensor(t)
    return t if t.is_floating_point() else t.to(torch.get_default_dtype())


class NoiseSchedule:
    """Base class. Subclasses define either (alpha, dalpha, mask_prob) or (sigma, dsigma); ``params`` names
    their constructor arguments (kept as attributes of the same name)."""

    name = "base"
    params: tuple[str, ...] = ()

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return -torch.log(self.alpha(t))

    def dsigma(self, t: torch.Tensor) -> torch.Tensor:
        return -self.dalpha(t) / self.alpha(t)

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(-self.sigma(t))

    def dalpha(self, t: torch.Tensor) -> torch.Tensor:
        t = _t(t)
        return -self.dsigma(t) * self.alpha(t)

    def log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return -self.sigma(t)

    def mask_prob(self, t: torch.Tensor) -> torch.Tensor:
        """1 - alpha_t, as -expm1(-sigma) (no cancellation for small t)."""
        return -torch.expm1(-self.sigma(t))

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor:
        """w(t) = -alpha'_t / (1 - alpha_t) (MDLM eq. 10/11), >= 0; +inf where 1 - alpha_t = 0."""
        t = _t(t)
        return -self.dalpha(t) / self.mask_prob(t)

    def t_from_mask_prob(self, m: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def ends(self) -> tuple[float, float]:
        """``(1 - alpha(0), 1 - alpha(1))``: the mask probabilities at t = 0 and t = 1 (float64)."""
        m = self.mask_prob(torch.tensor([0.0, 1.0], dtype=torch.float64))
        return float(m[0]), float(m[1])

    def conditioned(self) -> "NoiseSchedule":
        """This schedule conditioned on all-[MASK] at t = 1 (:class:`ConditionedSchedule`); itself when
        ``alpha(1) = 0`` already, up to rounding (the same object: bit-identical results)."""
        return self if self.ends()[1] >= 1.0 - 1e-12 else ConditionedSchedule(self)  # 1e-12: rounding of cos

    def config(self) -> dict:
        return {"name": self.name, **{p: getattr(self, p) for p in self.params}}

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        args = ", ".join(f"{k}={v}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class _EpsSchedule(NoiseSchedule):
    """An alpha-based schedule with ``alpha_1 = eps`` in [0, 1)."""

    params = ("eps",)

    def __init__(self, eps: float = 1e-3):
        if not 0.0 <= eps < 1.0:
            raise ValueError(f"eps must be in [0, 1), got {eps}")
        self.eps = float(eps)


class _SigmaSchedule(NoiseSchedule):
    """A sigma-based schedule between ``sigma_min`` and ``sigma_max``; ``w(t) = sigma'(t) / expm1(sigma(t))``."""

    params = ("sigma_min", "sigma_max")

    def loss_weight(self, t):
        t = _t(t)
        return self.dsigma(t) / torch.expm1(self.sigma(t))


class LogLinearSchedule(_EpsSchedule):
    """alpha_t = 1 - (1 - eps) t; sigma = -log1p(-(1-eps) t); w(t) = 1/t (MDLM default)."""

    name = "loglinear"

    def alpha(self, t):
        return 1.0 - (1.0 - self.eps) * _t(t)

    def dalpha(self, t):
        t = _t(t)
        return torch.full_like(t, -(1.0 - self.eps))

    def sigma(self, t):
        return -torch.log1p(-(1.0 - self.eps) * _t(t))

    def dsigma(self, t):
        t = _t(t)
        return (1.0 - self.eps) / (1.0 - (1.0 - self.eps) * t)

    def mask_prob(self, t):
        return (1.0 - self.eps) * _t(t)

    def loss_weight(self, t):
        return 1.0 / _t(t)

    def t_from_mask_prob(self, m):
        return (_t(m) / (1.0 - self.eps)).clamp(0.0, 1.0)


class LinearSchedule(_SigmaSchedule):
    """sigma(t) = sigma_min + (sigma_max - sigma_min) t (linear total noise)."""

    name = "linear"

    def __init__(self, sigma_min: float = 0.0, sigma_max: float = 10.0):
        if not 0.0 <= sigma_min < sigma_max:
            raise ValueError("need 0 <= sigma_min < sigma_max")
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)

    def sigma(self, t):
        return self.sigma_min + (self.sigma_max - self.sigma_min) * _t(t)

    def dsigma(self, t):
        return torch.full_like(_t(t), self.sigma_max - self.sigma_min)

    def t_from_mask_prob(self, m):
        s = -torch.log1p(-_t(m))
        return ((s - self.sigma_min) / (self.sigma_max - self.sigma_min)).clamp(0.0, 1.0)


class GeometricSchedule(_SigmaSchedule):
    """sigma(t) = sigma_min^(1-t) * sigma_max^t (SEDD's geometric schedule)."""

    name = "geometric"

    def __init__(self, sigma_min: float = 1e-4, sigma_max: float = 20.0):
        if not 0.0 < sigma_min < sigma_max:
            raise ValueError("need 0 < sigma_min < sigma_max")
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self._log_ratio = math.log(self.sigma_max / self.sigma_min)

    def sigma(self, t):
        return self.sigma_min * torch.exp(self._log_ratio * _t(t))

    def dsigma(self, t):
        return self.sigma(t) * self._log_ratio

    def t_from_mask_prob(self, m):
        s = -torch.log1p(-_t(m))
        return (torch.log(s / self.sigma_min) / self._log_ratio).clamp(0.0, 1.0)


class CosineSchedule(_EpsSchedule):
    """alpha_t = eps + (1-eps) cos(pi t / 2); 1 - alpha_t = 2 (1-eps) sin^2(pi t / 4)."""

    name = "cosine"

    def alpha(self, t):
        return self.eps + (1.0 - self.eps) * torch.cos(0.5 * math.pi * _t(t))

    def dalpha(self, t):
        return -(1.0 - self.eps) * 0.5 * math.pi * torch.sin(0.5 * math.pi * _t(t))

    def mask_prob(self, t):
        return 2.0 * (1.0 - self.eps) * torch.sin(0.25 * math.pi * _t(t)) ** 2

    def t_from_mask_prob(self, m):
        r = (_t(m) / (2.0 * (1.0 - self.eps))).clamp(0.0, 0.5)
        return (4.0 / math.pi * torch.asin(torch.sqrt(r))).clamp(0.0, 1.0)


class CosineSqrSchedule(_EpsSchedule):
    """alpha_t = eps + (1-eps) cos^2(pi t / 2); 1 - alpha_t = (1-eps) sin^2(pi t / 2)."""

    name = "cosine_sqr"

    def alpha(self, t):
        return self.eps + (1.0 - self.eps) * torch.cos(0.5 * math.pi * _t(t)) ** 2

    def dalpha(self, t):
        return -(1.0 - self.eps) * 0.5 * math.pi * torch.sin(math.pi * _t(t))

    def mask_prob(self, t):
        return (1.0 - self.eps) * torch.sin(0.5 * math.pi * _t(t)) ** 2

    def t_from_mask_prob(self, m):
        r = (_t(m) / (1.0 - self.eps)).clamp(0.0, 1.0)
        return (2.0 / math.pi * torch.asin(torch.sqrt(r))).clamp(0.0, 1.0)


class ConditionedSchedule(NoiseSchedule):
    """The forward process of ``base`` conditioned on every token being masked at t = 1.

    Each token's masking time has the law of ``base``'s given that it is <= 1:
    ``1 - alpha~_t = (1 - alpha_t) / (1 - alpha_1)``, ``alpha~_t = (alpha_t - alpha_1) / (1 - alpha_1)``, so
    ``alpha~(1) = 0`` and the NELBO has no prior term against the all-[MASK] start of the samplers. The reverse
    transition probabilities ``(alpha_s - alpha_t) / (1 - alpha_t)`` and the loss weight
    ``w(t) = -alpha'_t / (1 - alpha_t)`` are those of ``base``: this is the process the samplers simulate.
    ``alpha~(0) = (alpha_0 - alpha_1) / (1 - alpha_1)`` is < 1 when ``base``'s is.
    """

    def __init__(self, base: NoiseSchedule):
        self.base = base
        self.name = base.name
        self._m1 = base.ends()[1]
        self._a1 = float(base.alpha(torch.tensor(1.0, dtype=torch.float64)))
        if not self._m1 > 0.0:
            raise ValueError(f"cannot condition schedule {base!r} on all-[MASK] at t = 1: nothing is masked there")

    def mask_prob(self, t):
        return self.base.mask_prob(t) / self._m1

    def alpha(self, t):
        return (self.base.alpha(t) - self._a1) / self._m1

    def dalpha(self, t):
        return self.base.dalpha(t) / self._m1

    def sigma(self, t):
        return -torch.log(self.alpha(t))

    def dsigma(self, t):
        return -self.dalpha(t) / self.alpha(t)

    def loss_weight(self, t):
        return self.base.loss_weight(t)

    def t_from_mask_prob(self, m):
        return self.base.t_from_mask_prob(_t(m) * self._m1)

    def config(self) -> dict:
        return {**self.base.config(), "conditioned_on_all_mask_at_1": True}


_SCHEDULES = {
    c.name: c
    for c in (LogLinearSchedule, LinearSchedule, GeometricSchedule, CosineSchedule, CosineSqrSchedule)
}


@dataclass
class ScheduleConfig:
    """Plain description of a schedule; ``eps`` is used by alpha-based schedules, ``sigma_min`` /
    ``sigma_max`` by sigma-based ones (``None`` = class default)."""

    name: str = "loglinear"
    eps: float | None = None
    sigma_min: float | None = None
    sigma_max: float | None = None

    def build(self) -> NoiseSchedule:
        return make_schedule(self)


def make_schedule(spec: "str | Mapping[str, Any] | ScheduleConfig | NoiseSchedule | None" = None, **kwargs) -> NoiseSchedule:
    """Build a schedule from a name, a dict/config (``{"name": ..., **ctor_kwargs}``) or kwargs.

    ``None`` keys are dropped so a Hydra config can list every field.
    """
    if isinstance(spec, NoiseSchedule):
        return spec
    if isinstance(spec, ScheduleConfig):
        spec = asdict(spec)
    name, args = split_spec(spec, kwargs, default="loglinear", known=_SCHEDULES, what="noise schedule")
    args = {k: v for k, v in args.items() if v is not None}
    cls = _SCHEDULES[name]
    bad = set(args) - set(cls.params)
    if bad:
        raise ValueError(f"schedule {name!r} does not take {sorted(bad)}")
    return cls(**args)
