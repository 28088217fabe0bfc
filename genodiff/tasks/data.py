"""``genodiff data download|verify|prepare <dataset>``: fetch, check and encode datasets into the cache.

``dataset`` is one of

* a manifest name (``demo``, ``hg38``, ``hg38_basenji``, or a name in ``manifest_dir``),
* a path to a manifest ``.yaml``,
* a path to a local FASTA file (plain/gzip/bgzip): ``prepare`` builds its encoded cache in
  ``<cache>/local/<name>/encoded``; with ``intervals=<bed>`` the BED is validated against it,
* any name together with ``fasta=<path>``: a local FASTA cached under that name.

Actions:

* ``download``: download (or, for ``demo``, generate) the files; checksums are verified before a file
  gets its final name.
* ``verify``: report every file as missing / present / verified (recomputes checksums); fails
  (InputError) if a file is missing or does not verify.
* ``prepare``: ``download`` + build the encoded token cache + validate interval files (and check the
  manifest's expected chromosome lengths, BED row counts and interval lengths).

Failures raise :class:`~genodiff.errors.InputError` / :class:`~genodiff.errors.DownloadError` (one line)
and leave no partial output: files are written under temporary names and renamed when complete, and
the encoded cache is built in a staging folder that is renamed only after all checks passed.
Coordinates (BED) are 0-based half-open.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from genodiff.data import manifest as mf
from genodiff.data.download import download_file, file_digest, lookup_checksum
from genodiff.errors import DownloadError, InputError

ACTIONS = ("download", "verify", "prepare")
FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fas", ".fa.gz", ".fasta.gz", ".fna.gz", ".fas.gz", ".fa.bgz",
                  ".fasta.bgz")


def _say(message: str) -> None:
    print(message, flush=True)


def _bool(cfg: DictConfig, key: str, default: bool) -> bool:
    value = cfg.get(key, default)
    if isinstance(value, bool):
        return value
    raise InputError(f"config key '{key}': expected true or false, got {value!r}")


def _number(cfg: DictConfig, key: str, default: float, minimum: float = 0) -> float:
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise InputError(f"config key '{key}': expected a number >= {minimum}, got {value!r}")
    return value


# ------------------------------------------------------------------------- colleague's data modules
def _build_encoded_cache() -> Callable:
    from genodiff.data.cache import build_encoded_cache

    return build_encoded_cache


def _open_encoded(folder: Path):
    from genodiff.data import cache as cache_mod

    genome_cls = getattr(cache_mod, "EncodedGenome", None)
    if genome_cls is None:
        from genodiff.data.genome import EncodedGenome as genome_cls  # type: ignore[no-redef]
    return genome_cls.open(folder)


def _read_bed():
    from genodiff.data.intervals import read_bed

    return read_bed


def _genome_lengths(genome) -> dict[str, int]:
    """Chromosome name -> length of an EncodedGenome (whatever attribute it exposes)."""
    for attr in ("lengths", "chrom_lengths", "chromosome_lengths", "sizes"):
        value = getattr(genome, attr, None)
        if callable(value):
            value = value()
        if value is not None:
            return {str(k): int(v) for k, v in dict(value).items()}
    names = getattr(genome, "names", None) or getattr(genome, "chromosomes", None)
    if names is not None:
        return {str(n): int(len(genome[n])) for n in names}
    raise RuntimeError("EncodedGenome exposes no chromosome lengths")


def _close(genome) -> None:
    close = getattr(genome, "close", None)
    if callable(close):
        close()


# ------------------------------------------------------------------------------------ encoded cache
def _cache_is_ready(folder: Path, fasta: Path | None = None) -> bool:
    """True if ``folder`` holds a complete encoded cache (built from the current ``fasta`` if given)."""
    if not (folder.is_dir() and any(folder.iterdir())):
        return False
    if fasta is not None:
        try:
            from genodiff.data.cache import cache_is_current
        except ImportError:
            pass
        else:
            try:
                return bool(cache_is_current(folder, fasta))
            except InputError:
                return False
    try:
        _close(_open_encoded(folder))
        return True
    except Exception:  # noqa: BLE001 - any failure means: rebuild
        return False


def _build_cache(fasta: Path, final: Path, *, progress: bool, force: bool,
                 check: Callable[[Any], None] | None = None) -> tuple[dict[str, int], bool, dict]:
    """Build the encoded cache of ``fasta`` at ``final`` via a staging folder; run ``check(genome)`` first.

    Returns (chromosome lengths, built, genome summary). An existing current cache is reused unless ``force``.
    """
    if not force and _cache_is_ready(final, fasta):
        genome = _open_encoded(final)
        try:
            lengths = _genome_lengths(genome)
            summary = _genome_summary(genome)
            if check is not None:
                check(genome)
        finally:
            _close(genome)
        return lengths, False, summary
    build = _build_encoded_cache()
    staging = final.with_name(f".{final.name}.staging-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    try:
        genome = build(fasta, staging, progress=progress)
        try:
            lengths = _genome_lengths(genome)
            summary = _genome_summary(genome)
            if check is not None:
                check(genome)
        finally:
            _close(genome)
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return lengths, True, summary


def _genome_summary(genome) -> dict:
    summary = getattr(genome, "summary", None)
    if not callable(summary):
        return {}
    out = dict(summary())
    out.pop("source", None)
    return out


def _check_lengths(expected: dict[str, int], lengths: dict[str, int], where: str) -> None:
    for chrom, length in expected.items():
        if chrom not in lengths:
            raise InputError(f"{where}: chromosome {chrom} expected by the manifest is missing")
        if lengths[chrom] != length:
            raise InputError(f"{where}: chromosome {chrom} has length {lengths[chrom]}, manifest expects {length}")


def _interval_rows(intervals) -> list[tuple[str, int, int, str | None]]:
    """(chrom, start, end, name) tuples from whatever read_bed returns."""
    rows = []
    if hasattr(intervals, "chrom") and hasattr(intervals, "start") and not isinstance(intervals, (list, tuple)):
        names = getattr(intervals, "name", None)
        for i in range(len(intervals.start)):
            rows.append((str(intervals.chrom[i]), int(intervals.start[i]), int(intervals.end[i]),
                         None if names is None else str(names[i])))
        return rows
    for item in intervals:
        if isinstance(item, (tuple, list)):
            rows.append((str(item[0]), int(item[1]), int(item[2]), str(item[3]) if len(item) > 3 else None))
        else:
            rows.append((str(item.chrom), int(item.start), int(item.end),
                         getattr(item, "split", getattr(item, "name", None))))
    return rows


def _validate_intervals(bed: Path, lengths: dict[str, int], expect_rows: dict[str, int] | None = None,
                        expect_length: int | None = None, aliases: dict | None = None) -> dict[str, Any]:
    """Validate a BED against the genome (read_bed raises InputError naming file:line); return a summary."""
    read_bed = _read_bed()
    rows = _interval_rows(read_bed(bed, genome_lengths=lengths, aliases=aliases or None))
    if not rows:
        raise InputError(f"{bed}: no intervals (empty BED file)")
    per_name: dict[str, int] = {}
    for _, start, end, name in rows:
        per_name[name or ""] = per_name.get(name or "", 0) + 1
        if expect_length is not None and end - start != expect_length:
            raise InputError(f"{bed}: interval length {end - start}, expected {expect_length} for every row")
    if expect_rows:
        for name, count in expect_rows.items():
            if per_name.get(name, 0) != count:
                raise InputError(f"{bed}: {per_name.get(name, 0)} rows named {name!r}, expected {count}")
    return {"path": str(bed), "rows": len(rows), "by_name": per_name}


# ------------------------------------------------------------------------------------ manifest files
def _expected_checksum(manifest: mf.Manifest, f: mf.ManifestFile, folder: Path, progress: bool,
                       timeout: float) -> tuple[str | None, str | None]:
    """(algorithm, hex) a file must match; looks the hex up in a published checksum list if needed."""
    if f.checksum:
        return f.algorithm, f.checksum
    if f.checksum_url:
        name = (f.url or f.name).rstrip("/").rsplit("/", 1)[-1]
        return f.algorithm, lookup_checksum(f.checksum_url, name, folder, progress=False, timeout=timeout,
                                            names=(f.name,))
    return None, None


def _content_check(f: mf.ManifestFile) -> Callable[[Path], None] | None:
    """Cheap structural check of a downloaded interval file (row counts / lengths) before it is accepted."""
    if f.role != "intervals" or not (f.expect_rows or f.expect_interval_length):
        return None

    def check(path: Path) -> None:
        counts: dict[str, int] = {}
        with open(path, "rb") as fh:
            for number, raw in enumerate(fh, 1):
                fields = raw.decode("utf-8", "replace").rstrip("\r\n").split("\t")
                if not fields[0] or fields[0].startswith(("#", "track", "browser")):
                    continue
                try:
                    length = int(fields[2]) - int(fields[1])
                except (IndexError, ValueError):
                    raise DownloadError(f"{f.name} line {number} is not a BED row") from None
                if f.expect_interval_length and length != f.expect_interval_length:
                    raise DownloadError(f"{f.name} line {number}: interval length {length}, "
                                        f"expected {f.expect_interval_length}")
                name = fields[3] if len(fields) > 3 else ""
                counts[name] = counts.get(name, 0) + 1
        for name, count in (f.expect_rows or {}).items():
            if counts.get(name, 0) != count:
                raise DownloadError(f"{f.name} has {counts.get(name, 0)} {name!r} rows, expected {count}")

    return check


def _fetch(manifest: mf.Manifest, folder: Path, cfg: DictConfig, *, force: bool, progress: bool) -> list[dict]:
    """Download (or generate) every file of ``manifest`` into ``folder``; return per-file reports."""
    timeout = _number(cfg, "timeout", 60.0, 1)
    retries = int(_number(cfg, "retries", 3, 0))
    if manifest.generator == "demo":
        return _generate_demo(manifest, folder, cfg, force=force)
    reports = []
    for f in manifest.files:
        dest = folder / f.name
        if dest.exists() and not force and mf.read_stamp(dest) is not None:
            reports.append({"name": f.name, "path": str(dest), "state": "verified (cached)"})
            continue
        try:
            algorithm, expected = _expected_checksum(manifest, f, folder, progress, timeout)
        except DownloadError as exc:
            if not str(exc).startswith("cannot download"):
                raise
            listing = folder / f.checksum_url.rstrip("/").rsplit("/", 1)[-1]
            reason = str(exc).split(";", 1)[0].split(": ", 1)[-1]
            raise DownloadError(f"cannot download the published checksums {f.checksum_url}: {reason}; download "
                                f"{f.url} and {f.checksum_url} yourself and place them at {dest} and {listing}") from None
        check = _content_check(f)
        if dest.exists() and not force and check is not None:
            try:
                check(dest)
            except DownloadError as exc:
                raise DownloadError(f"{dest}: {exc}; delete it and rerun") from None
        download_file(f.url, dest, algorithm=algorithm, expected=expected, size=f.size, progress=progress,
                      timeout=timeout, retries=retries, force=force, on_fetched=check)
        if algorithm and expected:
            mf.write_stamp(dest, algorithm, expected)
            state = f"verified ({algorithm})"
        else:  # no published checksum: pin the sha256 of what we got
            mf.write_stamp(dest, "sha256", file_digest(dest, "sha256"), pinned=True)
            state = "downloaded (no published checksum; sha256 pinned)"
        _say(f"{manifest.name}: {f.name}: {state}")
        reports.append({"name": f.name, "path": str(dest), "state": state})
    return reports


def _generate_demo(manifest: mf.Manifest, folder: Path, cfg: DictConfig, *, force: bool) -> list[dict]:
    from genodiff.data import demo_genome as dg

    demo = cfg.get("demo") or {}
    seed, window = demo.get("seed", 0), demo.get("window", 32768)
    for key, value, low in (("seed", seed, 0), ("window", window, 1000)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InputError(f"config key 'demo.{key}': expected an integer >= {low}, got {value!r}")
    fasta_file = manifest.file("fasta")
    bed_file = manifest.file("intervals")
    fasta = folder / fasta_file.name
    reports = []
    params = {"seed": seed, "window": window, "generator": "genodiff.data.demo_genome", "version": 1}
    params_path = folder / "demo_params.json"
    current = None
    if params_path.exists():
        try:
            current = json.loads(params_path.read_text())
        except ValueError:
            current = None
    fresh = force or current != params or not fasta.exists() or (bed_file and not (folder / bed_file.name).exists())
    if fresh:
        folder.mkdir(parents=True, exist_ok=True)
        records = dg.generate_demo_genome(seed=seed)
        dg.write_fasta(records, fasta)
        mf.write_stamp(fasta, "sha256", file_digest(fasta, "sha256"), pinned=True)
        if bed_file is not None:
            bed = folder / bed_file.name
            dg.write_bed(dg.demo_windows(window=window, records=records), bed)
            mf.write_stamp(bed, "sha256", file_digest(bed, "sha256"), pinned=True)
        tmp = params_path.with_name(params_path.name + ".tmp")
        tmp.write_text(json.dumps(params) + "\n")
        os.replace(tmp, params_path)
        enc = mf.encoded_dir(folder)
        if enc.exists():  # generated anew: the old cache is stale
            shutil.rmtree(enc)
        _say(f"demo: generated {fasta} (seed {seed})")
    for f in manifest.files:
        reports.append({"name": f.name, "path": str(folder / f.name), "state": "generated" if fresh else "cached"})
    return reports


# ---------------------------------------------------------------------------------------- actions
def _verify(manifest: mf.Manifest, folder: Path, cfg: DictConfig) -> dict[str, Any]:
    timeout = _number(cfg, "timeout", 60.0, 1)
    reports, missing, bad = [], [], []
    for f in manifest.files:
        path = folder / f.name
        if not path.is_file():
            state = "missing"
            missing.append(f.name)
        else:
            try:
                algorithm, expected = (None, None) if manifest.generator else \
                    _expected_checksum(manifest, f, folder, False, timeout)
            except DownloadError as exc:
                algorithm, expected = None, None
                state_note = f" (checksum unavailable: {exc})"
            else:
                state_note = ""
            stamp = mf.read_stamp(path)
            if not expected and stamp and (stamp.get("pinned") or state_note):
                # no published checksum (pinned on download), or the published list is unreachable now:
                # check against the digest recorded when the file was verified
                algorithm, expected = stamp["algorithm"], stamp["digest"]
                state_note = ""
            if expected:
                digest = file_digest(path, algorithm)
                if digest == expected:
                    pinned = stamp is not None and stamp.get("pinned") and not (f.checksum or f.checksum_url)
                    state = f"verified ({algorithm}{', pinned locally' if pinned else ''})"
                    mf.write_stamp(path, algorithm, digest, pinned=bool(pinned))
                else:
                    state = f"CHECKSUM MISMATCH ({algorithm} {digest}, expected {expected})"
                    bad.append(f.name)
            else:
                state = "present, not verified" + state_note
            check = _content_check(f)
            if check is not None and f.name not in bad:
                try:
                    check(path)
                except DownloadError as exc:
                    state = f"BAD CONTENT ({exc})"
                    bad.append(f.name)
        _say(f"{manifest.name}: {f.name}: {state}")
        reports.append({"name": f.name, "path": str(path), "state": state})
    encoded = mf.encoded_dir(folder)
    fasta_entry = manifest.file("fasta")
    prepared = bool(fasta_entry and (folder / fasta_entry.name).is_file()
                    and _cache_is_ready(encoded, folder / fasta_entry.name))
    _say(f"{manifest.name}: encoded cache: {'present' if prepared else 'not built'}")
    result = {"action": "verify", "dataset": manifest.name, "folder": str(folder), "files": reports,
              "prepared": prepared, "ok": not missing and not bad}
    if bad:
        raise InputError(f"{manifest.name}: {', '.join(bad)} in {folder} failed verification; delete and rerun "
                         f"`genodiff data download {manifest.name}`")
    if missing:
        hint = "prepare" if manifest.generator else "download"
        raise InputError(f"{manifest.name}: {len(missing)} of {len(manifest.files)} files missing in {folder} "
                         f"({', '.join(missing)}); run `genodiff data {hint} {manifest.name}`")
    return result


def _remove_if_empty(*folders: Path) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            pass


def _prepare_manifest(manifest: mf.Manifest, folder: Path, cfg: DictConfig, *, force: bool,
                      progress: bool) -> dict[str, Any]:
    files = _fetch(manifest, folder, cfg, force=force, progress=progress)
    fasta_entry = manifest.file("fasta")
    result: dict[str, Any] = {"action": "prepare", "dataset": manifest.name, "folder": str(folder), "files": files}
    if fasta_entry is None:
        return result
    fasta = folder / fasta_entry.name
    user_bed = _user_path(cfg, "intervals")

    def check(genome) -> None:
        lengths = _genome_lengths(genome)
        _check_lengths(manifest.expect_lengths, lengths, str(fasta))
        result["intervals"] = []
        for f in manifest.files:
            if f.role == "intervals":
                result["intervals"].append(_validate_intervals(folder / f.name, lengths, f.expect_rows,
                                                               f.expect_interval_length, manifest.aliases))
        if user_bed is not None:
            result["intervals"].append(_validate_intervals(user_bed, lengths, aliases=manifest.aliases))

    encoded = mf.encoded_dir(folder)
    lengths, built, summary = _build_cache(fasta, encoded, progress=progress, force=force, check=check)
    result.update(_summary(fasta, encoded, lengths, built), summary=summary)
    _say(f"{manifest.name}: encoded cache {'built' if built else 'up to date'} at {encoded} "
         f"({len(lengths)} sequences, {sum(lengths.values()):,} bp)")
    return result


def _summary(fasta: Path, encoded: Path, lengths: dict[str, int], built: bool) -> dict[str, Any]:
    return {"fasta": str(fasta), "encoded": str(encoded), "built": built, "sequences": len(lengths),
            "total_length": int(sum(lengths.values()))}


def _user_path(cfg: DictConfig, key: str) -> Path | None:
    value = cfg.get(key)
    if value in (None, ""):
        return None
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise InputError(f"{key}={value}: file not found")
    return path


def _looks_like_fasta(dataset: str) -> bool:
    low = dataset.lower()
    return low.endswith(FASTA_SUFFIXES) or ((os.sep in dataset or "/" in dataset) and not mf.is_manifest_path(dataset))


def _local_name(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".bgz"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    name = name.rsplit(".", 1)[0] if "." in name else name
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name).lstrip("._-") or "fasta"


def _cached_source(encoded: Path) -> str | None:
    """The FASTA path recorded in an existing encoded cache, if any."""
    try:
        return json.loads((encoded / "index.json").read_text(encoding="utf-8")).get("source")
    except (OSError, ValueError, AttributeError):
        return None


def _prepare_local(name: str, fasta: Path, folder: Path, cfg: DictConfig, action: str, *, force: bool,
                   progress: bool) -> dict[str, Any]:
    if not fasta.is_file():
        raise InputError(f"{fasta}: FASTA file not found")
    result: dict[str, Any] = {"action": action, "dataset": name, "folder": str(folder), "fasta": str(fasta.resolve())}
    if action == "download":
        _say(f"{name}: local file {fasta}, nothing to download")
        return result
    encoded = mf.encoded_dir(folder)
    if action == "verify":
        ok = _cache_is_ready(encoded, fasta)
        _say(f"{name}: {fasta}: present; encoded cache: {'up to date' if ok else 'not built or stale'}")
        result.update({"prepared": ok, "ok": ok})
        return result
    user_bed = _user_path(cfg, "intervals")
    recorded = _cached_source(encoded)
    if recorded is not None and recorded != str(fasta.resolve()) and not force:
        raise InputError(f"dataset name '{name}' in {folder} is already used for {recorded}; choose another name "
                         f"with `genodiff data prepare <name> fasta={fasta}`, or replace it with force=true")

    def check(genome) -> None:
        if user_bed is not None:
            result["intervals"] = [_validate_intervals(user_bed, _genome_lengths(genome))]

    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lengths, built, summary = _build_cache(fasta, encoded, progress=progress, force=force, check=check)
    except BaseException:
        if created:
            shutil.rmtree(folder, ignore_errors=True)
            _remove_if_empty(folder.parent, folder.parent.parent)
        raise
    result.update(_summary(fasta, encoded, lengths, built), summary=summary)
    _say(f"{name}: encoded cache {'built' if built else 'up to date'} at {encoded} "
         f"({len(lengths)} sequences, {sum(lengths.values()):,} bp)")
    return result


def run(cfg: DictConfig) -> dict[str, Any]:
    """Run one data action (see the module docstring); returns a JSON-serialisable report."""
    action = cfg.get("action")
    if action == "tokenizer":
        from genodiff.tasks.text_data import run_tokenizer

        return run_tokenizer(cfg)
    if action not in ACTIONS:
        raise InputError(f"config key 'action': expected one of {', '.join(ACTIONS)}, got {action!r}")
    dataset = cfg.get("dataset")
    if dataset in (None, ""):
        raise InputError("config key 'dataset': give a dataset name (e.g. demo), a manifest .yaml or a FASTA path")
    dataset = str(dataset)
    force = _bool(cfg, "force", False)
    progress = _bool(cfg, "progress", True) and sys.stderr.isatty()
    cache = mf.resolve_cache_dir(cfg.get("cache_dir"))
    if cache.exists() and not cache.is_dir():
        raise InputError(f"cache_dir {cache}: exists and is not a folder")

    fasta_override = cfg.get("fasta")
    if fasta_override not in (None, "") or _looks_like_fasta(dataset):
        fasta = Path(str(fasta_override if fasta_override not in (None, "") else dataset)).expanduser()
        name = dataset if fasta_override not in (None, "") else _local_name(fasta)
        if not mf._NAME_RE.match(name):
            raise InputError(f"dataset {dataset!r}: with fasta=..., the dataset must be a plain name")
        return _prepare_local(name, fasta, cache / "local" / name, cfg, action, force=force, progress=progress)

    manifest = mf.load_manifest(dataset, cfg.get("manifest_dir"))
    folder = cache / manifest.name
    if action == "verify":
        return _verify(manifest, folder, cfg)
    created = [p for p in (cache, folder) if not p.exists()]
    try:
        if action == "download":
            files = _fetch(manifest, folder, cfg, force=force, progress=progress)
            return {"action": "download", "dataset": manifest.name, "folder": str(folder), "files": files}
        return _prepare_manifest(manifest, folder, cfg, force=force, progress=progress)
    except BaseException:
        _remove_if_empty(*reversed(created))
        raise


def prepare_dataset(dataset: str = "demo", cache_dir: str | os.PathLike | None = None, **overrides: Any) -> dict[str, Any]:
    """``genodiff data prepare <dataset>`` from Python (e.g. a training task making sure ``demo`` exists).

    ``overrides`` are config keys of ``configs/data.yaml`` (``force=True``, ``intervals=...``, ...).
    Returns the same report as :func:`run` (``encoded``: the cache folder, ``fasta``, ``intervals``...).
    """
    from importlib import resources

    base = OmegaConf.load(resources.files("genodiff.configs").joinpath("data.yaml").open("r", encoding="utf-8"))
    base.pop("defaults", None)
    base.pop("hydra", None)
    unknown = set(overrides) - set(base)
    if unknown:
        raise InputError(f"prepare_dataset: unknown config key(s) {', '.join(sorted(unknown))}")
    cfg = OmegaConf.merge(base, {"action": "prepare", "dataset": str(dataset), "cache_dir": cache_dir,
                                 "progress": False, **overrides})
    return run(cfg)


if __name__ == "__main__":  # pragma: no cover - convenience: python -m genodiff.tasks.data prepare demo
    args = sys.argv[1:]
    conf = OmegaConf.create({"action": args[0] if args else "prepare", "dataset": args[1] if len(args) > 1 else "demo"})
    conf.merge_with_dotlist(args[2:])
    print(json.dumps(run(conf), indent=2, default=str))
