"""Genomic Benchmarks (Gresova et al., BMC Genomic Data 24:25, 2023) from the official coordinate files.

Upstream (github.com/ML-Bioinfo-CEITEC/genomic_benchmarks, Apache-2.0) ships every task as coordinate
CSVs ``datasets/<task>/<split>/<class>.csv.gz`` with columns ``id,region,start,end,strand`` plus a
``metadata.yaml`` naming the reference FASTA of each class. This module turns those into labeled sets
through genodiff's data layer (:class:`genodiff.data.genome.reference.Genome`):

* coordinates are read as 0-based half-open (upstream ``loc2seq`` cuts ``sequence[start:end]``), ``-``
  strand records are reverse-complemented; like upstream, an interval running past the end of its sequence
  is cut there (counted in the report notes); region names resolve exactly, through ``chr`` toggling
  (upstream prefixes Ensembl chromosome names with ``chr``) or, for transcript ids, without the version;
* class ids come from the SORTED class names (``negative`` 0, ``positive`` 1), never file order;
* the files of task ``<task>`` are described by ``data_manifests/gb_<task>.yaml`` (URLs of the coordinate
  files and the reference genome(s)); ``genodiff data download gb_<task>`` fetches them into the cache.

:data:`GB_TASKS` lists, per task of the Caduceus/HyenaDNA table, the classes and the FASTA (manifest file
name) their regions refer to. Releases that could not be checked against the upstream metadata here are
marked in the manifests' descriptions.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path
from typing import Mapping, Optional, Union

from genodiff.benchmarks.datasets import BenchmarkData, LabeledSet, class_order, encode_sequences, map_labels
from genodiff.data import manifest as mf
from genodiff.data.genome.reference import Genome
from genodiff.errors import InputError

__all__ = ["GB_TASKS", "GB_REPO_RAW", "coordinate_file_name", "read_coordinates", "load_gb_coordinates",
           "load_gb_task"]

GB_REPO_RAW = "https://raw.githubusercontent.com/ML-Bioinfo-CEITEC/genomic_benchmarks/main/datasets"

_HUMAN_97 = "Homo_sapiens.GRCh38.dna.toplevel.r97.fa.gz"
_HUMAN_100 = "Homo_sapiens.GRCh38.dna.toplevel.r100.fa.gz"

#: task -> {"classes": {class: fasta file name in the manifest}, "splits": (..)}
GB_TASKS: dict = {
    "dummy_mouse_enhancers_ensembl": {"classes": {"negative": "Mus_musculus.GRCm38.dna.toplevel.r100.fa.gz",
                                                  "positive": "Mus_musculus.GRCm38.dna.toplevel.r100.fa.gz"}},
    "demo_coding_vs_intergenomic_seqs": {"classes": {"coding_seqs": "Homo_sapiens.GRCh38.cdna.all.r104.fa.gz",
                                                     "intergenomic_seqs": "Homo_sapiens.GRCh38.dna.toplevel.r104.fa.gz"}},
    "demo_human_or_worm": {"classes": {"human": _HUMAN_97,
                                       "worm": "Caenorhabditis_elegans.WBcel235.dna.toplevel.r104.fa.gz"}},
    "human_enhancers_cohn": {"classes": {"negative": _HUMAN_97, "positive": _HUMAN_97}},
    "human_enhancers_ensembl": {"classes": {"negative": _HUMAN_100, "positive": _HUMAN_100}},
    "human_ensembl_regulatory": {"classes": {"enhancer": _HUMAN_100, "ocr": _HUMAN_100, "promoter": _HUMAN_100}},
    "human_ocr_ensembl": {"classes": {"negative": _HUMAN_100, "positive": _HUMAN_100}},
    "human_nontata_promoters": {"classes": {"negative": _HUMAN_97, "positive": _HUMAN_97}},
}

COORD_COLUMNS = ("id", "region", "start", "end", "strand")


def coordinate_file_name(split: str, cls: str) -> str:
    """Cache file name of an upstream ``<split>/<class>.csv.gz`` coordinate file."""
    return f"{split}.{cls}.csv.gz"


def read_coordinates(path) -> list:
    """Rows ``(id, region, start, end, strand)`` of a coordinate CSV (gzip or plain); validated."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: coordinate file not found")
    opener = gzip.open if path.name.endswith(".gz") else open
    rows = []
    try:
        with opener(path, "rt", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise InputError(f"{path}: empty coordinate file")
            header = [h.strip() for h in header]
            missing = [c for c in COORD_COLUMNS if c not in header]
            if missing:
                raise InputError(f"{path} line 1: missing column(s) {', '.join(missing)} "
                                 f"(expected {','.join(COORD_COLUMNS)})")
            col = {c: header.index(c) for c in COORD_COLUMNS}
            for lineno, rec in enumerate(reader, start=2):
                if not rec or all(not x.strip() for x in rec):
                    continue
                if len(rec) < len(header):
                    raise InputError(f"{path} line {lineno}: expected {len(header)} fields, got {len(rec)}")
                rid, region = rec[col["id"]].strip(), rec[col["region"]].strip()
                try:
                    start, end = int(rec[col["start"]]), int(rec[col["end"]])
                except ValueError:
                    raise InputError(f"{path} line {lineno}: start/end must be integers") from None
                strand = rec[col["strand"]].strip()
                if strand not in ("+", "-"):
                    raise InputError(f"{path} line {lineno}: strand must be '+' or '-', got {strand!r}")
                if start < 0 or end <= start:
                    raise InputError(f"{path} line {lineno}: invalid interval {region}:{start}-{end}")
                rows.append((rid, region, start, end, strand))
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"{path}: cannot read coordinate file ({type(exc).__name__})") from None
    if not rows:
        raise InputError(f"{path}: no coordinate records")
    return rows


def _resolver(genome):
    """region name -> genome name: exact / alias / chr-toggle (Genome.resolve), then Ensembl transcript ids
    without their version suffix (upstream strips ``ENST...`` versions for the cDNA reference)."""
    unversioned = {}
    cache = {}

    def resolve(region: str, where: str) -> str:
        if region in cache:
            return cache[region]
        try:
            name = genome.resolve(region)
        except InputError:
            if not unversioned:
                for n in genome.lengths:
                    unversioned.setdefault(n.split(".")[0], n)
            name = unversioned.get(region.split(".")[0])
            if name is None:
                raise InputError(f"{where}: region '{region}' is not in the reference genome") from None
        cache[region] = name
        return name

    return resolve


def _fetch_all(genome, rows, path, clipped: list) -> list:
    """Sequences of ``rows``. Like upstream (Python slicing), an interval running past the end of its
    sequence is cut at the end; the number of such records is appended to ``clipped``."""
    seqs = []
    resolve = _resolver(genome)
    n_clipped = 0
    for rid, region, start, end, strand in rows:
        name = resolve(region, f"{path} record {rid}")
        n = genome.lengths[name]
        if start >= n:
            raise InputError(f"{path} record {rid}: interval {region}:{start}-{end} starts past the end of the "
                             f"sequence ({n} bp)")
        if end > n:
            end, n_clipped = n, n_clipped + 1
        seqs.append(genome.fetch(name, start, end, strand))
    if n_clipped:
        clipped.append(f"{Path(path).name}: {n_clipped} interval(s) cut at the end of their sequence (as upstream)")
    return seqs


def load_gb_coordinates(coord_files: Mapping[str, Mapping[str, Union[str, Path]]],
                        genomes: Mapping[str, object], name: str = "genomic_benchmarks",
                        max_length: Optional[int] = None) -> BenchmarkData:
    """Materialize a Genomic Benchmarks task from coordinate CSVs.

    Args:
        coord_files: ``{split: {class: path}}``.
        genomes: ``{class: Genome}`` (any object with ``fetch(region, start, end, strand)``,
            ``resolve`` and ``lengths``): the reference each class's regions refer to.
    Coordinates are 0-based half-open; ``-`` strand records are reverse-complemented.
    """
    all_classes = sorted({c for files in coord_files.values() for c in files})
    classes = class_order(all_classes, name)
    splits = {}
    notes: list = []
    for split, files in coord_files.items():
        seqs, labels, rows = [], [], []
        for cls in sorted(files):
            if cls not in genomes:
                raise InputError(f"{name}: no reference genome given for class '{cls}'")
            recs = read_coordinates(files[cls])
            seqs += _fetch_all(genomes[cls], recs, files[cls], notes)
            labels += [cls] * len(recs)
            rows += [f"{Path(files[cls]).name} record {r[0]}" for r in recs]
        y = map_labels(labels, classes, f"{name}/{split}")
        ids, lengths, nt, na = encode_sequences(seqs, f"{name}/{split}", max_length, rows)
        splits[split] = LabeledSet(ids, lengths, y, classes, f"{name}/{split}", nt, na)
    return BenchmarkData(name, splits, classes, f"genomic_benchmarks coordinates ({name})", notes)


def load_gb_task(task: str, cache_dir=None, max_length: Optional[int] = None) -> BenchmarkData:
    """A Genomic Benchmarks task from its manifest ``gb_<task>`` files in the data cache.

    The files must have been fetched first (``genodiff data download gb_<task>``); otherwise a one-line
    InputError says so.
    """
    if task not in GB_TASKS:
        raise InputError(f"unknown Genomic Benchmarks task '{task}' (known: {', '.join(sorted(GB_TASKS))})")
    m = mf.load_manifest(f"gb_{task}")
    folder = mf.resolve_cache_dir(cache_dir) / m.name
    spec = GB_TASKS[task]["classes"]
    coord = {}
    for f in m.files:
        if f.role == "other" and f.name.endswith(".csv.gz"):
            split, cls = f.name[: -len(".csv.gz")].split(".", 1)
            coord.setdefault(split, {})[cls] = folder / f.name
    needed = [folder / f.name for f in m.files]
    missing = [p for p in needed if not p.exists()]
    if missing:
        raise InputError(f"Genomic Benchmarks task '{task}': {missing[0]} is missing; "
                         f"run `genodiff data download gb_{task}` first (needs network)")
    opened = {}
    genomes = {}
    for cls, fasta in spec.items():
        if fasta not in opened:
            opened[fasta] = Genome(folder / fasta)
        genomes[cls] = opened[fasta]
    return load_gb_coordinates(coord, genomes, task, max_length)
