"""Lightning DataModule over genome windows, with deterministic, resumable sampling.

Training batches are a pure function of ``(seed, micro-batch index, rank)``: micro-batch ``m`` on rank ``r``
of ``W`` holds the sample positions ``[(m W + r) B, (m W + r + 1) B)`` of an endless stream made of
seeded permutations of the training windows (one permutation per pass). On resume the loader starts at
micro-batch ``global_step * accumulate_grad_batches``, so a run killed at any checkpoint continues with
exactly the batches an uninterrupted run would have seen, on one device or many.

Splits come from a BED file with a split column (Basenji style ``chrom start end train|valid|test``), or,
without one, from the tail of the last chromosome (``valid_tail_bp``, ``test_tail_bp``: the last
``test_tail_bp`` bases are test, the ``valid_tail_bp`` before them valid, all else train). Coordinates are
0-based half-open.

:class:`LabelledDataModule` serves labelled sequences (class-conditional MDLM, noise-aware classifiers) with
the same resumable sampling; it takes arrays already tokenised by the caller (the training job reads the
benchmark tables), since this layer does not import the benchmark package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from genodiff.data.genome.cache import EncodedGenome, build_encoded_cache, cache_is_current
from genodiff.data.genome.intervals import Interval, read_bed, split_by_column, tile_windows
from genodiff.data.genome.vocab import PAD_ID
from genodiff.data.genome.windows import GenomeWindowDataset
from genodiff.data.manifest import dataset_paths, resolve_cache_dir
from genodiff.data.prepare import PrepareConfig, prepare, say_stdout
from genodiff.errors import InputError

SPLITS = ("train", "valid", "test")


@dataclass
class GenomeDataConfig:
    """Where the genome comes from and how it is cut into windows.

    ``dataset``: a manifest name (``demo``, ``hg38_basenji``...) prepared with ``genodiff data prepare``;
    or set ``fasta`` (any local FASTA, encoded into the cache on first use) and optionally ``intervals``.
    """

    dataset: str | None = "demo"
    fasta: str | None = None
    intervals: str | None = None
    cache_dir: str | None = None
    window: int = 1024
    train_stride: int | None = None
    eval_stride: int | None = None
    valid_tail_bp: int = 0
    test_tail_bp: int = 0
    rc_prob: float = 0.0
    max_n_fraction: float = 0.5
    max_eval_windows: int | None = 512
    num_workers: int = 0
    seed: int = 0
    split_mapping: dict[str, str] = field(default_factory=dict)


def _resolve_sources(cfg: GenomeDataConfig) -> tuple[Path, Path | None, dict]:
    """(encoded cache folder, BED path or None, chromosome aliases), preparing the dataset if needed."""
    if cfg.fasta:
        fasta = Path(cfg.fasta).expanduser()
        if not fasta.is_file():
            raise InputError(f"data.fasta: file not found: {fasta}")
        encoded = resolve_cache_dir(cfg.cache_dir) / "local" / fasta.name.split(".")[0] / "encoded"
        if not cache_is_current(encoded, fasta):
            build_encoded_cache(fasta, encoded, progress=False)
        return encoded, Path(cfg.intervals) if cfg.intervals else None, {}
    if not cfg.dataset:
        raise InputError("data: set either data.dataset (a manifest name) or data.fasta (a local FASTA)")
    paths = dataset_paths(cfg.dataset, cfg.cache_dir)
    encoded = Path(paths["encoded"])
    if not (encoded.is_dir() and any(encoded.iterdir())):
        if cfg.dataset == "demo":
            prepare("demo", PrepareConfig(cache_dir=cfg.cache_dir), say=say_stdout)
        else:
            raise InputError(f"data.dataset '{cfg.dataset}' is not prepared: run `genodiff data prepare {cfg.dataset}`")
    intervals = Path(cfg.intervals) if cfg.intervals else paths["intervals"]
    return encoded, intervals, paths["aliases"]


def split_intervals(cfg: GenomeDataConfig, genome: EncodedGenome, bed: Path | None, aliases: dict) -> dict[str, list]:
    """Intervals of each split (0-based half-open)."""
    lengths = dict(zip(genome.names, (int(x) for x in genome.contig_lengths)))
    if bed is not None:
        intervals = read_bed(bed, lengths, aliases or None)
        by_split = split_by_column(intervals, cfg.split_mapping or None)
        return {s: list(by_split.get(s, [])) for s in SPLITS}
    names = list(genome.names)
    out: dict[str, list] = {s: [] for s in SPLITS}
    for name in names[:-1]:
        out["train"].append(Interval(name, 0, lengths[name]))
    last, end = names[-1], lengths[names[-1]]
    test_start = max(0, end - cfg.test_tail_bp)
    valid_start = max(0, test_start - cfg.valid_tail_bp)
    if valid_start > 0:
        out["train"].append(Interval(last, 0, valid_start))
    if test_start > valid_start:
        out["valid"].append(Interval(last, valid_start, test_start))
    if end > test_start:
        out["test"].append(Interval(last, test_start, end))
    return out


class StepBatchSampler(Sampler[list[int]]):
    """Yields micro-batches ``start_micro_batch, ..., num_micro_batches - 1`` of the seeded sample stream."""

    def __init__(self, num_items: int, batch_size: int, seed: int, num_micro_batches: int,
                 start_micro_batch: int = 0, rank: int = 0, world_size: int = 1):
        if num_items < 1:
            raise InputError("data: the training split has no usable windows")
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.num_micro_batches, self.start = num_micro_batches, start_micro_batch
        self.rank, self.world_size = rank, world_size
        self._perm_cache: dict[int, np.ndarray] = {}

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._perm_cache:
            self._perm_cache = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.num_items)}
        return self._perm_cache[epoch]

    def batch(self, micro_batch: int) -> list[int]:
        first = (micro_batch * self.world_size + self.rank) * self.batch_size
        positions = np.arange(first, first + self.batch_size)
        out = []
        for pos in positions:
            epoch, within = divmod(int(pos), self.num_items)
            out.append(int(self._permutation(epoch)[within]))
        return out

    def __iter__(self) -> Iterator[list[int]]:
        for micro_batch in range(self.start, self.num_micro_batches):
            yield self.batch(micro_batch)

    def __len__(self) -> int:
        return max(0, self.num_micro_batches - self.start)


def _collate(items: list) -> dict[str, torch.Tensor]:
    return {"input_ids": torch.stack(items)}


class StepDataModule(L.LightningDataModule):
    """Shared loaders of the genome and text DataModules.

    Subclasses fill ``self.datasets`` (train/valid/test) in ``setup``, set ``collate_fn`` and say what an
    empty split means in ``empty_split_message``. Training batches come from :class:`StepBatchSampler`
    starting at ``global_step * accumulate`` (exact resumption); evaluation loaders give each rank a
    disjoint share (the module sums the metrics over ranks).
    """

    collate_fn = None

    def __init__(self, batch_size: int, max_steps: int, accumulate_grad_batches: int):
        super().__init__()
        self.batch_size, self.max_steps, self.accumulate = batch_size, max_steps, accumulate_grad_batches
        self.datasets: dict[str, Any] = {}

    def empty_split_message(self, split: str) -> str:
        return f"data: the {split} split has no usable items"

    def split_sizes(self) -> dict[str, int]:
        return {split: len(ds) for split, ds in self.datasets.items()}

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        start = trainer.global_step * self.accumulate if trainer is not None else 0
        rank = trainer.global_rank if trainer is not None else 0
        world = trainer.world_size if trainer is not None else 1
        if len(self.datasets["train"]) == 0:
            raise InputError(self.empty_split_message("train"))
        sampler = StepBatchSampler(len(self.datasets["train"]), self.batch_size, self.config.seed,
                                   self.max_steps * self.accumulate, start, rank, world)
        return DataLoader(self.datasets["train"], batch_sampler=sampler, collate_fn=type(self).collate_fn,
                          num_workers=self.config.num_workers, persistent_workers=False)

    def _eval_loader(self, split: str) -> DataLoader:
        ds = self.datasets[split]
        if len(ds) == 0:
            raise InputError(self.empty_split_message(split))
        trainer = self.trainer
        if trainer is not None and trainer.world_size > 1:  # each rank scores a disjoint share, summed later
            ds = torch.utils.data.Subset(ds, range(trainer.global_rank, len(ds), trainer.world_size))
        return DataLoader(ds, batch_size=self.batch_size, shuffle=False, collate_fn=type(self).collate_fn,
                          num_workers=self.config.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("valid")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")


class GenomeDataModule(StepDataModule):
    """Train/valid/test genome windows for the training, evaluation and scoring jobs."""

    collate_fn = staticmethod(_collate)

    def __init__(self, config: GenomeDataConfig | dict, batch_size: int = 8, max_steps: int = 1000,
                 accumulate_grad_batches: int = 1):
        super().__init__(batch_size, max_steps, accumulate_grad_batches)
        self.config = config if isinstance(config, GenomeDataConfig) else GenomeDataConfig(**dict(config))
        self.genome: EncodedGenome | None = None
        self.intervals: dict[str, list] = {}

    def empty_split_message(self, split: str) -> str:
        if split == "train":
            return "data: the training split has no usable windows"
        return f"data: the {split} split has no usable windows (check the intervals or *_tail_bp)"

    def prepare_data(self) -> None:
        """Generate / encode the genome once (rank 0 of each node) before any process opens it."""
        _resolve_sources(self.config)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        cfg = self.config
        encoded, bed, aliases = _resolve_sources(cfg)
        self.genome = EncodedGenome.open(encoded, aliases=aliases or None)
        splits = self.intervals = split_intervals(cfg, self.genome, bed, aliases)
        for split in SPLITS:
            stride = cfg.train_stride if split == "train" else cfg.eval_stride
            windows = tile_windows(splits[split], cfg.window, stride or cfg.window)
            ds = GenomeWindowDataset(self.genome, windows, rc_prob=cfg.rc_prob if split == "train" else 0.0,
                                     max_n_fraction=cfg.max_n_fraction, seed=cfg.seed)
            if split != "train" and cfg.max_eval_windows and len(ds) > cfg.max_eval_windows:
                keep = np.linspace(0, len(ds) - 1, cfg.max_eval_windows).round().astype(np.int64)
                ds = GenomeWindowDataset(self.genome, ds.windows.subset(keep), max_n_fraction=cfg.max_n_fraction,
                                         seed=cfg.seed)
            self.datasets[split] = ds

    def split_sequences(self, split: str) -> Iterator[np.ndarray]:
        """Token arrays (uint8, + strand) of every window of ``split`` (for the Markov baseline)."""
        ds = self.datasets[split]
        for i in range(len(ds)):
            chrom, start, end, _ = ds.window(i)
            yield self.genome.fetch(chrom, start, end)

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.config.seed, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("seed") != self.config.seed or state.get("batch_size") != self.batch_size:
            raise InputError(
                f"resume: checkpoint was trained with data.seed={state.get('seed')} and per-device batch "
                f"{state.get('batch_size')}, this run has {self.config.seed} and {self.batch_size}"
            )


# ------------------------------------------------------------------------------------------ labelled
@dataclass
class LabelledDataConfig:
    """Labelled sequences for class-conditional training (``configs/data/labelled.yaml``).

    ``task``: what ``genodiff benchmark`` accepts (a Genomic Benchmarks task name, a task preset, a CSV/TSV/
    parquet file with sequence and label columns, a folder of split tables or a GB folder); ``root``: a
    materialised GB folder for a GB task name; ``seq_column`` / ``label_column`` / ``where``: table columns and
    a row filter; ``max_length``: truncate longer sequences. Splits: the task's own ``train`` / ``dev`` /
    ``test`` splits when it has them; ``valid_fraction`` of train (stratified, ``seed``) is held out when it
    has no dev split, and ``test_fraction`` when it has no test split. ``max_eval_items``: cap on the valid /
    test sequences scored during training (evenly spaced).
    """

    kind: str = "labelled"
    task: str | None = None
    root: str | None = None
    seq_column: str | None = None
    label_column: str | None = None
    where: dict | None = None
    max_length: int | None = None
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    max_eval_items: int | None = 512
    cache_dir: str | None = None
    num_workers: int = 0
    seed: int = 0

    def __post_init__(self):
        if self.kind != "labelled":
            raise InputError(f"data.kind: LabelledDataModule needs kind=labelled, got '{self.kind}'")
        if not self.task:
            raise InputError("data.task: required (a benchmark task name, a CSV/TSV/parquet table or a folder)")
        for key in ("valid_fraction", "test_fraction"):
            if not 0.0 <= float(getattr(self, key)) < 1.0:
                raise InputError(f"data.{key}: must be in [0, 1), got {getattr(self, key)}")


@dataclass
class LabelledArrays:
    """One split: ``ids`` (N, L) uint8 right-padded with ``[PAD]``, ``lengths`` (N,), ``labels`` (N,) in
    ``0..C-1``."""

    ids: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: np.ndarray) -> "LabelledArrays":
        index = np.asarray(index, dtype=np.int64)
        return LabelledArrays(self.ids[index], self.lengths[index], self.labels[index])


class LabelledDataset(torch.utils.data.Dataset):
    """Item ``i``: ``(ids LongTensor[L_max], length, label)`` of one split (:class:`LabelledArrays`)."""

    def __init__(self, arrays: LabelledArrays):
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, i: int):
        a = self.arrays
        return torch.from_numpy(a.ids[i].astype(np.int64)), int(a.lengths[i]), int(a.labels[i])


def labelled_collate(items: list) -> dict[str, torch.Tensor]:
    """``{"input_ids": LongTensor[B, L], "attention_mask": BoolTensor[B, L], "labels": LongTensor[B]}`` with ``L``
    the longest sequence of the batch (``[PAD]`` after each sequence, attention mask False there)."""
    lengths = torch.tensor([n for _, n, _ in items], dtype=torch.long)
    L = int(lengths.max())
    ids = torch.stack([x[:L] for x, _, _ in items])
    mask = torch.arange(L)[None, :] < lengths[:, None]
    ids = torch.where(mask, ids, torch.full_like(ids, PAD_ID))
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([y for _, _, y in items])}


class LabelledDataModule(StepDataModule):
    """Train/valid/test labelled sequences (``splits``: split name -> :class:`LabelledArrays`; ``classes``:
    class names, ``classes[i]`` is label ``i``)."""

    collate_fn = staticmethod(labelled_collate)

    def __init__(self, config: LabelledDataConfig, splits: dict[str, LabelledArrays], classes: list[str],
                 batch_size: int = 8, max_steps: int = 1000, accumulate_grad_batches: int = 1):
        super().__init__(batch_size, max_steps, accumulate_grad_batches)
        self.config, self.classes = config, list(classes)
        missing = [s for s in SPLITS if s not in splits]
        if missing:
            raise InputError(f"data: labelled splits {missing} are missing")
        self.splits = splits

    def empty_split_message(self, split: str) -> str:
        return f"data.task={self.config.task}: the {split} split has no sequences"

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        cap = self.config.max_eval_items
        for split in SPLITS:
            arrays = self.splits[split]
            if split != "train" and cap and len(arrays) > cap:
                arrays = arrays.subset(np.linspace(0, len(arrays) - 1, cap).round().astype(np.int64))
            self.datasets[split] = LabelledDataset(arrays)

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.config.seed, "batch_size": self.batch_size, "classes": self.classes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("seed") != self.config.seed or state.get("batch_size") != self.batch_size:
            raise InputError(
                f"resume: checkpoint was trained with data.seed={state.get('seed')} and per-device batch "
                f"{state.get('batch_size')}, this run has {self.config.seed} and {self.batch_size}"
            )
        if state.get("classes") not in (None, self.classes):
            raise InputError(f"resume: checkpoint was trained on classes {state.get('classes')}, this run has "
                             f"{self.classes}")
