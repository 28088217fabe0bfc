"""Text tokenizers: byte fallback, trained byte-level BPE, Hugging Face tokenizer files, [MASK] added, offline."""

from __future__ import annotations

import json
import time

import pytest

from genodiff.data.text.tokenizers import ByteTokenizer, HFTokenizer, load_tokenizer, train_bpe, vocab_spec
from genodiff.diffusion.vocab import DiffusionVocab
from genodiff.errors import InputError

TEXTS = ["Hello, world!", "naïve café — ünïcödé ✓ 漢字", "  leading and trailing spaces  ", "line\nbreaks\ttabs", ""]


def test_byte_tokenizer_round_trip_and_specials():
    tok = load_tokenizer("byte")
    assert isinstance(tok, ByteTokenizer) and tok.vocab_size == 260
    assert (tok.bos_id, tok.eos_id, tok.pad_id, tok.mask_id) == (256, 257, 258, 259)
    for text in TEXTS:
        ids = tok.encode(text)
        assert all(0 <= i < 256 for i in ids)
        assert tok.decode(ids) == text
        assert tok.decode([tok.bos_id, *ids, tok.eos_id, tok.pad_id, tok.mask_id]) == text  # specials dropped
    vocab = DiffusionVocab.generic(**vocab_spec(tok))
    assert vocab.size == 260 and vocab.mask_id == 259 and vocab.pad_id == 258
    assert tok.bos_id in vocab.allowed_output_ids and tok.mask_id not in vocab.allowed_output_ids


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    words = ("the quick brown fox jumps over the lazy dog while diffusion models denoise masked tokens "
             "and autoregressive models predict the next token ").split()
    lines = [" ".join(words[(i * 7) % len(words):] + words[: (i * 7) % len(words)]) for i in range(200)]
    (root / "a.txt").write_text("\n".join(lines[:100]))
    (root / "docs").mkdir()
    (root / "docs" / "b.jsonl").write_text("".join(json.dumps({"text": l}) + "\n" for l in lines[100:]))
    return root


def test_train_bpe_round_trip_and_reload(corpus, tmp_path):
    pytest.importorskip("tokenizers")
    out = train_bpe([corpus / "a.txt", corpus / "docs"], vocab_size=300, out_dir=tmp_path / "bpe")
    assert (out / "tokenizer.json").is_file()
    tok = load_tokenizer(out)
    assert isinstance(tok, HFTokenizer)
    assert (tok.bos_id, tok.eos_id, tok.pad_id, tok.mask_id) == (0, 1, 2, 3)
    assert 260 <= tok.vocab_size <= 300 and not tok.added
    sentence = "the lazy dog jumps over the quick brown fox"
    assert len(tok.encode(sentence)) < len(sentence.encode())  # merges were learned
    for text in TEXTS:  # byte-level: lossless on anything, including unseen characters
        assert tok.decode(tok.encode(text)) == text
    again = load_tokenizer(out / "tokenizer.json")
    assert again.encode(sentence) == tok.encode(sentence) and again.fingerprint() == tok.fingerprint()


def test_mask_and_pad_added_when_missing(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers

    raw = tokenizers.Tokenizer(models.WordLevel({"hello": 0, "world": 1, "[UNK]": 2}, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.save(str(tmp_path / "tokenizer.json"))
    tok = load_tokenizer(tmp_path / "tokenizer.json")
    assert tok.encode("hello world") == [0, 1]  # original ids unchanged
    assert set(tok.added) == {"[MASK]", "[PAD]", "[BOS]", "[EOS]"}
    assert tok.vocab_size == 7 and {tok.mask_id, tok.pad_id, tok.bos_id, tok.eos_id} == {3, 4, 5, 6}
    assert tok.decode([tok.bos_id, 0, 1, tok.mask_id]) == "hello world"
    # saved with the added tokens: reloading gives the same ids and adds nothing
    tok.save(tmp_path / "saved")
    again = load_tokenizer(tmp_path / "saved")
    assert (again.mask_id, again.pad_id, again.bos_id, again.eos_id) == (tok.mask_id, tok.pad_id, tok.bos_id, tok.eos_id)
    assert not again.added


def test_existing_mask_token_is_used(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models

    raw = tokenizers.Tokenizer(models.WordLevel({"<s>": 0, "</s>": 1, "<pad>": 2, "<mask>": 3, "a": 4, "[UNK]": 5},
                                                unk_token="[UNK]"))
    raw.save(str(tmp_path / "t.json"))
    tok = load_tokenizer(tmp_path / "t.json")
    assert (tok.bos_id, tok.eos_id, tok.pad_id, tok.mask_id, tok.vocab_size) == (0, 1, 2, 3, 6) and not tok.added


def test_hub_name_offline_is_one_clear_line(offline):
    pytest.importorskip("tokenizers")
    started = time.time()
    with pytest.raises(InputError) as err:
        load_tokenizer("gpt2")
    message = str(err.value)
    assert "offline" in message and "gpt2" in message and "\n" not in message
    assert time.time() - started < 10  # no retry loop against an unreachable Hub


def test_bad_tokenizer_inputs(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_tokenizer(str(tmp_path / "missing.json"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no tokenizer.json"):
        load_tokenizer(tmp_path / "empty")
    with pytest.raises(InputError, match="vocab_size"):
        train_bpe([tmp_path], vocab_size=10, out_dir=tmp_path / "x")


def test_data_tokenizer_job(corpus, tmp_path, capsys):
    pytest.importorskip("tokenizers")
    from omegaconf import OmegaConf

    from genodiff.tasks.data import run_tokenizer

    result = run_tokenizer(OmegaConf.create({"files": [str(corpus)], "vocab_size": 280, "out_dir": str(tmp_path / "tk")}))
    assert result["mask_id"] == 3 and result["vocab_size"] <= 280
    assert json.loads(capsys.readouterr().out.strip())["tokenizer"] == str(tmp_path / "tk")
    with pytest.raises(InputError, match="files"):
        run_tokenizer(OmegaConf.create({"files": [], "out_dir": str(tmp_path)}))
    result = run_tokenizer(OmegaConf.create({"action": "tokenizer", "dataset": str(corpus), "vocab_size": 270,
                                             "out_dir": str(tmp_path / "tk2")}))
    assert result["vocab_size"] <= 270
