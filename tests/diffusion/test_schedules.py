import math

import pytest
import torch

from genodiff.diffusion.schedules import LogLinearSchedule, ScheduleConfig, make_schedule

NAMES = ["loglinear", "linear", "geometric", "cosine", "cosine_sqr"]
T = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)


@pytest.mark.parametrize("name", NAMES)
def test_monotone_and_endpoints(name):
    s = make_schedule(name)
    t = torch.linspace(0, 1, 1001, dtype=torch.float64)
    a = s.alpha(t)
    assert (a[1:] < a[:-1]).all()
    assert abs(float(a[0]) - 1.0) < 1e-3 and float(a[-1]) < 2e-3
    assert (s.dalpha(T) < 0).all() and (s.dsigma(T) > 0).all()
    torch.testing.assert_close(s.mask_prob(t), 1.0 - a, atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.exp(-s.sigma(T)), s.alpha(T), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_derivatives_match_finite_differences(name):
    s = make_schedule(name)
    h = 1e-6
    fd_a = (s.alpha(T + h) - s.alpha(T - h)) / (2 * h)
    fd_s = (s.sigma(T + h) - s.sigma(T - h)) / (2 * h)
    torch.testing.assert_close(s.dalpha(T), fd_a, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(s.dsigma(T), fd_s, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_loss_weight_and_inverse(name):
    s = make_schedule(name)
    naive = -s.dalpha(T) / (1.0 - s.alpha(T))
    torch.testing.assert_close(s.loss_weight(T), naive, rtol=1e-8, atol=0)
    torch.testing.assert_close(s.t_from_mask_prob(s.mask_prob(T)), T, rtol=1e-8, atol=1e-9)
    # small t: no cancellation (relative accuracy of 1 - alpha)
    tiny = torch.tensor([1e-7], dtype=torch.float64)
    assert s.mask_prob(tiny).item() > 0 and math.isfinite(s.loss_weight(tiny).item())


def test_loglinear_weight_is_one_over_t():
    s = LogLinearSchedule(eps=1e-3)
    torch.testing.assert_close(s.loss_weight(T), 1.0 / T)
    torch.testing.assert_close(s.alpha(T), 1 - (1 - 1e-3) * T)


def test_factory():
    assert make_schedule({"name": "cosine", "eps": 0.0}).eps == 0.0
    assert make_schedule(ScheduleConfig(name="linear", sigma_max=20.0)).sigma_max == 20.0
    with pytest.raises(ValueError):
        make_schedule("nope")
    with pytest.raises(ValueError):
        make_schedule({"name": "loglinear", "sigma_max": 3.0})
