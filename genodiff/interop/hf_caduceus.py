"""Hugging Face Caduceus checkpoints <-> :class:`genodiff.models.caduceus.Caduceus`.

Layout (what ``CaduceusForMaskedLM.save_pretrained`` writes): a folder with ``config.json`` and
``model.safetensors`` (or ``pytorch_model.bin``, read with ``torch.load(weights_only=True)``; sharded
``*.index.json`` variants are followed). State-dict keys are ``caduceus.backbone.*`` and ``lm_head.*``
(checkpoints of the bare ``Caduceus`` backbone, with ``backbone.*`` keys, load too).

Tied weights -- the LM head (= the embedding) and, with ``bidirectional_weight_tie``, every layer's
``mamba_rev.in_proj`` / ``mamba_rev.out_proj`` (= ``mamba_fwd``'s) -- may be present (identical values,
checked) or absent (``save_pretrained`` drops them); they are re-tied after loading. Export drops them the
same way. Any other missing key, unknown key or shape mismatch raises :class:`genodiff.errors.InputError`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

import torch
from safetensors.torch import load_file, save

from genodiff.data.download import FetchError, download_file
from genodiff.data.files import atomic_write_bytes, atomic_write_text, read_json
from genodiff.data.manifest import default_cache_dir
from genodiff.errors import DownloadError, InputError
from genodiff.models.caduceus import Caduceus, CaduceusConfig

__all__ = [
    "HF_PREFIX",
    "config_from_hf",
    "config_to_hf",
    "hf_key",
    "tied_keys",
    "to_hf_state_dict",
    "load_hf_state_dict",
    "read_checkpoint_weights",
    "load_caduceus",
    "save_caduceus",
    "load_pretrained",
    "PUBLISHED_CHECKPOINTS",
]

HF_PREFIX = "caduceus."
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")

#: Published checkpoints (Hugging Face repo ids) of the paper's small models.
PUBLISHED_CHECKPOINTS = (
    "kuleshov-group/caduceus-ph_seqlen-1k_d_model-118_n_layer-4_lr-8e-3",
    "kuleshov-group/caduceus-ps_seqlen-1k_d_model-118_n_layer-4_lr-8e-3",
    "kuleshov-group/caduceus-ph_seqlen-131k_d_model-256_n_layer-16",
    "kuleshov-group/caduceus-ps_seqlen-131k_d_model-256_n_layer-16",
)

# Generic transformers.PretrainedConfig attributes and metadata: accepted and ignored.
_HF_GENERIC_KEYS = frozenset("""
architectures auto_map model_type torch_dtype transformers_version _name_or_path _commit_hash name_or_path
return_dict output_hidden_states output_attentions torchscript use_bfloat16 tf_legacy_loss pruned_heads
chunk_size_feed_forward is_encoder_decoder is_decoder cross_attention_hidden_size add_cross_attention
tie_encoder_decoder max_length min_length do_sample early_stopping num_beams num_beam_groups diversity_penalty
temperature top_k top_p typical_p repetition_penalty length_penalty no_repeat_ngram_size
encoder_no_repeat_ngram_size bad_words_ids num_return_sequences output_scores return_dict_in_generate
forced_bos_token_id forced_eos_token_id remove_invalid_values exponential_decay_length_penalty suppress_tokens
begin_suppress_tokens finetuning_task id2label label2id tokenizer_class prefix bos_token_id pad_token_id
eos_token_id sep_token_id decoder_start_token_id task_specific_params problem_type num_labels
use_cache
""".split())


# ---------------------------------------------------------------------------------------------- config
def config_from_hf(hf: Dict[str, Any], source: str = "config.json") -> CaduceusConfig:
    """HF ``config.json`` dict -> :class:`CaduceusConfig` (field names map one-to-one).

    Generic ``PretrainedConfig`` keys (``architectures``, ``auto_map``, ...) are ignored; any other unknown
    key, ``tie_word_embeddings: false`` or an invalid value raises :class:`InputError` naming ``source``.
    """
    if not isinstance(hf, dict):
        raise InputError(f"{source}: expected a JSON object")
    model_type = hf.get("model_type", "caduceus")
    if model_type != "caduceus":
        raise InputError(f"{source}: model_type is {model_type!r}, expected 'caduceus'")
    if hf.get("tie_word_embeddings", True) is False:
        raise InputError(f"{source}: tie_word_embeddings=false is not supported (Caduceus ties its LM head)")
    kwargs = {k: v for k, v in hf.items() if k not in _HF_GENERIC_KEYS and k != "tie_word_embeddings"}
    try:
        return CaduceusConfig.from_dict(kwargs)
    except (TypeError, ValueError) as e:
        raise InputError(f"{source}: {e}") from None


def config_to_hf(config: CaduceusConfig) -> Dict[str, Any]:
    """:class:`CaduceusConfig` -> HF ``config.json`` dict as the official ``save_pretrained`` writes it
    (padded ``vocab_size``, ``complement_map`` as ``{"0": ..}`` over the padded vocabulary)."""
    d = config.to_dict()
    d["vocab_size"] = config.padded_vocab_size
    d["complement_map"] = {str(i): v for i, v in enumerate(config.complement_list())}
    if d.get("gradient_checkpointing_stride", 1) == 1:
        d.pop("gradient_checkpointing_stride", None)
    d["architectures"] = ["CaduceusForMaskedLM"]
    d["model_type"] = "caduceus"
    d["torch_dtype"] = "float32"
    return dict(sorted(d.items()))


# ------------------------------------------------------------------------------------------ state dict
def hf_key(key: str) -> str:
    """genodiff state_dict key -> HF key (``backbone.*`` gets the ``caduceus.`` prefix)."""
    return HF_PREFIX + key if key.startswith("backbone.") else key


def _from_hf_key(key: str) -> str:
    return key[len(HF_PREFIX):] if key.startswith(HF_PREFIX) else key


def tied_keys(model: Caduceus) -> Dict[str, str]:
    """genodiff keys of tied duplicates -> key of the tensor they share (the ones ``save_pretrained`` drops)."""
    cfg = model.config
    out: Dict[str, str] = {}
    if cfg.rcps:
        out["lm_head.lm_head.weight"] = "backbone.embeddings.word_embeddings.embedding.weight"
    else:
        out["lm_head.weight"] = "backbone.embeddings.word_embeddings.weight"
    if cfg.bidirectional and cfg.bidirectional_weight_tie:
        mix = "mixer.submodule" if cfg.rcps else "mixer"
        has_bias = bool(cfg.ssm_cfg.get("bias", False))
        for i in range(cfg.n_layer):
            for proj in ("in_proj", "out_proj"):
                for p in ("weight", "bias") if has_bias else ("weight",):
                    out[f"backbone.layers.{i}.{mix}.mamba_rev.{proj}.{p}"] = \
                        f"backbone.layers.{i}.{mix}.mamba_fwd.{proj}.{p}"
    return out


def _optional_buffers(model: Caduceus) -> List[str]:
    if model.config.rcps:
        return ["backbone.embeddings.word_embeddings.complement_map", "lm_head.complement_map"]
    return []


def to_hf_state_dict(model: Caduceus, drop_tied: bool = True) -> Dict[str, torch.Tensor]:
    """Model -> HF-keyed state dict of contiguous CPU tensors (tied duplicates dropped unless ``drop_tied``
    is False, in which case they are stored as separate copies like ``model.state_dict()``)."""
    tied = tied_keys(model) if drop_tied else {}
    out = {}
    for k, v in model.state_dict().items():
        if k in tied:
            continue
        out[hf_key(k)] = v.detach().to("cpu").contiguous().clone()
    return out


def _short(keys: Iterable[str], n: int = 4) -> str:
    keys = sorted(keys)
    s = ", ".join(keys[:n])
    return s + (f" (and {len(keys) - n} more)" if len(keys) > n else "")


def load_hf_state_dict(model: Caduceus, state_dict: Dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load an HF-keyed state dict into ``model`` strictly, then re-tie shared weights.

    Raises :class:`InputError` (one line naming ``source``) on unknown keys, missing non-tied keys, shape
    mismatches, tied duplicates whose values differ, or a complement_map buffer that contradicts the config.
    """
    target = model.state_dict()
    tied = tied_keys(model)
    optional = set(_optional_buffers(model))
    sd: Dict[str, torch.Tensor] = {}
    for k, v in state_dict.items():
        gk = _from_hf_key(k)
        if gk in sd:
            raise InputError(f"{source}: key {k!r} appears twice (with and without the 'caduceus.' prefix)")
        sd[gk] = v
    unknown = [k for k in sd if k not in target]
    if unknown:
        raise InputError(f"{source}: {len(unknown)} unknown key(s) for this Caduceus config: "
                         f"{_short(hf_key(k) for k in unknown)}")
    required = [k for k in target if k not in tied and k not in optional]
    missing = [k for k in required if k not in sd]
    if missing:
        raise InputError(f"{source}: {len(missing)} missing key(s): {_short(hf_key(k) for k in missing)}")
    for k, v in sd.items():
        if tuple(v.shape) != tuple(target[k].shape):
            raise InputError(f"{source}: {hf_key(k)} has shape {list(v.shape)}, "
                             f"expected {list(target[k].shape)}")
    for dup, src in tied.items():
        if dup in sd and not torch.equal(sd[dup].to(target[src].dtype), sd[src].to(target[src].dtype)):
            raise InputError(f"{source}: tied weight {hf_key(dup)} differs from {hf_key(src)}")
    for k in optional:
        if k in sd and not torch.equal(sd[k].to(torch.long), target[k]):
            raise InputError(f"{source}: {hf_key(k)} does not match complement_map in config.json")
    to_load = {k: v for k, v in sd.items() if k not in tied and k not in optional}
    with torch.no_grad():
        for k, v in to_load.items():
            target[k].copy_(v.to(target[k].dtype))
    model.tie_weights()


# ------------------------------------------------------------------------------------------- files I/O
def read_checkpoint_weights(folder: Union[str, Path]) -> Dict[str, torch.Tensor]:
    """Read the weights of an HF checkpoint folder: ``model.safetensors`` | ``pytorch_model.bin``
    (``weights_only=True``) | a sharded ``*.index.json``. Raises :class:`InputError` if none is there."""
    folder = Path(folder)
    for name in WEIGHT_FILES:
        p = folder / name
        if p.is_file():
            return _read_weight_file(p)
    for name in INDEX_FILES:
        p = folder / name
        if p.is_file():
            try:
                weight_map = json.loads(p.read_text())["weight_map"]
            except (ValueError, KeyError) as e:
                raise InputError(f"{p}: not a valid weight index ({e})") from None
            out: Dict[str, torch.Tensor] = {}
            for shard in sorted(set(weight_map.values())):
                out.update(_read_weight_file(folder / shard))
            return out
    raise InputError(f"{folder}: no model.safetensors or pytorch_model.bin found")


def _read_weight_file(p: Path) -> Dict[str, torch.Tensor]:
    if not p.is_file():
        raise InputError(f"{p}: weight file not found")
    try:
        if p.name.endswith(".safetensors"):
            return load_file(str(p), device="cpu")
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except InputError:
        raise
    except Exception as e:  # corrupt file, pickled code objects refused by weights_only, ...
        raise InputError(f"{p}: cannot read weights ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
                         ) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"{p}: expected a state dict of tensors")
    return obj


def load_caduceus(folder: Union[str, Path], map_location: Union[str, torch.device] = "cpu"
                  ) -> Tuple[Caduceus, CaduceusConfig]:
    """Load an HF Caduceus checkpoint folder -> (model in eval mode, config)."""
    folder = Path(folder)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise InputError(f"{folder}: no config.json (expected a Hugging Face Caduceus checkpoint folder)")
    hf = read_json(cfg_path)
    config = config_from_hf(hf, source=str(cfg_path))
    model = Caduceus(config)
    load_hf_state_dict(model, read_checkpoint_weights(folder), source=str(folder))
    return model.to(map_location).eval(), config


def save_caduceus(model: Caduceus, folder: Union[str, Path], drop_tied: bool = True) -> Path:
    """Export ``model`` as an HF checkpoint folder (``config.json`` + ``model.safetensors``, metadata
    ``{"format": "pt"}``, tied duplicates dropped like ``save_pretrained``). Files are written to temporary
    names and renamed, so a failure leaves no partial file. Returns the folder."""
    folder = Path(folder)
    weights = save(to_hf_state_dict(model, drop_tied=drop_tied), metadata={"format": "pt"})
    config = json.dumps(config_to_hf(model.config), indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(folder / "model.safetensors", weights)
    atomic_write_text(folder / "config.json", config)
    return folder


# ----------------------------------------------------------------------------------------- init=spec
def _hf_hub():
    """The ``huggingface_hub`` module, or None when it is not installed (imported lazily)."""
    try:
        import huggingface_hub  # noqa: PLC0415

        return huggingface_hub
    except ImportError:
        return None


def _endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _download_hf(repo: str, revision: str, cache_dir: Optional[Union[str, Path]]) -> Path:
    """Fetch ``config.json`` + weights of ``repo`` into a local folder; returns the folder."""
    hub = _hf_hub()
    where = f"hf:{repo}" + (f"@{revision}" if revision != "main" else "")
    if hub is not None:
        def fetch(name: str) -> Optional[Path]:
            try:
                return Path(hub.hf_hub_download(repo_id=repo, filename=name, revision=revision,
                                                cache_dir=None if cache_dir is None else str(cache_dir)))
            except Exception as e:  # noqa: BLE001 - offline, 404, auth: reported below
                if name != "config.json" and type(e).__name__ in ("EntryNotFoundError", "RemoteEntryNotFoundError"):
                    return None
                raise DownloadError(
                    f"cannot download {name} of {where} ({type(e).__name__}: "
                    f"{(str(e).splitlines() or [''])[0]}); when offline, put config.json and model.safetensors "
                    f"in a folder and pass init=<folder>") from None
        cfg = fetch("config.json")
        for name in WEIGHT_FILES:
            w = fetch(name)
            if w is not None:
                if w.parent != cfg.parent:  # different snapshot folders: should not happen
                    raise DownloadError(f"{where}: config and weights resolved to different folders")
                return cfg.parent
        raise DownloadError(f"{where}: the repository has no model.safetensors or pytorch_model.bin")

    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "hf"
    folder = folder / repo.replace("/", "--") / revision
    if (folder / "config.json").is_file() and any((folder / n).is_file() for n in WEIGHT_FILES):
        return folder  # cached
    base = f"{_endpoint()}/{repo}/resolve/{revision}"
    try:
        download_file(f"{base}/config.json", folder / "config.json", progress=False)
        for name in WEIGHT_FILES:
            try:
                download_file(f"{base}/{name}", folder / name, progress=False)
                return folder
            except FetchError as e:
                if e.status == 404 and name != WEIGHT_FILES[-1]:
                    continue
                raise
    except FetchError as e:
        reason = e.reason
        raise DownloadError(
            f"cannot download {where} from {base} ({reason}); are you offline? put config.json and "
            f"model.safetensors in a folder and pass init=<folder>") from None
    raise DownloadError(f"{where}: no weights found")  # pragma: no cover


def load_pretrained(spec: str, cache_dir: Optional[Union[str, Path]] = None
                    ) -> Tuple[Caduceus, CaduceusConfig]:
    """Resolve an ``init=`` value and load the checkpoint -> (model in eval mode, config).

    ``spec`` is ``hf:<owner>/<repo>[@<revision>]`` (downloaded with ``huggingface_hub`` when installed, else by
    plain HTTPS from ``$HF_ENDPOINT`` (default https://huggingface.co) ``/<repo>/resolve/<revision>/<file>``
    into ``cache_dir`` (default: the genodiff user cache)), or a local path: a checkpoint folder, or a file
    inside one. Offline or missing files raise :class:`InputError` (``DownloadError``) with one line.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InputError("init: expected 'hf:<owner>/<repo>' or a checkpoint folder, got an empty value")
    spec = spec.strip()
    if spec.startswith("hf:"):
        repo, _, revision = spec[3:].partition("@")
        repo = repo.strip("/")
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise InputError(f"init={spec}: expected hf:<owner>/<repo>[@<revision>]")
        folder = _download_hf(repo, revision or "main", cache_dir)
        return load_caduceus(folder)
    path = Path(spec).expanduser()
    if not path.exists():
        raise InputError(f"init={spec}: no such file or folder (use hf:<owner>/<repo> for Hugging Face)")
    folder = path if path.is_dir() else path.parent
    return load_caduceus(folder)
