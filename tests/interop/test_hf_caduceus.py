"""Hugging Face Caduceus checkpoints: parity with the official implementation, export, loader errors."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from genodiff.errors import DownloadError, InputError
from genodiff.interop import hf_caduceus as hf
from genodiff.interop import load_caduceus, load_pretrained, save_caduceus
from genodiff.models.caduceus import Caduceus, CaduceusConfig
from genodiff.models.rcps import rc_logits

ATOL = 1e-4  # fixture README: threshold 1e-4, expected <= 1e-5


def _maxerr(a, b):
    return (torch.as_tensor(a).double() - torch.as_tensor(b).double()).abs().max().item()


@pytest.mark.parametrize("name", ["ph_small", "ps_small"])
def test_parity_with_official_implementation(parity_root, name):
    model, config = load_caduceus(parity_root / name)
    io = np.load(parity_root / name / "io.npz")
    ids = torch.from_numpy(io["input_ids"])
    with torch.no_grad():
        hidden, extra = model.backbone_forward(ids, output_layers=True)
        logits = model(ids)
    errs = {
        "embeddings": _maxerr(extra["embeddings"], io["embeddings"]),
        "layer_hidden": max(_maxerr(h, io["layer_hidden"][i]) for i, h in enumerate(extra["layer_hidden"])),
        "layer_residual": max(_maxerr(r, io["layer_residual"][i]) for i, r in enumerate(extra["layer_residual"])),
        "hidden_states": _maxerr(hidden, io["hidden_states"]),
        "logits": _maxerr(logits, io["logits"]),
    }
    if "rc_input_ids" in io:
        rc_ids = torch.from_numpy(io["rc_input_ids"])
        assert torch.equal(model.rc_input(ids), rc_ids)
        with torch.no_grad():
            errs["rc_logits"] = _maxerr(model(rc_ids), io["rc_logits"])
    print(name, errs)
    assert logits.shape == io["logits"].shape and logits.dtype == torch.float32
    for k, e in errs.items():
        assert e <= ATOL, (k, e)
    assert errs["logits"] <= 1e-5  # what we actually get (~2e-6 / ~4e-6)
    assert config.fused_add_norm and config.padded_vocab_size == 16


def test_ps_fixture_is_rc_equivariant_in_genodiff(parity_root):
    model, _ = load_caduceus(parity_root / "ps_small")
    io = np.load(parity_root / "ps_small" / "io.npz")
    ids = torch.from_numpy(io["input_ids"])
    with torch.no_grad():
        a, b = model(ids), model(model.rc_input(ids))
    assert _maxerr(b, rc_logits(a, model.complement_map)) < 1e-5


def test_fixture_without_tied_duplicates_loads(parity_root, tmp_path):
    src = parity_root / "ps_small"
    sd = load_file(str(src / "model.safetensors"))
    dropped = [k for k in sd if ".mamba_rev.in_proj." in k or ".mamba_rev.out_proj." in k or k == "lm_head.lm_head.weight"]
    assert len(dropped) == 2 * 2 + 1
    save_file({k: v for k, v in sd.items() if k not in dropped}, str(tmp_path / "model.safetensors"))
    shutil.copy(src / "config.json", tmp_path / "config.json")
    model, _ = load_caduceus(tmp_path)
    io = np.load(src / "io.npz")
    with torch.no_grad():
        assert _maxerr(model(torch.from_numpy(io["input_ids"])), io["logits"]) <= 1e-5
    assert model.lm_head.weight is model.backbone.embeddings.word_embeddings.weight


@pytest.mark.parametrize("rcps", [False, True])
def test_export_load_round_trip_bit_identical(tmp_path, rcps):
    torch.manual_seed(0)
    cfg = CaduceusConfig(d_model=16, n_layer=3, ssm_cfg={"d_state": 4}, rcps=rcps)
    model = Caduceus(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    save_caduceus(model, tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        assert f.metadata() == {"format": "pt"}
    full = {hf.hf_key(k) for k in model.state_dict()}
    assert full - keys == {hf.hf_key(k) for k in hf.tied_keys(model)}
    assert len(full - keys) == 2 * cfg.n_layer + 1
    assert all(k.startswith("caduceus.backbone.") or k.startswith("lm_head.") for k in keys)
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["vocab_size"] == 16 and written["complement_map"]["7"] == 10 and written["rcps"] == rcps
    assert written["architectures"] == ["CaduceusForMaskedLM"]
    loaded, _ = load_caduceus(tmp_path)
    ids = torch.randint(3, 12, (2, 25))
    with torch.no_grad():
        assert torch.equal(model(ids), loaded(ids))
    assert not list(tmp_path.glob(".*tmp"))  # no temporary leftovers


def test_export_matches_fixture_layout(parity_root, tmp_path):
    model, _ = load_caduceus(parity_root / "ph_small")
    save_caduceus(model, tmp_path)
    ours = json.loads((tmp_path / "config.json").read_text())
    theirs = json.loads((parity_root / "ph_small" / "config.json").read_text())
    for k in theirs:
        if k != "transformers_version":
            assert ours[k] == theirs[k], k
    ref_keys = [line.split("\t")[0] for line in (parity_root / "ph_small" / "keys.txt").read_text().splitlines()
                if "same tensor as" not in line]
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        assert sorted(f.keys()) == sorted(ref_keys)


def _copy_fixture(parity_root, tmp_path, name="ph_small", transform=None):
    src = parity_root / name
    sd = load_file(str(src / "model.safetensors"))
    if transform:
        sd = transform(sd)
    save_file(sd, str(tmp_path / "model.safetensors"))
    shutil.copy(src / "config.json", tmp_path / "config.json")
    return tmp_path


def test_missing_key_is_an_error(parity_root, tmp_path):
    key = "caduceus.backbone.layers.1.mixer.mamba_rev.A_log"
    folder = _copy_fixture(parity_root, tmp_path, transform=lambda sd: {k: v for k, v in sd.items() if k != key})
    with pytest.raises(InputError, match="missing key.*layers.1.mixer.mamba_rev.A_log"):
        load_caduceus(folder)


def test_unknown_key_is_an_error(parity_root, tmp_path):
    folder = _copy_fixture(parity_root, tmp_path, transform=lambda sd: {**sd, "caduceus.backbone.extra": torch.zeros(1)})
    with pytest.raises(InputError, match="unknown key.*caduceus.backbone.extra"):
        load_caduceus(folder)


def test_shape_mismatch_and_untied_duplicate_are_errors(parity_root, tmp_path):
    k = "caduceus.backbone.layers.0.mixer.mamba_fwd.D"
    folder = _copy_fixture(parity_root, tmp_path, transform=lambda sd: {**sd, k: torch.zeros(3)})
    with pytest.raises(InputError, match="shape"):
        load_caduceus(folder)
    k = "lm_head.weight"
    folder = _copy_fixture(parity_root, tmp_path, transform=lambda sd: {**sd, k: sd[k] + 1})
    with pytest.raises(InputError, match="tied weight lm_head.weight differs"):
        load_caduceus(folder)


def test_config_errors(parity_root, tmp_path):
    folder = _copy_fixture(parity_root, tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "d_modell": 3}))
    with pytest.raises(InputError, match="d_modell"):
        load_caduceus(folder)
    (folder / "config.json").write_text(json.dumps({**cfg, "auto_map": {"AutoConfig": "x.Y"}}))
    load_caduceus(folder)  # generic HF keys are fine
    (folder / "config.json").write_text(json.dumps({**cfg, "d_model": 48}))
    with pytest.raises(InputError, match="shape"):
        load_caduceus(folder)
    (folder / "config.json").unlink()
    with pytest.raises(InputError, match="no config.json"):
        load_caduceus(folder)


def test_pytorch_model_bin_weights_only(parity_root, tmp_path):
    src = parity_root / "ps_small"
    torch.save(load_file(str(src / "model.safetensors")), tmp_path / "pytorch_model.bin")
    shutil.copy(src / "config.json", tmp_path / "config.json")
    model, _ = load_caduceus(tmp_path)
    io = np.load(src / "io.npz")
    with torch.no_grad():
        assert _maxerr(model(torch.from_numpy(io["input_ids"])), io["logits"]) <= 1e-5
    # a pickle that is not plain tensors is refused, not executed
    torch.save({"w": torch.zeros(1), "obj": {1, 2}}, tmp_path / "pytorch_model.bin")
    with pytest.raises(InputError):
        load_caduceus(tmp_path)


def test_load_pretrained_local_path(parity_root):
    model, cfg = load_pretrained(str(parity_root / "ps_small"))
    assert cfg.rcps and isinstance(model, Caduceus) and not model.training
    model2, _ = load_pretrained(str(parity_root / "ps_small" / "model.safetensors"))
    ids = torch.randint(7, 11, (1, 12))
    with torch.no_grad():
        assert torch.equal(model(ids), model2(ids))


def test_load_pretrained_bad_specs(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_pretrained(str(tmp_path / "nope"))
    with pytest.raises(InputError, match="hf:<owner>/<repo>"):
        load_pretrained("hf:just-a-name")
    with pytest.raises(InputError):
        load_pretrained("")


def test_load_pretrained_offline_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setattr(hf, "_hf_hub", lambda: None)  # force the plain-HTTPS route
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # closed port: fails immediately
    with pytest.raises(DownloadError) as ei:
        load_pretrained("hf:kuleshov-group/caduceus-ph_seqlen-1k_d_model-118_n_layer-4_lr-8e-3",
                        cache_dir=tmp_path)
    msg = str(ei.value)
    assert "\n" not in msg and "kuleshov-group/caduceus-ph" in msg and "offline" in msg
    assert isinstance(ei.value, InputError)
    assert not list(tmp_path.rglob("*.part"))


def test_load_pretrained_hf_uses_cache(parity_root, tmp_path, monkeypatch):
    monkeypatch.setattr(hf, "_hf_hub", lambda: None)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    dest = tmp_path / "owner--repo" / "main"
    shutil.copytree(parity_root / "ph_small", dest)
    model, cfg = load_pretrained("hf:owner/repo", cache_dir=tmp_path)
    assert not cfg.rcps


def test_load_pretrained_via_huggingface_hub_stub(parity_root, tmp_path, monkeypatch):
    calls = []

    class Hub:
        @staticmethod
        def hf_hub_download(repo_id, filename, revision=None, cache_dir=None):
            calls.append((repo_id, filename, revision))
            return str(parity_root / "ps_small" / filename)

    monkeypatch.setattr(hf, "_hf_hub", lambda: Hub)
    model, cfg = load_pretrained("hf:org/name@v1")
    assert cfg.rcps and calls[0] == ("org/name", "config.json", "v1")

    class OfflineHub:
        @staticmethod
        def hf_hub_download(**kw):
            raise OSError("We couldn't connect to 'https://huggingface.co'\nsecond line")

    monkeypatch.setattr(hf, "_hf_hub", lambda: OfflineHub)
    with pytest.raises(DownloadError) as ei:
        load_pretrained("hf:org/name")
    assert "\n" not in str(ei.value) and "hf:org/name" in str(ei.value)


@pytest.mark.parametrize("kw", [dict(bidirectional=False), dict(bidirectional_weight_tie=False),
                                dict(rms_norm=False, rcps=True, fused_add_norm=False),
                                dict(rcps=True, ssm_cfg={"d_state": 4, "bias": True})])
def test_round_trip_variants(tmp_path, kw):
    torch.manual_seed(1)
    cfg = CaduceusConfig(**{"d_model": 8, "n_layer": 2, "ssm_cfg": {"d_state": 4}, **kw})
    model = Caduceus(cfg).eval()
    save_caduceus(model, tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        n_saved = len(list(f.keys()))
    assert n_saved == len(model.state_dict()) - len(hf.tied_keys(model))
    loaded, cfg2 = load_caduceus(tmp_path)
    assert cfg2.to_dict() == {**cfg.to_dict(), "vocab_size": 16,
                              "complement_map": {str(i): v for i, v in enumerate(cfg.complement_list())}}
    ids = torch.randint(3, 12, (2, 9))
    with torch.no_grad():
        assert torch.equal(model(ids), loaded(ids))
