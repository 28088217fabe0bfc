"""On text with a known entropy, a trained tiny DiT's MDLM NELBO approaches the true entropy from above.

Source: an order-2 Markov chain over "abc" with Dirichlet(0.3) transitions (``data=text_synthetic``,
``data.synthetic.alphabet=abc``), chunked into 32-symbol items without BOS/EOS, byte tokens. The best
achievable nats/token on such chunks is ``H = block_entropy(32) / 32`` (exact); a model that ignores context
reaches at best the stationary unigram entropy ``H0``. The NELBO is an upper bound on the model's NLL,
itself >= H, so the held-out NELBO must stay above H (up to its standard error) and fall towards it.

The fast test trains 200 steps (a loose bound: clearly below H0, above H); the slow one trains 1500 steps
and must come within 0.12 nats of H (measured: 0.488 +- 0.016 vs H = 0.432).
"""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from genodiff.data.text.corpus import MarkovTextSource
from genodiff.tasks import train
from genodiff.tasks.evaluate import text_nelbo
from genodiff.training.text_datamodule import TextDataModule

SEQ_LEN = 32


def _train_and_score(tmp_path, steps: int, num_samples: int):
    overrides = ["experiment/pretrain=text_synthetic", f"max_steps={steps}", f"data.seq_len={SEQ_LEN}",
                 "data.synthetic.alphabet=abc", "data.max_eval_items=128", "val_every_n_steps=0", "loggers=[]",
                 "progress=false", f"output_dir={tmp_path / 'run'}", "model.hidden_size=64", "model.n_blocks=2",
                 "global_batch_size=64", "max_per_device_batch_size=64", "optim.lr=3e-3", "optim.warmup_steps=20"]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="genodiff.configs", version_base="1.3"):
            cfg = compose(config_name="pretrain", overrides=overrides)
    finally:
        GlobalHydra.instance().clear()
    summary = train.run(cfg)
    dm = TextDataModule(OmegaConf.to_container(cfg.data), batch_size=32)
    dm.setup()
    source = MarkovTextSource.from_config(cfg.data.synthetic)
    stats = text_nelbo(summary["export"], dm, "test", num_samples=num_samples, method="num_masked")
    return stats, source.block_entropy(SEQ_LEN) / SEQ_LEN, source.unigram_entropy()


def test_nelbo_falls_below_the_unigram_entropy_and_stays_above_the_true_entropy(tmp_path):
    stats, h, h0 = _train_and_score(tmp_path, steps=200, num_samples=4)
    nelbo, se = stats["nats_per_token"], stats["nats_per_token_stderr"]
    assert h0 - h > 0.6  # the source rewards context
    assert nelbo >= h - 3 * se - 1e-3, (nelbo, se, h)
    assert nelbo < h0 - 0.15, (nelbo, h0)  # uses context, not only symbol frequencies
    assert nelbo - h < 0.6, (nelbo, h)


@pytest.mark.slow
def test_nelbo_approaches_the_true_entropy_from_above(tmp_path):
    stats, h, _ = _train_and_score(tmp_path, steps=1500, num_samples=16)
    nelbo, se = stats["nats_per_token"], stats["nats_per_token_stderr"]
    assert h - 3 * se - 1e-3 <= nelbo <= h + 0.12, (nelbo, se, h)
