"""Text data: local files / folders / JSONL, splits, packing vs padded modes, memmap cache reuse, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from genodiff.config import resolve_text_config
from genodiff.data.text.corpus import MarkovTextSource, TextSourceConfig, load_documents
from genodiff.errors import InputError
from genodiff.training.datamodule import StepBatchSampler
from genodiff.training.text_datamodule import TextDataModule

DOCS = [f"Document number {i}: " + "lorem ipsum dolor sit amet " * (1 + i % 5) for i in range(40)]


@pytest.fixture
def jsonl(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"text": d, "id": i}) + "\n" for i, d in enumerate(DOCS)))
    return path


def _dm(tmp_path, files, **kw):
    cfg = {"source": "local", "text_files": [str(f) for f in files], "tokenizer": "byte", "seq_len": 32,
           "cache_dir": str(tmp_path / "cache"), "valid_fraction": 0.1, "test_fraction": 0.1, **kw}
    dm = TextDataModule(cfg, batch_size=4, max_steps=10)
    dm.setup()
    return dm


def test_local_sources_files_folders_jsonl_lines(tmp_path, jsonl):
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_text("second file")
    (folder / "sub" / "a.md").write_text("first file")
    (folder / "ignored.bin").write_bytes(b"\x00")
    (tmp_path / "lines.txt").write_text("one\n\ntwo\nthree\n")
    cfg = TextSourceConfig(source="local", text_files=[str(folder), str(tmp_path / "lines.txt"), str(jsonl)],
                           line_documents=True, min_documents_for_split=1000, valid_fraction=0.0, test_fraction=0.0)
    docs = load_documents(cfg)
    assert docs["train"][0].startswith("second file\n\nfirst file\n\none\n\ntwo")  # tail split: one text
    cfg.min_documents_for_split = 5
    docs = load_documents(cfg)
    assert docs["train"][:5] == ["second file", "first file", "one", "two", "three"]
    assert docs["train"][5:] == DOCS
    with pytest.raises(InputError, match="no field 'body'"):
        load_documents(TextSourceConfig(text_files=[str(jsonl)], jsonl_field="body"))
    with pytest.raises(InputError, match="file not found"):
        load_documents(TextSourceConfig(text_files=[str(tmp_path / "nope.txt")]))
    with pytest.raises(InputError, match="data.text_files"):
        load_documents(TextSourceConfig(text_files=[]))


def test_document_and_tail_splits(tmp_path, jsonl):
    docs = load_documents(TextSourceConfig(text_files=[str(jsonl)], valid_fraction=0.1, test_fraction=0.1))
    assert docs["train"] == DOCS[:32] and docs["valid"] == DOCS[32:36] and docs["test"] == DOCS[36:]
    book = tmp_path / "book.txt"
    book.write_text(" ".join(f"w{i}" for i in range(2000)))
    docs = load_documents(TextSourceConfig(text_files=[str(book)], valid_fraction=0.1, test_fraction=0.2))
    words = [w for split in ("train", "valid", "test") for d in docs[split] for w in d.split()]
    assert words == [f"w{i}" for i in range(2000)]  # nothing lost, words kept whole, in order
    assert 0.15 < len(docs["test"][0]) / len(book.read_text()) < 0.25


def test_wrap_mode_packs_bos_doc_eos_and_chunks(tmp_path, jsonl):
    dm = _dm(tmp_path, [jsonl], mode="wrap")
    tok = dm.tokenizer
    stream = []
    for d in DOCS[:32]:
        stream += [tok.bos_id, *tok.encode(d), tok.eos_id]
    train = dm.datasets["train"]
    assert len(train) == len(stream) // 32
    got = torch.cat([train[i]["input_ids"] for i in range(len(train))]).tolist()
    assert got == stream[: len(train) * 32]
    assert all(bool(train[i]["attention_mask"].all()) for i in range(len(train)))
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape == (4, 32) and batch["input_ids"].dtype == torch.long
    assert batch["attention_mask"].dtype == torch.bool


def test_padded_mode_one_document_per_item(tmp_path, jsonl):
    dm = _dm(tmp_path, [jsonl], mode="padded", seq_len=64)
    tok = dm.tokenizer
    train = dm.datasets["train"]
    assert len(train) == 32
    for i in (0, 1, 4):
        item = train[i]
        body = tok.encode(DOCS[i])[:62]
        expect = [tok.bos_id, *body, tok.eos_id]
        n = len(expect)
        assert item["input_ids"][:n].tolist() == expect
        assert (item["input_ids"][n:] == tok.pad_id).all()
        assert item["attention_mask"].tolist() == [True] * n + [False] * (64 - n)
    # padding is never noised nor scored
    from genodiff.diffusion.vocab import DiffusionVocab

    vocab = DiffusionVocab.generic(**dm.vocab())
    item = train[0]
    assert not vocab.scorable(item["input_ids"][None], item["attention_mask"][None])[0, ~item["attention_mask"]].any()


def test_memmap_cache_is_reused_and_invalidated(tmp_path, jsonl):
    dm = _dm(tmp_path, [jsonl])
    assert dm.cache_built
    assert isinstance(dm.caches["train"].tokens, np.memmap)
    folder = dm.cache_folder
    again = _dm(tmp_path, [jsonl])
    assert not again.cache_built and again.cache_folder == folder
    assert torch.equal(again.datasets["train"][3]["input_ids"], dm.datasets["train"][3]["input_ids"])
    padded = _dm(tmp_path, [jsonl], mode="padded")  # the mode does not change the cache
    assert not padded.cache_built
    with jsonl.open("a") as handle:
        handle.write(json.dumps({"text": "one more document"}) + "\n")
    changed = _dm(tmp_path, [jsonl])
    assert changed.cache_built and changed.cache_folder != folder
    other_tok = _dm(tmp_path, [jsonl], tokenizer={"kind": "byte"})  # same tokenizer, other spelling: reused
    assert not other_tok.cache_built


def test_resume_continues_the_same_batch_stream(tmp_path, jsonl):
    dm = _dm(tmp_path, [jsonl])
    n = len(dm.datasets["train"])
    full = list(StepBatchSampler(n, 4, 0, 12))
    resumed = list(StepBatchSampler(n, 4, 0, 12, start_micro_batch=5))
    assert resumed == full[5:]
    dm.load_state_dict(dm.state_dict())
    with pytest.raises(InputError, match="seq_len"):
        dm.load_state_dict({**dm.state_dict(), "seq_len": 16})


def test_resolve_text_config_fills_vocab_and_model():
    cfg = OmegaConf.create({"data": {"kind": "text", "tokenizer": "byte"}, "vocab": "dna",
                            "model": {"name": "dit", "hidden_size": 32}})
    out = resolve_text_config(cfg)
    assert out.vocab == {"num_tokens": 260, "mask_id": 259, "pad_id": 258}
    assert out.model.vocab_size == 260 and cfg.vocab == "dna"
    dna = OmegaConf.create({"data": {"dataset": "demo"}, "vocab": "dna"})
    assert resolve_text_config(dna) is dna
    bad = OmegaConf.create({"data": {"kind": "text", "tokenizer": "byte"}, "vocab": {"num_tokens": 12, "mask_id": 3},
                            "model": {"name": "dit"}})
    with pytest.raises(InputError, match="num_tokens"):
        resolve_text_config(bad)


def test_markov_source_entropy_is_exact():
    src = MarkovTextSource("abcd", order=2, concentration=0.3, seed=0)
    h = src.entropy_rate()
    assert 0 < h < np.log(4)
    text = src.sample(200_000, seed=1)
    idx = np.array(["abcd".index(c) for c in text])
    ctx = idx[:-2] * 4 + idx[1:-1]
    counts = np.zeros((16, 4))
    np.add.at(counts, (ctx, idx[2:]), 1)
    p = counts / counts.sum(1, keepdims=True).clip(1)
    empirical = -(counts / counts.sum() * np.log(np.where(p > 0, p, 1))).sum()
    assert abs(empirical - h) < 0.01
    assert src.block_entropy(64) / 64 > h  # the first two symbols of a chunk cost more than the rate
    assert src.block_entropy(1) == pytest.approx(-(lambda m: (m * np.log(m)).sum())(
        src.stationary.reshape(4, 4).sum(1)))


def test_hf_dataset_by_name_offline_is_one_clear_line(tmp_path, offline):
    dm = TextDataModule({"source": "hf", "hf_dataset": "wikitext-103", "tokenizer": "byte",
                         "cache_dir": str(tmp_path)}, batch_size=2)
    with pytest.raises(InputError) as err:
        dm.setup()
    message = str(err.value)
    assert "wikitext-103" in message and "\n" not in message
    assert "datasets" in message or "offline" in message


def test_unknown_keys_and_modes_are_input_errors():
    with pytest.raises(InputError, match="unknown text data key"):
        TextDataModule({"source": "local", "windw": 3})
    with pytest.raises(InputError, match="data.mode"):
        TextDataModule({"mode": "stream"})
