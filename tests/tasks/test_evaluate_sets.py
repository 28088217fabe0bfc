"""``genodiff evaluate sets=[...]``: NELBO / perplexity bounds of several text models on several corpora, one table.

Tiny random exports (an MDLM DiT and an AR transformer over bytes, written here) on local corpora written in the
test. Oracles: the AR rows equal an independent exact NLL over the same windows; MDLM rows equal
``text_nelbo`` on a DataModule built by hand with the checkpoint's own settings; ``split: all`` covers the whole
text. Negative controls: another corpus, another detokenizer or another tokenizer changes the numbers and token
counts that the table reports next to them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from genodiff.cli import main
from genodiff.config import compose_config
from genodiff.data.text.detokenize import detokenizer, lm1b, ptb, wikitext
from genodiff.data.text.tokenizers import ByteTokenizer
from genodiff.errors import InputError
from genodiff.interop.export import load_model, save_export
from genodiff.models.registry import build_model
from genodiff.tasks import evaluate as E
from genodiff.training.text_datamodule import TextDataModule

SEQ = 32
PROSE = ("The committee met on Tuesday to discuss the budget. Members agreed that the library needs new shelves, "
         "and the treasurer promised a report by the end of the month. ") * 6
PTB_STYLE = ("the company 's shares fell N N % to $ N in early trading and analysts said they do n't expect "
             "a rebound <unk> soon .\n") * 8


ONE_TORCH_THREAD = True  # tiny models only lose to thread synchronisation on a shared machine (tests/conftest.py)


def _byte_export(folder: Path, objective: str, seed: int) -> Path:
    torch.manual_seed(seed)
    if objective == "ar":
        spec_model = {"name": "transformer_ar", "vocab_size": 260, "hidden_size": 32, "n_blocks": 1, "n_heads": 2}
    else:
        spec_model = {"name": "dit", "vocab_size": 260, "hidden_size": 32, "n_blocks": 1, "n_heads": 2,
                      "cond_dim": 16, "time_conditioning": False}
    spec = dict(spec_model)
    model = build_model(spec.pop("name"), **spec)
    with torch.no_grad():  # off the zero-initialised output layer (uniform logits would score every text alike)
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    tok = ByteTokenizer()
    out = save_export(model, {"model": spec_model, "objective": {"name": objective}, "vocab": {
        "num_tokens": 260, "mask_id": 259, "pad_id": 258}, "training": {"text": {
            "tokenizer": tok.spec(), "seq_len": SEQ, "mode": "wrap", "add_bos_eos": True, "bos_id": 256,
            "eos_id": 257}}}, folder)
    tok.save(out / "tokenizer")
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets")
    (root / "prose.txt").write_text(PROSE)
    (root / "ptb.txt").write_text(PTB_STYLE)
    return {"root": root, "mdlm": _byte_export(root / "mdlm", "mdlm", 0), "ar": _byte_export(root / "ar", "ar", 1),
            "cache": root / "cache"}


def _cfg(world, sets, *extra, checkpoints=("mdlm", "ar")):
    ckpts = ",".join(str(world[c]) for c in checkpoints)
    return compose_config("evaluate", ["data=text_local", f"data.text_files=[{world['root'] / 'prose.txt'}]",
                                       f"data.cache_dir={world['cache']}", f"checkpoints=[{ckpts}]",
                                       f"sets={sets}", "num_samples=2", "batch_size=4", "device=cpu",
                                       f"output_dir={world['root'] / 'out'}", *extra])


# -------------------------------------------------------------------------------------------- detokenizers
def test_detokenizers_undo_each_corpus_tokenization():
    assert ptb("the company 's shares fell N N % to $ N and they do n't <unk> .") == \
        "the company's shares fell 1 1 % to $1 and they don't ? ."
    assert ptb("a \\/ b") == "a / b"
    assert wikitext("the 1 @,@ 000 @-@ year ( old ) record = = Title = =") == "the 1,000-year (old) record == Title =="
    assert wikitext("it was big . then \" quoted \" , done") == 'it was big. then "quoted", done'
    assert lm1b("see http : / / x.org , he said ' hi ' .") == "see http://x.org, he said 'hi' ."
    assert detokenizer("lambada")("\u201cyes\u201d , she said  ") == '\n"yes" , she said'
    # negative controls: no detokenizer changes nothing; an unknown name is one input error
    assert detokenizer(None) is None and detokenizer("none") is None
    with pytest.raises(InputError, match="unknown detokenizer 'moses'"):
        detokenizer("moses")


# -------------------------------------------------------------------------------------------- set parsing
def test_text_sets_resolve_corpus_names_paths_and_mappings(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    corpora = {"ptb": {"source": "hf", "hf_dataset": "ptb", "detokenizer": "ptb"}}
    sets = E.text_sets(["ptb", str(tmp_path / "a.txt"), {"name": "b", "source": "local", "text_files": ["q"],
                                                          "split": "valid"}], corpora)
    assert sets == [{"name": "ptb", "split": "test", "data": corpora["ptb"]},
                    {"name": "a", "split": "all", "data": {"source": "local", "text_files": [str(tmp_path / "a.txt")]}},
                    {"name": "b", "split": "valid", "data": {"source": "local", "text_files": ["q"]}}]
    with pytest.raises(InputError, match=r"sets\[0\]: 'nope' is neither a corpus"):
        E.text_sets(["nope"], corpora)
    with pytest.raises(InputError, match="used twice"):
        E.text_sets(["ptb", "ptb"], corpora)
    with pytest.raises(InputError, match="split 'dev'"):
        E.text_sets([{"name": "x", "split": "dev"}], corpora)


# -------------------------------------------------------------------------------------------- the job
def test_one_table_of_models_by_sets_with_exact_oracles(world):
    prose, ptb_file = world["root"] / "prose.txt", world["root"] / "ptb.txt"
    sets = (f"[{prose},{{name:ptb_raw,source:local,text_files:[{ptb_file}],split:all}},"
            f"{{name:ptb_detok,source:local,text_files:[{ptb_file}],split:all,detokenizer:ptb}}]")
    results = E.run(_cfg(world, sets))
    rows = {(Path(r["checkpoint"]).name, r["set"]): r for r in results["rows"]}
    assert set(rows) == {(m, s) for m in ("mdlm", "ar") for s in ("prose", "ptb_raw", "ptb_detok")}
    # split all: the whole text in windows of the checkpoint's seq_len ([BOS] doc [EOS], remainder dropped)
    assert rows["ar", "prose"]["sequences"] == (len(PROSE.strip().encode()) + 2) // SEQ
    assert rows["ar", "prose"]["seq_len"] == SEQ and rows["ar", "prose"]["detokenizer"] == "none"
    # the detokenizer is applied (fewer bytes) and recorded next to the numbers
    assert rows["ar", "ptb_detok"]["detokenizer"] == "ptb"
    assert rows["ar", "ptb_detok"]["sequences"] < rows["ar", "ptb_raw"]["sequences"]
    # oracle 1 (AR, exact): the job's nats/token equal an independent NLL over the same windows
    model = load_model(world["ar"], "cpu")
    dm = TextDataModule({"kind": "text", "source": "local", "text_files": [str(prose)], "tokenizer": "byte",
                         "seq_len": SEQ, "valid_fraction": 0.0, "test_fraction": 0.0,
                         "cache_dir": str(world["cache"])}, batch_size=4)
    dm.setup()
    x = torch.stack([dm.datasets["train"][i]["input_ids"] for i in range(len(dm.datasets["train"]))])
    with torch.no_grad():
        logits = model.module(torch.cat([torch.full((len(x), 1), 259), x[:, :-1]], 1))[..., :260].double()
    allowed = torch.ones(260, dtype=torch.bool)
    allowed[[258, 259]] = False  # [PAD] and [MASK] are never predicted
    logp = torch.log_softmax(logits.masked_fill(~allowed, -math.inf), -1).gather(-1, x[..., None]).squeeze(-1)
    nll = -(logp[allowed[x]]).sum() / allowed[x].sum()
    assert rows["ar", "prose"]["likelihood"] == "exact"
    assert math.isclose(rows["ar", "prose"]["nats_per_token"], float(nll), rel_tol=1e-5)
    # oracle 2 (MDLM): the job's estimate equals text_nelbo on a hand-built DataModule with the same draws
    direct = E.text_nelbo(world["mdlm"], dm, "train", 2, "auto", 0, "cpu")
    assert rows["mdlm", "prose"]["nats_per_token"] == direct["nats_per_token"]
    assert rows["mdlm", "prose"]["likelihood"] == "upper bound" and rows["mdlm", "prose"]["nats_per_token_stderr"] > 0
    # negative control: another corpus gives another number
    assert rows["mdlm", "ptb_raw"]["nats_per_token"] != rows["mdlm", "prose"]["nats_per_token"]
    out = world["root"] / "out"
    report = (out / "report.md").read_text()
    assert "model x set" in report and "| ptb_detok |" in report and "ptb |" in report
    saved = json.loads((out / "results.json").read_text())
    assert len(saved["rows"]) == 6 and (out / "results.csv").read_text().count("\n") == 7


def test_each_checkpoint_reads_with_its_own_tokenizer_or_the_data_settings(world):
    prose = world["root"] / "prose.txt"
    own = E.run(_cfg(world, f"[{prose}]", checkpoints=("ar",)))["rows"][0]
    other = E.run(_cfg(world, f"[{prose}]", "text_settings=data", "data.seq_len=16", checkpoints=("ar",)))["rows"][0]
    assert (own["seq_len"], other["seq_len"]) == (SEQ, 16)
    assert other["sequences"] == (len(PROSE.strip().encode()) + 2) // 16 != own["sequences"]


def test_bad_set_is_one_error_line_and_writes_nothing(world, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["evaluate", "data=text_local", f"data.text_files=[{world['root'] / 'prose.txt'}]",
                 f"checkpoints=[{world['ar']}]", "sets=[no_such_corpus]", f"output_dir={out}", "num_samples=1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("genodiff: error: sets[0]: 'no_such_corpus'")
    assert not out.exists() or not any(out.glob("*.json"))


def test_zero_shot_with_an_imported_hugging_face_mlm(world, tmp_path):
    """A masked LM imported as an export (tiny BERT) is scored with its own WordPiece tokenizer: fewer tokens
    than bytes on the same text, numbers finite, likelihood an upper bound."""
    pytest.importorskip("transformers")
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
    from hf_tiny import tiny_bert

    from genodiff.interop.hf_mlm import import_hf_mlm

    bert = import_hf_mlm(tiny_bert(tmp_path / "bert"), tmp_path / "bert-export", seq_len=SEQ)
    rows = E.run(compose_config("evaluate", [
        "data=text_local", f"data.text_files=[{world['root'] / 'prose.txt'}]", f"data.cache_dir={world['cache']}",
        f"checkpoints=[{bert},{world['ar']}]", f"sets=[{world['root'] / 'prose.txt'}]", "num_samples=2",
        "batch_size=4", "device=cpu", f"output_dir={tmp_path / 'out'}"]))["rows"]
    by = {Path(r["checkpoint"]).name: r for r in rows}
    assert by["bert-export"]["tokens"] < by["ar"]["tokens"]
    assert "V=" in by["bert-export"]["tokenizer"] and np.isfinite(by["bert-export"]["nats_per_token"])
