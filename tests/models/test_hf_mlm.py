"""``model=hf_mlm``: a Hugging Face masked LM as a genodiff backbone (tiny random BERT built offline).

Oracles: the wrapped model's logits and hidden states are the raw transformers model's; an export rebuilt from
its recorded transformers config (original folder gone) gives bit-identical weights and logits. Training: a few
MDLM steps on a periodic token stream bring the held-out NELBO far below the unigram entropy, while the same
steps on the token-shuffled stream (negative control: same unigram statistics, no order) cannot go below it.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from hf_tiny import tiny_bert, transformers  # noqa: F401  (skips the module without transformers)

from genodiff.data.text.tokenizers import vocab_spec
from genodiff.diffusion.build import build_objective, make_vocab
from genodiff.diffusion.process import subs_log_probs
from genodiff.errors import InputError
from genodiff.interop.export import load_export, load_model, save_export
from genodiff.interop.hf_mlm import MDLM_NO_TIME, import_hf_mlm, load_hf_tokenizer
from genodiff.models.hf_mlm import HFMaskedLM
from genodiff.models.registry import build_model


ONE_TORCH_THREAD = True  # tiny models only lose to thread synchronisation on a shared machine (tests/conftest.py)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("hf") / "tiny-bert", seed=0)


def _ids(tok, texts, length=12):
    rows = [[tok.bos_id, *tok.encode(t)][: length - 1] + [tok.eos_id] for t in texts]
    x = torch.full((len(rows), length), tok.pad_id, dtype=torch.long)
    mask = torch.zeros_like(x, dtype=torch.bool)
    for i, r in enumerate(rows):
        x[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = True
    return x, mask


def test_logits_and_hidden_states_equal_the_raw_transformers_model(bert_dir):
    tok = load_hf_tokenizer(bert_dir)
    x, mask = _ids(tok, ["the cat sat on the mat .", "a dog !", "this film was very dull"])
    wrapped = build_model("hf_mlm", pretrained=str(bert_dir)).eval()
    raw = transformers.AutoModelForMaskedLM.from_pretrained(str(bert_dir)).eval()
    with torch.no_grad():
        expected = raw(input_ids=x, attention_mask=mask.long())
        got = wrapped(x, time=torch.rand(3), attention_mask=mask)  # time is ignored: no noise-level input
        hidden = wrapped.hidden_states(x, attention_mask=mask)
        expected_hidden = raw.bert(input_ids=x, attention_mask=mask.long()).last_hidden_state
    assert got.dtype == torch.float32 and got.shape == (3, 12, len(tok.tok.get_vocab()))
    assert torch.equal(got, expected.logits.float())
    assert torch.equal(hidden, expected_hidden)
    # negative control: the padding mask changes the real positions' logits (the comparison above can fail)
    with torch.no_grad():
        unmasked = wrapped(x)
    assert not torch.allclose(unmasked[mask], got[mask])
    assert wrapped.hidden_size == 32 and wrapped.vocab_size == tok.vocab_size


def test_tokenizer_maps_mask_and_pad_into_the_diffusion_vocabulary(bert_dir):
    tok = load_hf_tokenizer(f"{bert_dir}")
    raw = transformers.AutoTokenizer.from_pretrained(str(bert_dir))
    vocab = make_vocab(vocab_spec(tok))
    assert (vocab.mask_id, vocab.pad_id, vocab.size) == (raw.mask_token_id, raw.pad_token_id, len(raw))
    assert vocab.mask_id not in vocab.allowed_output_ids and vocab.pad_id not in vocab.allowed_output_ids
    assert tok.encode("The cat sat") == raw("The cat sat", add_special_tokens=False)["input_ids"]
    # SUBS on the wrapped model's logits: zero mass on [MASK], carry-over of unmasked tokens
    model = build_model("hf_mlm", pretrained=str(bert_dir)).eval()
    x, _ = _ids(tok, ["the cat sat on the mat ."])
    x_t = x.clone()
    x_t[0, 2:5] = vocab.mask_id
    with torch.no_grad():
        logp = subs_log_probs(model(x_t), x_t, vocab)
    kept = x_t != vocab.mask_id
    masked = ~kept
    assert torch.isinf(logp[..., vocab.mask_id]).all() and torch.isinf(logp[masked][:, vocab.pad_id]).all()
    assert torch.equal(logp[kept].argmax(-1), x_t[kept]) and torch.all(logp[kept].max(-1).values == 0)
    assert torch.allclose(logp[masked].exp().sum(-1), torch.ones(int(masked.sum()), dtype=logp.dtype))


def test_export_round_trip_rebuilds_offline_bit_identically(bert_dir, tmp_path):
    source = tmp_path / "copy-of-bert"
    shutil.copytree(bert_dir, source)
    model = build_model("hf_mlm", pretrained=str(source), vocab_size=120)  # grows 113 -> 120 token rows
    assert model.vocab_size == 120
    spec = {"model": model.export_spec(), "objective": dict(MDLM_NO_TIME),
            "vocab": {"num_tokens": 120, "mask_id": 4, "pad_id": 0}}
    folder = save_export(model, spec, tmp_path / "export")
    shutil.rmtree(source)  # the rebuild must not need the original folder
    loaded = load_export(folder).model
    assert isinstance(loaded, HFMaskedLM) and loaded.config.hf_config["vocab_size"] == 120
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randint(0, 120, (2, 9))
    with torch.no_grad():
        assert torch.equal(model.eval()(x), loaded(x))
    # negative control: a different seed's model differs (the equality above is not vacuous)
    other = HFMaskedLM(**{k: v for k, v in model.export_spec().items() if k != "name"})
    assert not torch.equal(other.state_dict()["model.bert.embeddings.word_embeddings.weight"],
                           a["model.bert.embeddings.word_embeddings.weight"])


def test_import_hf_mlm_gives_an_export_every_job_loads(bert_dir, tmp_path):
    folder = import_hf_mlm(bert_dir, tmp_path / "bert-export", seq_len=32)
    assert (folder / "tokenizer" / "tokenizer.json").is_file()
    loaded = load_model(folder, "cpu")
    raw = transformers.AutoModelForMaskedLM.from_pretrained(str(bert_dir)).eval()
    x = torch.randint(5, 100, (2, 16))
    with torch.no_grad():
        assert torch.equal(loaded.denoiser(x, None), raw(input_ids=x).logits.float()[..., : loaded.vocab.size])
    assert loaded.spec["training"]["text"]["seq_len"] == 32 and loaded.vocab.mask_id == 4
    assert loaded.spec["model"]["hf_config"]["model_type"] == "bert"


def _periodic(tok, n_rows: int, length: int, generator: torch.Generator, shuffle: bool) -> torch.Tensor:
    """Rows of the period-7 stream 'the cat sat on the mat .' (all in phase: each position has one token, which
    a model learns through its position embeddings); ``shuffle``: the same tokens in a random order per row (the
    negative control: unigram statistics only)."""
    cycle = torch.tensor(tok.encode("the cat sat on the mat ."))
    rows = cycle.repeat(length // len(cycle) + 1)[:length].repeat(n_rows, 1)
    if shuffle:
        rows = torch.stack([r[torch.randperm(length, generator=generator)] for r in rows])
    return rows


def _nelbo(model, objective, x, draws=8) -> float:
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        total = sum(float(objective.loss(x, None, denoiser=model, generator=g).loss) for _ in range(draws))
    return total / draws


def test_mdlm_training_learns_the_order_a_shuffled_control_cannot(bert_dir):
    tok = load_hf_tokenizer(bert_dir)
    vocab = make_vocab(vocab_spec(tok))
    objective = build_objective({**MDLM_NO_TIME, "sampling_eps": 0.0}, vocab)
    held_out = _periodic(tok, 8, 24, torch.Generator(), shuffle=False)
    cycle = tok.encode("the cat sat on the mat .")
    counts = torch.bincount(torch.tensor(cycle))
    p = counts[counts > 0].double() / len(cycle)
    unigram = float(-(p * p.log()).sum())  # nats/token: the best a model of shuffled text can do here
    results = {}
    for shuffle in (False, True):
        model = build_model("hf_mlm", pretrained=str(bert_dir))
        start = _nelbo(model.eval(), objective, held_out)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        gen = torch.Generator().manual_seed(1)
        model.train()
        for _ in range(80):
            x0 = _periodic(tok, 16, 24, gen, shuffle)
            loss = objective.loss(x0, None, denoiser=model, generator=gen).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
        results[shuffle] = (start, _nelbo(model.eval(), objective, held_out))
    (start, trained), (_, control) = results[False], results[True]
    assert start > unigram, (results, unigram)  # an untrained model is worse than unigram statistics
    assert trained < 0.25 * unigram, (results, unigram)  # measured 0.03 vs 1.75
    assert control > 0.9 * unigram, (results, unigram)  # the control cannot learn what its data does not hold
    assert math.isfinite(trained)


def test_bad_names_are_one_line_input_errors(tmp_path):
    with pytest.raises(InputError, match="model.pretrained"):
        build_model("hf_mlm", pretrained=str(tmp_path / "no-such-folder-xyz/really"))
    with pytest.raises(ValueError, match="model.pretrained"):
        build_model("hf_mlm")


def test_finetune_preset_trains_and_exports_a_model_that_reloads_offline(bert_dir, tmp_path):
    """``genodiff finetune text_hf_mlm``: MDLM on the model's own tokenizer through the training job; the export
    records the transformers config and reloads after the original folder is gone, bit-identically."""
    from genodiff.config import compose_config
    from genodiff.tasks import train

    source = tmp_path / "bert"
    shutil.copytree(bert_dir, source)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat . the dog sat on the mat .\n" * 40)
    cfg = compose_config("finetune", [
        "experiment/finetune=text_hf_mlm", f"model.pretrained={source}", "data=text_local",
        f"data.text_files=[{corpus}]", "data.tokenizer=${model.pretrained}", f"data.cache_dir={tmp_path / 'cache'}",
        "data.seq_len=16", "data.max_eval_items=4", "global_batch_size=4", "max_per_device_batch_size=4",
        "max_steps=3", "val_every_n_steps=0", "checkpoint_every_n_steps=3", "loggers=[csv]", "progress=false",
        "ema_decay=null", f"output_dir={tmp_path / 'run'}"])
    summary = train.run(cfg)
    export = Path(summary["export"])
    spec = json.loads((export / "genodiff.json").read_text())
    assert spec["model"]["name"] == "hf_mlm" and spec["model"]["hf_config"]["model_type"] == "bert"
    assert spec["vocab"] == {"num_tokens": 113, "mask_id": 4, "pad_id": 0}
    assert spec["objective"]["time_conditioning"] is False and (export / "tokenizer" / "tokenizer.json").is_file()
    before = load_model(export, "cpu")
    x = torch.randint(5, 100, (2, 16))
    with torch.no_grad():
        logits = before.denoiser(x, None)
    shutil.rmtree(source)
    after = load_model(export, "cpu")
    with torch.no_grad():
        assert torch.equal(after.denoiser(x, None), logits)
    # the exported weights are the fine-tuned ones: close to the starting model, but not equal (training happened)
    start = transformers.AutoModelForMaskedLM.from_pretrained(str(bert_dir)).state_dict()
    tuned = after.module.state_dict()
    key = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(start[key], tuned["model." + key])
    assert torch.allclose(start[key], tuned["model." + key], atol=1e-2)
