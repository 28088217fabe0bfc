"""GLUE-style text classification in ``genodiff benchmark`` (``data.kind=text``) with a Hugging Face encoder.

Oracles: sentence and sentence-pair encodings (truncation included) equal the transformers tokenizer's own
``[CLS] a [SEP] b [SEP]`` encodings; GLUE TSVs with bare quotes are read as written. End to end: a tiny random BERT
(``model=hf_mlm``) and its MDLM-style export (``model.init=[pretrained,<export>]``, the paper's "BERT vs BERT
fine-tuned with MDLM" from configs) learn an easy sentence-pair task far above chance; the negative control with
shuffled labels stays within a binomial band around chance.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from hf_tiny import tiny_bert, transformers  # noqa: E402  (skips without transformers)

from genodiff.benchmarks import text_tasks as T  # noqa: E402
from genodiff.benchmarks.duplicates import duplicate_report  # noqa: E402
from genodiff.config import compose_config  # noqa: E402
from genodiff.errors import InputError  # noqa: E402
from genodiff.interop.hf_mlm import import_hf_mlm, load_hf_tokenizer  # noqa: E402
from genodiff.tasks import benchmark as B  # noqa: E402

FILLER = ["the", "cat", "dog", "sat", "on", "mat", "movie", "film", "it", "this", "was", "very"]


@pytest.fixture(scope="module")
def bert(tmp_path_factory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("bert") / "tiny-bert", hidden=32, layers=1, heads=2)


def _pair_task(path: Path, n: int, seed: int, shuffle_labels: bool = False) -> Path:
    """sentence1: filler words; sentence2: filler words with 'yes' (label 1) or 'no' (label 0) somewhere;
    a TSV in GLUE's layout (bare quotes in the text)."""
    rng = np.random.default_rng(seed)
    labels = np.array([i % 2 for i in range(n)])
    lines = ["sentence1\tsentence2\tlabel"]
    for i, y in enumerate(labels):
        a = " ".join(rng.choice(FILLER, rng.integers(3, 7)))
        b = list(rng.choice(FILLER, rng.integers(2, 6)))
        b.insert(int(rng.integers(0, len(b) + 1)), "yes" if y else "no")
        lines.append(f'{a} "{i}\t{" ".join(b)} .\t{y}')
    if shuffle_labels:
        labels = rng.permutation(labels)
        lines = [lines[0]] + [ln.rsplit("\t", 1)[0] + f"\t{y}" for ln, y in zip(lines[1:], labels)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_encodings_equal_the_transformers_tokenizer(bert):
    tok = load_hf_tokenizer(bert)
    raw = transformers.AutoTokenizer.from_pretrained(str(bert))
    a = ["the cat sat on the mat", "a very dull film !"]
    b = ["yes it was", "no"]
    ids, lengths, n_trunc = T.encode_texts(tok, a, b)
    for i in range(2):
        assert ids[i, : lengths[i]].tolist() == raw(a[i], b[i])["input_ids"]
        assert (ids[i, lengths[i]:] == raw.pad_token_id).all()
    ids1, lengths1, _ = T.encode_texts(tok, a)
    assert ids1[0, : lengths1[0]].tolist() == raw(a[0])["input_ids"] and n_trunc == 0
    # truncation: longest first, as transformers' truncation="longest_first"
    ids_t, lengths_t, n_t = T.encode_texts(tok, a, b, max_length=9)
    assert n_t == 1 and lengths_t.tolist() == [9, 9]  # 12 tokens cut to 9; 9 tokens left as they are
    for i in range(2):
        assert ids_t[i, : lengths_t[i]].tolist() == raw(a[i], b[i], truncation="longest_first",
                                                        max_length=9)["input_ids"]
    with pytest.raises(InputError, match="too short"):
        T.encode_texts(tok, a, b, max_length=4)


def test_tables_columns_and_duplicates(tmp_path, bert):
    tok = load_hf_tokenizer(bert)
    path = _pair_task(tmp_path / "train.tsv", 10, 0)
    texts, labels, names, cols = T.read_text_table(path)
    assert cols == ["sentence1", "sentence2"] and texts[0][0].endswith('"0') and labels[:2] == ["0", "1"]
    single = tmp_path / "sst.csv"
    single.write_text("sentence,label\ngood film,pos\ngood film,neg\nbad film,neg\n")
    data = T.load_text_task(str(single), {}, tok)
    assert data.classes == ["neg", "pos"] and data.splits["all"].kind == "text"
    assert data.splits["all"].ids.dtype == np.int32
    dups = duplicate_report(data.splits)["within"]["all"]
    assert (dups["groups"], dups["conflicting_groups"]) == (1, 1)  # identical text, two labels
    (tmp_path / "x.csv").write_text("a,label\nq,1\n")
    with pytest.raises(InputError, match="no text column"):
        T.read_text_table(tmp_path / "x.csv")
    with pytest.raises(InputError, match="missing text column 'premise'"):
        T.load_text_task(str(single), {"text_columns": ["premise"]}, tok)
    try:  # a Hugging Face dataset by name: offline (or without `datasets`) one error line, no traceback
        import datasets  # noqa: F401
    except ModuleNotFoundError:
        with pytest.raises(InputError, match="'datasets' package is not installed"):
            T.load_text_task("hf:nyu-mll/glue:sst2", {}, tok)


def _run(tmp_path, task: Path, *extra):
    cfg = compose_config("benchmark", [
        f"task={task}", "data.kind=text", "model=hf_mlm", f"model.pretrained={extra[0]}", "methods=[neural]",
        "protocol=cv", "cv.folds=2", "cv.val_fraction=0.2", "n_jobs=1", "progress=false", "log_units=false",
        "train.max_steps=80", "train.eval_every=20", "train.patience=10", "train.lr=3e-3", "train.batch_size=16",
        "train.warmup_steps=5", "model.pooling=mean", f"output_dir={tmp_path / 'out'}", *extra[1:]])
    return B.run(cfg)


def test_pair_task_beats_chance_and_shuffled_labels_do_not(tmp_path, bert):
    export = import_hf_mlm(bert, tmp_path / "bert-mdlm", seq_len=32)
    task = _pair_task(tmp_path / "pairs.tsv", 120, 1)
    res = _run(tmp_path / "real", task, bert, f"model.init=[pretrained,{export}]")
    acc = {m: s["accuracy"]["mean"] if isinstance(s["accuracy"], dict) else s["accuracy"]
           for m, s in res["summary"].items()}
    assert set(acc) == {"hf_mlm tiny-bert [pretrained weights]", f"hf_mlm tiny-bert [{export.name}]"}
    assert min(acc.values()) > 0.75, acc  # chance 0.5 (+-0.046); measured 0.89 and 0.97
    report = (tmp_path / "real" / "out" / "report.md").read_text()
    assert "text task: tokenizer" in report
    # negative control: the same model, pipeline and budget on shuffled labels stays near chance
    control = _pair_task(tmp_path / "shuffled.tsv", 120, 1, shuffle_labels=True)
    res = _run(tmp_path / "ctrl", control, bert)
    (summary,) = res["summary"].values()
    chance = summary["accuracy"]["mean"] if isinstance(summary["accuracy"], dict) else summary["accuracy"]
    assert abs(chance - 0.5) < 4 * 0.5 / np.sqrt(120), chance  # 4 binomial standard errors


def test_hf_mlm_on_dna_mode_and_non_neural_text_methods_are_input_errors(tmp_path, bert):
    task = _pair_task(tmp_path / "pairs.tsv", 20, 2)
    with pytest.raises(InputError, match="data.kind=text"):
        B.run(compose_config("benchmark", [f"task={task}", "model=hf_mlm", f"model.pretrained={bert}",
                                           "methods=[neural]", f"output_dir={tmp_path / 'o1'}"]))
    with pytest.raises(InputError, match="neural method only"):
        B.run(compose_config("benchmark", [f"task={task}", "data.kind=text", "methods=[kmer_lr]",
                                           f"output_dir={tmp_path / 'o2'}"]))
