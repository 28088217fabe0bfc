"""Neural classifiers for the benchmark: any genodiff backbone + classification head, and the GB CNN.

* :func:`load_backbone`: a registry backbone (random init, seeded) or an exported checkpoint folder
  (``model.safetensors`` + ``genodiff.json`` with ``{"model": name, "config": {...}}``). This is the ONE
  place that knows the checkpoint format; swap it when the training job's export changes.
* :class:`BackboneClassifier`: ``hidden_states`` (B, L, D) -> pooled over non-pad positions -> linear.
  RC handling ``rc``: ``"auto"`` (``ps`` for RC-equivariant backbones, else ``ph``); ``"none"``; ``"ps"`` (Caduceus-PS: both strands' halves of the RC-equivariant hidden
  state are pooled and averaged, so logits(x) == logits(rc(x)) exactly); ``"ph"`` (post-hoc conjoining at
  test time: mean of the logits of x and rc(x)). RC augmentation in training is a trainer option.
* :class:`GBCNN`: the small CNN baseline of the Genomic Benchmarks paper (embedding, three
  conv-batchnorm-maxpool blocks, dense layers), re-implemented here.
* :class:`TorchMethod`: fit (AdamW, linear warmup + cosine decay, early stopping on the INNER validation
  split by accuracy, best checkpoint restored) / predict_proba.

Padding note: Caduceus/Mamba have no attention mask, so ``[PAD]`` tokens enter the scans; pooling
excludes them, and batches are drawn from length-sorted buckets at test time to keep padding minimal.
Backbones with an attention mask (DiT) are exactly padding-invariant.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import load_file

from genodiff.data.files import read_json
from genodiff.data.genome.tokenizer import reverse_complement_padded
from genodiff.data.genome.vocab import PAD_ID, VOCAB_SIZE
from genodiff.data.progress import progress_bar
from genodiff.errors import InputError
from genodiff.interop.export import load_export
from genodiff.models import build_model
from genodiff.models.heads import ClassificationHead

__all__ = ["load_backbone", "BackboneClassifier", "GBCNN", "TorchMethod", "CHECKPOINT_CONFIG", "CHECKPOINT_WEIGHTS"]

CHECKPOINT_CONFIG = "genodiff.json"
CHECKPOINT_WEIGHTS = "model.safetensors"


# ------------------------------------------------------------------------------------------- backbones
def _build(name: str, config: dict, where: str) -> nn.Module:
    """``build_model(name, **config)``; a bad name or config is an InputError naming ``where``."""
    try:
        return build_model(name, **config)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: cannot build '{name}' ({' '.join(str(exc).split())})") from None


def load_backbone(name: Optional[str], config: Optional[dict] = None, init: Optional[str] = None,
                  seed: int = 0) -> tuple:
    """Build a backbone. Returns ``(module, description dict)``.

    ``init``: None / ``"random"`` (seeded random init of ``name`` with ``config``) or a checkpoint folder
    holding ``genodiff.json`` (``{"model": <registry name>, "config": {...}}``) and ``model.safetensors``.
    Keys are matched exactly, or after stripping one common prefix (``backbone.``/``model.``/``net.``).
    """
    config = dict(config or {})
    torch.manual_seed(seed)
    if init in (None, "", "random", "none"):
        if not name:
            raise InputError("model.name: missing (a backbone registry name, e.g. caduceus)")
        return _build(name, config, "model"), {"name": name, "config": config, "init": "random", "seed": seed}
    folder = Path(init)
    meta_path, weights = folder / CHECKPOINT_CONFIG, folder / CHECKPOINT_WEIGHTS
    if not folder.is_dir() or not meta_path.is_file() or not weights.is_file():
        raise InputError(f"model.init={init}: expected a checkpoint folder with {CHECKPOINT_CONFIG} and "
                         f"{CHECKPOINT_WEIGHTS}")
    meta = read_json(meta_path)
    if meta.get("format") == "genodiff-export":
        # the training jobs' export (genodiff/interop/export.py): strict load, tied weights restored
        exported = load_export(folder)
        model = exported.model.train()
        spec = dict(meta.get("model") or {})
        return model, {"name": spec.get("name"), "config": {k: v for k, v in spec.items() if k != "name"},
                       "init": str(folder), "objective": meta.get("objective"), "training": meta.get("training")}
    # minimal format: {"model": <registry name> | {"name": ..., **config}, "config": {...}}
    mspec = meta.get("model")
    if isinstance(mspec, dict):
        mname, mcfg = mspec.get("name"), {k: v for k, v in mspec.items() if k != "name"}
    else:
        mname, mcfg = mspec or meta.get("name"), dict(meta.get("config") or {})
    if not mname:
        raise InputError(f"{meta_path}: missing key 'model' (the backbone registry name)")
    model = _build(mname, mcfg, str(meta_path))
    state = load_file(str(weights))
    own = model.state_dict()
    if not set(state) & set(own):
        for prefix in ("backbone.", "model.", "net.", "denoiser."):
            stripped = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            if set(stripped) & set(own):
                state = stripped
                break
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k in own and not k.startswith("lm_head")]
    if missing:
        raise InputError(f"{weights}: {len(missing)} backbone weights missing (e.g. {missing[0]}) for model '{mname}'")
    return model, {"name": mname, "config": mcfg, "init": str(folder), "unexpected_keys": len(unexpected)}


def _hidden_size(backbone: nn.Module) -> int:
    hs = getattr(backbone, "hidden_size", None)
    if isinstance(hs, int):
        return hs
    with torch.no_grad():
        x = torch.full((1, 8), 7, dtype=torch.long)
        return int(backbone.hidden_states(x).shape[-1])


class BackboneClassifier(nn.Module):
    """Backbone hidden states -> pooled (non-pad positions only) -> linear class logits (B, C) float32."""

    def __init__(self, backbone: nn.Module, num_classes: int, pooling: str = "mean", rc: str = "none",
                 dropout: float = 0.0):
        super().__init__()
        if rc not in ("none", "ps", "ph", "auto"):
            raise InputError(f"model.rc must be auto, none, ps or ph, got {rc!r}")
        if pooling not in ("mean", "max", "first", "last"):
            raise InputError(f"model.pooling must be mean, max, first or last, got {pooling!r}")
        rcps = bool(getattr(getattr(backbone, "config", None), "rcps", False))
        if rc == "auto":
            rc = "ps" if rcps else "ph"
        if rc == "ps" and not rcps:
            raise InputError("model.rc=ps needs an RC-equivariant backbone (Caduceus with rcps: true)")
        self.backbone = backbone
        self.rc = rc
        self.head = ClassificationHead(_hidden_size(backbone), num_classes, pooling=pooling, rcps=rcps,
                                       dropout=dropout)

    def _logits(self, ids, mask):
        h = self.backbone.hidden_states(ids, attention_mask=mask)
        return self.head(h, mask)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.rc == "ph" and not self.training:
            lengths = mask.sum(1)
            both = self._logits(torch.cat([ids, reverse_complement_padded(ids, lengths)]), torch.cat([mask, mask]))
            a, b = both.chunk(2)
            return 0.5 * (a + b)
        return self._logits(ids, mask)


class GBCNN(nn.Module):
    """Small CNN baseline in the style of the Genomic Benchmarks paper: token embedding, three blocks of
    Conv1d(16 filters, width 8) + ReLU + BatchNorm + MaxPool(2), flatten, dense 512, output."""

    def __init__(self, seq_len: int, num_classes: int, embed_dim: int = 16, filters: int = 16, kernel: int = 8,
                 hidden: int = 512, dropout: float = 0.3):
        super().__init__()
        self.seq_len = int(seq_len)
        self.embed = nn.Embedding(VOCAB_SIZE, embed_dim, padding_idx=PAD_ID)
        blocks, c = [], embed_dim
        for _ in range(3):
            blocks += [nn.ConstantPad1d(((kernel - 1) // 2, kernel // 2), 0.0), nn.Conv1d(c, filters, kernel),
                       nn.ReLU(), nn.BatchNorm1d(filters),
                       nn.MaxPool1d(2)]
            c = filters
        self.conv = nn.Sequential(*blocks)
        out_len = self.seq_len
        for _ in range(3):
            out_len //= 2
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(filters * max(out_len, 1), hidden), nn.ReLU(),
                                nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, L = ids.shape
        if L < self.seq_len:
            ids = torch.cat([ids, ids.new_full((B, self.seq_len - L), PAD_ID)], 1)
        elif L > self.seq_len:
            ids = ids[:, : self.seq_len]
        x = self.embed(ids).transpose(1, 2)
        return self.fc(self.conv(x)).float()


# ------------------------------------------------------------------------------------------- training
def _batch(data, index: np.ndarray, device="cpu"):
    lengths = data.lengths[index]
    L = int(lengths.max())
    ids = torch.from_numpy(data.ids[index, :L].astype(np.int64)).to(device)
    lengths_t = torch.from_numpy(lengths.astype(np.int64)).to(device)
    mask = torch.arange(L, device=device)[None, :] < lengths_t[:, None]
    return ids, mask, lengths_t


def predict_logits(model: nn.Module, data, batch_size: int = 128, device="cpu") -> np.ndarray:
    """Class logits (N, C) float64; batches are length-sorted so padding is minimal."""
    model.eval()
    order = np.argsort(data.lengths, kind="stable")
    out = np.zeros((len(data), 0))
    chunks = []
    with torch.no_grad():
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            ids, mask, _ = _batch(data, idx, device)
            chunks.append(model(ids, mask).double().cpu().numpy())
    if chunks:
        out = np.concatenate(chunks)
    res = np.empty_like(out)
    res[order] = out
    return res


def _softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


class TorchMethod:
    """Fit/predict wrapper around a torch classifier factory.

    ``fit(train, val)`` trains with AdamW (linear warmup, cosine decay to ``min_lr_ratio``), evaluates on
    ``val`` every ``eval_every`` steps and keeps the state with the best val accuracy (early stopping after
    ``patience`` evaluations without improvement). Only ``train`` and ``val`` are seen by ``fit``.
    """

    def __init__(self, name: str, factory, lr=1e-3, weight_decay=0.01, batch_size=32, max_steps=1000,
                 warmup_steps=50, min_lr_ratio=0.0, eval_every=100, patience=5, rc_augment=False,
                 max_epochs: Optional[float] = None, eval_batch_size=128, seed=0, grad_clip=1.0,
                 progress: bool = False, eval_fn=None):
        self.name = name
        self.factory = factory
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.batch_size, self.max_steps = int(batch_size), int(max_steps)
        self.warmup_steps, self.min_lr_ratio = int(warmup_steps), float(min_lr_ratio)
        self.eval_every, self.patience = max(1, int(eval_every)), int(patience)
        self.rc_augment = bool(rc_augment)
        self.max_epochs = max_epochs
        self.eval_batch_size = int(eval_batch_size)
        self.seed = int(seed)
        self.grad_clip = grad_clip
        self.progress = progress
        self.eval_fn = eval_fn  # hook for tests: called as eval_fn(data) whenever validation is scored
        self.info = {}

    def _score_val(self, model, val) -> float:
        if self.eval_fn is not None:
            self.eval_fn(val)
        logits = predict_logits(model, val, self.eval_batch_size)
        return float((logits.argmax(1) == val.labels).mean())

    def fit(self, train, val):
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        self.model = model = self.factory(train)
        params = [p for p in model.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": self.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=self.lr)
        steps = self.max_steps
        if self.max_epochs:
            steps = min(steps, int(math.ceil(self.max_epochs * len(train) / self.batch_size)))
        steps = max(1, steps)
        warm = min(self.warmup_steps, steps // 2)

        def lr_lambda(step):
            if step < warm:
                return (step + 1) / max(1, warm)
            t = (step - warm) / max(1, steps - warm)
            return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        loss_fn = nn.CrossEntropyLoss()
        n = len(train)
        perm, pos = rng.permutation(n), 0
        best_acc, best_state, best_step, bad = -1.0, None, 0, 0
        history = []
        t0 = time.time()
        bar = progress_bar(steps, self.name, self.progress and sys.stderr.isatty(), leave=False)
        for step in range(1, steps + 1):
            model.train()
            if pos + self.batch_size > n:
                perm, pos = rng.permutation(n), 0
            idx = perm[pos:pos + self.batch_size]
            pos += self.batch_size
            ids, mask, lengths = _batch(train, idx)
            if self.rc_augment:
                flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
                if flip.any():
                    ids = torch.where(flip[:, None], reverse_complement_padded(ids, lengths), ids)
            y = torch.from_numpy(train.labels[idx])
            loss = loss_fn(model(ids, mask), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if self.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
            opt.step()
            sched.step()
            bar.update(1)
            if len(val) and (step % self.eval_every == 0 or step == steps):
                acc = self._score_val(model, val)
                history.append({"step": step, "loss": float(loss.detach()), "val_accuracy": acc})
                if acc > best_acc:
                    best_acc, best_step, bad = acc, step, 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    bad += 1
                    if self.patience and bad >= self.patience:
                        break
        bar.close()
        if best_state is not None:
            model.load_state_dict(best_state)
        self.info = {"steps": step, "best_step": best_step, "best_val_accuracy": best_acc,
                     "train_seconds": round(time.time() - t0, 2), "history": history,
                     "n_parameters": int(sum(p.numel() for p in model.parameters()))}
        return self

    def predict_proba(self, data) -> np.ndarray:
        return _softmax(predict_logits(self.model, data, self.eval_batch_size))
