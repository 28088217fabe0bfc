"""Bundled models: ``load_model(None)`` / ``resolve_export`` resolve the default bundled model, ``bundled:<name>``
and bare names; provenance names the bundled model and its weights digest. The tests build tiny exports in a
temporary bundled folder; the last test checks the real bundled model when the package has one."""

from __future__ import annotations

import hashlib
import re

import pytest
import torch
from bundle_helpers import make_export, use_bundled_dir

from genodiff.errors import InputError
from genodiff.interop import export as E

torch.set_num_threads(1)


@pytest.fixture
def bundled(tmp_path, monkeypatch):
    """A bundled folder with the default model (seed 0) and a second model ``other`` (seed 1)."""
    root = use_bundled_dir(monkeypatch, tmp_path / "models")
    _, default = make_export(root / E.DEFAULT_MODEL, seed=0)
    _, other = make_export(root / "other", seed=1)
    return root, default, other


def _logits(module, x):
    with torch.no_grad():
        return module(x)[..., :12]


def test_load_model_none_is_the_default_bundled_model(bundled):
    root, default, other = bundled
    x = torch.randint(7, 11, (2, 40))
    loaded = E.load_model(None, "cpu")
    weights = root / E.DEFAULT_MODEL / E.WEIGHTS_NAME
    oracle = "sha256:" + hashlib.sha256(weights.read_bytes()).hexdigest()[:16]  # independent of file_digest
    assert (loaded.name, loaded.checkpoint, loaded.digest) == (E.DEFAULT_MODEL, f"bundled:{E.DEFAULT_MODEL}", oracle)
    assert torch.allclose(loaded.denoiser(x, None), _logits(default, x), atol=1e-6)
    # negative control: the other bundled model is a different model with a different digest
    named = E.load_model("bundled:other", "cpu")
    assert (named.name, named.checkpoint) == ("other", "bundled:other")
    assert named.digest != loaded.digest
    assert torch.allclose(named.denoiser(x, None), _logits(other, x), atol=1e-6)
    assert not torch.allclose(named.denoiser(x, None), loaded.denoiser(x, None), atol=1e-3)


def test_resolution_forms_and_local_paths_win(bundled, tmp_path, monkeypatch):
    root, _, _ = bundled
    folder = root / E.DEFAULT_MODEL
    for spec in (None, "", f"bundled:{E.DEFAULT_MODEL}", E.DEFAULT_MODEL, str(folder)):
        assert E.resolve_export(spec) == folder, spec
    assert E.load_model(str(folder), "cpu").checkpoint == f"bundled:{E.DEFAULT_MODEL}"  # the folder itself too
    # a local folder with a bundled model's name is a path first
    work = tmp_path / "work"
    make_export(work / "other", seed=5)
    monkeypatch.chdir(work)
    local = E.load_model("other", "cpu")
    assert local.checkpoint == "other" and local.name == "caduceus-mdlm"
    assert local.digest != E.load_model("bundled:other", "cpu").digest
    # a plain export outside the bundled folder keeps its own provenance
    assert not E.is_bundled(work / "other")


def test_bundled_models_lists_complete_visible_folders_only(bundled):
    root, _, _ = bundled
    (root / ".caduceus-ps-tiny-hg38chr2.tmp123").mkdir()  # a staging folder of perf/bundle_model.py
    make_export(root / ".hidden", seed=2)
    (root / "half").mkdir()
    (root / "half" / E.CONFIG_NAME).write_text("{}")  # no weights
    (root / "README.md").write_text("# not a model\n")
    assert [m.name for m in E.bundled_models()] == ["caduceus-ps-tiny-hg38chr2", "other"]
    assert E.bundled_models()[0].card is None


def test_missing_default_or_name_is_one_error_line(tmp_path, monkeypatch):
    use_bundled_dir(monkeypatch, tmp_path / "empty")
    with pytest.raises(InputError, match=r"^checkpoint: not given .*caduceus-ps-tiny-hg38chr2.* is not bundled .*"
                                         r"\(bundled: none, in "):
        E.load_model(None, "cpu")
    make_export(tmp_path / "empty" / "only", seed=0)
    with pytest.raises(InputError, match=r"no bundled model 'nope' \(bundled: only;"):
        E.resolve_export("bundled:nope")
    with pytest.raises(InputError, match="not a genodiff export"):
        E.resolve_export(str(tmp_path / "no_such_folder"))
    with pytest.raises(InputError) as err:
        E.resolve_export(None)  # the default is absent although another model is bundled
    assert "\n" not in str(err.value) and "bundled: only" in str(err.value)


def test_parameter_count_matches_the_built_model(bundled):
    _, default, _ = bundled
    spec = E.read_spec(E.resolve_export(None))
    assert E.parameter_count(spec) == sum(p.numel() for p in default.parameters())
    bigger = {**spec, "model": {**spec["model"], "d_model": 16}}
    assert E.parameter_count(bigger) > E.parameter_count(spec)  # negative control: the spec matters


# ------------------------------------------------------------------------------------- the real one
def test_the_real_bundled_model():
    """The model shipped in genodiff/resources/models/ (added by perf/bundle_model.py before a release)."""
    models = {m.name: m for m in E.bundled_models()}
    if E.DEFAULT_MODEL not in models:
        pytest.skip(f"no bundled model '{E.DEFAULT_MODEL}' in {E.bundled_models_dir()} yet: "
                    "python perf/bundle_model.py <run> adds it")
    bundled = models[E.DEFAULT_MODEL]
    weights = bundled.path / E.WEIGHTS_NAME
    assert weights.stat().st_size < 5_000_000
    loaded = E.load_model(None, "cpu")
    assert loaded.name == E.DEFAULT_MODEL and loaded.is_diffusion
    assert sum(p.numel() for p in loaded.module.parameters()) < 2_000_000
    x = torch.randint(7, 11, (2, 256))
    logits = loaded.denoiser(x, None)
    assert logits.shape == (2, 256, loaded.vocab.size) and torch.isfinite(logits[..., 7:11]).all()
    card = bundled.card
    assert card is not None, f"{bundled.path}: no {E.CARD_NAME}"
    text = card.read_text()
    assert text.startswith(f"# {E.DEFAULT_MODEL}\n")
    assert hashlib.sha256(weights.read_bytes()).hexdigest() in text  # the card describes these weights
    assert "Not measured" not in text, "the card has no held-out evaluation (pass --evaluate when bundling)"
    assert re.search(r"\| this model \| upper bound \| \d+\.\d{4} \|", text)
    assert "Markov order" in text
    assert int(E.read_spec(bundled.path)["training"]["tokens"]) > 0
