"""Download, verify and prepare (encode) genome datasets in the data cache.

``dataset`` is one of

* a manifest name (``demo``, ``hg38``, ``hg38_basenji``, or a name in ``manifest_dir``),
* a path to a manifest ``.yaml``,
* a path to a local FASTA file (plain/gzip/bgzip): ``prepare`` builds its encoded cache in
  ``<cache>/local/<name>/encoded``; with ``intervals=<bed>`` the BED is validated against it,
* any name together with ``fasta=<path>``: a local FASTA cached under that name.

Actions (:data:`ACTIONS`):

* :func:`download`: download (or, for ``demo``, generate) the files; checksums are verified before a file
  gets its final name.
* :func:`verify`: report every file as missing / present / verified (recomputes checksums); fails
  (InputError) if a file is missing or does not verify.
* :func:`prepare`: ``download`` + build the encoded token cache + validate interval files (and check the
  manifest's expected chromosome lengths, BED row counts and interval lengths).

Each takes the dataset, a :class:`PrepareConfig` (the keys of ``configs/data.yaml`` it uses; the data job
checks their types) and ``say``, a callback for the progress lines (default: silent), and returns a
JSON-serialisable report. Failures raise :class:`~genodiff.errors.InputError` /
:class:`~genodiff.errors.DownloadError` (one line) and leave no partial output: files are written under
temporary names and renamed when complete, and the encoded cache is built in a staging folder that is
renamed only after all checks passed. Coordinates (BED) are 0-based half-open.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from genodiff.data import manifest as mf
from genodiff.data.download import download_file, lookup_checksum
from genodiff.data.files import atomic_write_text, file_digest, install_folder
from genodiff.data.genome import demo as dg
from genodiff.data.genome.cache import EncodedGenome, build_encoded_cache, cache_is_current
from genodiff.data.genome.fasta import write_fasta
from genodiff.data.genome.intervals import read_bed
from genodiff.errors import DownloadError, InputError

FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fas", ".fa.gz", ".fasta.gz", ".fna.gz", ".fas.gz", ".fa.bgz",
                  ".fasta.bgz")
PathLike = str | os.PathLike
Say = Callable[[str], None]


@dataclass(frozen=True)
class DemoConfig:
    """The demo genome: ``seed`` (same seed -> same bytes) and the length of its train/valid/test windows."""

    seed: int = 0
    window: int = 32768


@dataclass(frozen=True)
class PrepareConfig:
    """Keys of ``configs/data.yaml`` used by the preparation (same names, same defaults but ``progress``)."""

    cache_dir: PathLike | None = None     # None: $GENODIFF_DATA, else <user cache dir>/genodiff
    manifest_dir: PathLike | None = None  # None: the packaged manifests
    fasta: PathLike | None = None         # a local FASTA cached under the dataset name
    intervals: PathLike | None = None     # a local BED validated against the prepared genome
    force: bool = False                   # re-download / regenerate / rebuild even if present
    progress: bool = False                # progress bars on stderr
    timeout: float = 60.0                 # seconds without data before a download attempt fails
    retries: int = 3                      # automatic resumes of an interrupted download
    demo: DemoConfig = field(default_factory=DemoConfig)


def say_stdout(message: str) -> None:
    """A ``say`` that prints each line to stdout at once."""
    print(message, flush=True)


def _silent(message: str) -> None:
    pass


# ------------------------------------------------------------------------------------ encoded cache
def _cache_is_ready(folder: Path, fasta: Path) -> bool:
    """True if ``folder`` holds a complete encoded cache built from the current ``fasta``."""
    try:
        return cache_is_current(folder, fasta)
    except InputError:
        return False


def _genome_summary(genome: EncodedGenome) -> dict:
    out = genome.summary()
    out.pop("source", None)
    return out


def _inspect(genome: EncodedGenome, check: Callable[[EncodedGenome], None] | None) -> tuple[dict[str, int], dict]:
    """(chromosome lengths, summary) of ``genome``, after ``check(genome)`` passed."""
    lengths, summary = dict(genome.lengths), _genome_summary(genome)
    if check is not None:
        check(genome)
    return lengths, summary


def _build_cache(fasta: Path, final: Path, *, progress: bool, force: bool,
                 check: Callable[[EncodedGenome], None] | None = None) -> tuple[dict[str, int], bool, dict]:
    """Build the encoded cache of ``fasta`` at ``final`` via a staging folder; run ``check(genome)`` first.

    Returns (chromosome lengths, built, genome summary). An existing current cache is reused unless ``force``.
    """
    if not force and _cache_is_ready(final, fasta):
        lengths, summary = _inspect(EncodedGenome.open(final), check)
        return lengths, False, summary
    staging = final.with_name(f".{final.name}.staging-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    try:
        lengths, summary = _inspect(build_encoded_cache(fasta, staging, progress=progress), check)
        install_folder(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return lengths, True, summary


def _check_lengths(expected: dict[str, int], lengths: dict[str, int], where: str) -> None:
    for chrom, length in expected.items():
        if chrom not in lengths:
            raise InputError(f"{where}: chromosome {chrom} expected by the manifest is missing")
        if lengths[chrom] != length:
            raise InputError(f"{where}: chromosome {chrom} has length {lengths[chrom]}, manifest expects {length}")


def _validate_intervals(bed: Path, lengths: dict[str, int], expect_rows: dict[str, int] | None = None,
                        expect_length: int | None = None, aliases: dict | None = None) -> dict[str, Any]:
    """Validate a BED against the genome (read_bed raises InputError naming file:line); return a summary."""
    intervals = read_bed(bed, genome_lengths=lengths, aliases=aliases or None)
    if not intervals:
        raise InputError(f"{bed}: no intervals (empty BED file)")
    per_name: dict[str, int] = {}
    for interval in intervals:
        name = interval.split or ""
        per_name[name] = per_name.get(name, 0) + 1
        if expect_length is not None and interval.length != expect_length:
            raise InputError(f"{bed}: interval length {interval.length}, expected {expect_length} for every row")
    for name, count in (expect_rows or {}).items():
        if per_name.get(name, 0) != count:
            raise InputError(f"{bed}: {per_name.get(name, 0)} rows named {name!r}, expected {count}")
    return {"path": str(bed), "rows": len(intervals), "by_name": per_name}


# ------------------------------------------------------------------------------------ manifest files
def _expected_checksum(f: mf.ManifestFile, folder: Path, timeout: float) -> tuple[str | None, str | None]:
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


def _fetch(manifest: mf.Manifest, folder: Path, config: PrepareConfig, say: Say) -> list[dict]:
    """Download (or generate) every file of ``manifest`` into ``folder``; return per-file reports."""
    if manifest.generator == "demo":
        return _generate_demo(manifest, folder, config, say)
    reports = []
    for f in manifest.files:
        dest = folder / f.name
        if dest.exists() and not config.force and mf.read_stamp(dest) is not None:
            reports.append({"name": f.name, "path": str(dest), "state": "verified (cached)"})
            continue
        try:
            algorithm, expected = _expected_checksum(f, folder, config.timeout)
        except DownloadError as exc:
            if not str(exc).startswith("cannot download"):
                raise
            listing = folder / f.checksum_url.rstrip("/").rsplit("/", 1)[-1]
            reason = str(exc).split(";", 1)[0].split(": ", 1)[-1]
            raise DownloadError(f"cannot download the published checksums {f.checksum_url}: {reason}; download "
                                f"{f.url} and {f.checksum_url} yourself and place them at {dest} and {listing}"
                                ) from None
        check = _content_check(f)
        if dest.exists() and not config.force and check is not None:
            try:
                check(dest)
            except DownloadError as exc:
                raise DownloadError(f"{dest}: {exc}; delete it and rerun") from None
        download_file(f.url, dest, algorithm=algorithm, expected=expected, size=f.size, progress=config.progress,
                      timeout=config.timeout, retries=config.retries, force=config.force, on_fetched=check)
        if algorithm and expected:
            mf.write_stamp(dest, algorithm, expected)
            state = f"verified ({algorithm})"
        else:  # no published checksum: pin the sha256 of what we got
            mf.write_stamp(dest, "sha256", file_digest(dest, "sha256"), pinned=True)
            state = "downloaded (no published checksum; sha256 pinned)"
        say(f"{manifest.name}: {f.name}: {state}")
        reports.append({"name": f.name, "path": str(dest), "state": state})
    return reports


def _generate_demo(manifest: mf.Manifest, folder: Path, config: PrepareConfig, say: Say) -> list[dict]:
    seed, window = config.demo.seed, config.demo.window
    fasta = folder / manifest.file("fasta").name
    bed_file = manifest.file("intervals")
    params = {"seed": seed, "window": window, "generator": "genodiff.data.genome.demo", "version": 1}
    params_path = folder / "demo_params.json"
    current = None
    if params_path.exists():
        try:
            current = json.loads(params_path.read_text())
        except ValueError:
            current = None
    fresh = config.force or current != params or not fasta.exists() \
        or (bed_file and not (folder / bed_file.name).exists())
    if fresh:
        folder.mkdir(parents=True, exist_ok=True)
        records = dg.generate_demo_genome(seed=seed)
        write_fasta(fasta, records)
        mf.write_stamp(fasta, "sha256", file_digest(fasta, "sha256"), pinned=True)
        if bed_file is not None:
            bed = folder / bed_file.name
            dg.write_bed(dg.demo_windows(window=window, records=records), bed)
            mf.write_stamp(bed, "sha256", file_digest(bed, "sha256"), pinned=True)
        atomic_write_text(params_path, json.dumps(params) + "\n")
        enc = mf.encoded_dir(folder)
        if enc.exists():  # generated anew: the old cache is stale
            shutil.rmtree(enc)
        say(f"demo: generated {fasta} (seed {seed})")
    state = "generated" if fresh else "cached"
    return [{"name": f.name, "path": str(folder / f.name), "state": state} for f in manifest.files]


# ---------------------------------------------------------------------------------- manifest datasets
def _verify(manifest: mf.Manifest, folder: Path, config: PrepareConfig, say: Say) -> dict[str, Any]:
    reports, missing, bad = [], [], []
    for f in manifest.files:
        path = folder / f.name
        if not path.is_file():
            state = "missing"
            missing.append(f.name)
        else:
            try:
                algorithm, expected = (None, None) if manifest.generator else \
                    _expected_checksum(f, folder, config.timeout)
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
        say(f"{manifest.name}: {f.name}: {state}")
        reports.append({"name": f.name, "path": str(path), "state": state})
    fasta_entry = manifest.file("fasta")
    prepared = bool(fasta_entry and (folder / fasta_entry.name).is_file()
                    and _cache_is_ready(mf.encoded_dir(folder), folder / fasta_entry.name))
    say(f"{manifest.name}: encoded cache: {'present' if prepared else 'not built'}")
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


def _prepare_manifest(manifest: mf.Manifest, folder: Path, config: PrepareConfig, say: Say) -> dict[str, Any]:
    files = _fetch(manifest, folder, config, say)
    fasta_entry = manifest.file("fasta")
    result: dict[str, Any] = {"action": "prepare", "dataset": manifest.name, "folder": str(folder), "files": files}
    if fasta_entry is None:
        return result
    fasta = folder / fasta_entry.name
    user_bed = _user_path(config.intervals, "intervals")

    def check(genome: EncodedGenome) -> None:
        lengths = genome.lengths
        _check_lengths(manifest.expect_lengths, lengths, str(fasta))
        result["intervals"] = [_validate_intervals(folder / f.name, lengths, f.expect_rows,
                                                   f.expect_interval_length, manifest.aliases)
                               for f in manifest.files if f.role == "intervals"]
        if user_bed is not None:
            result["intervals"].append(_validate_intervals(user_bed, lengths, aliases=manifest.aliases))

    encoded = mf.encoded_dir(folder)
    cache = _build_cache(fasta, encoded, progress=config.progress, force=config.force, check=check)
    return _report_cache(manifest.name, fasta, encoded, cache, result, say)


def _report_cache(name: str, fasta: Path, encoded: Path, cache: tuple[dict[str, int], bool, dict],
                  result: dict[str, Any], say: Say) -> dict[str, Any]:
    """Add what :func:`_build_cache` returned (``cache``) to ``result``, say it, and return ``result``."""
    lengths, built, summary = cache
    result.update({"fasta": str(fasta), "encoded": str(encoded), "built": built, "sequences": len(lengths),
                   "total_length": int(sum(lengths.values())), "summary": summary})
    say(f"{name}: encoded cache {'built' if built else 'up to date'} at {encoded} "
        f"({len(lengths)} sequences, {sum(lengths.values()):,} bp)")
    return result


def _user_path(value: PathLike | None, key: str) -> Path | None:
    if value in (None, ""):
        return None
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise InputError(f"{key}={value}: file not found")
    return path


# ------------------------------------------------------------------------------------- local FASTA
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


def _remove_if_empty(*folders: Path) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            pass


def _local(action: str, name: str, fasta: Path, folder: Path, config: PrepareConfig, say: Say) -> dict[str, Any]:
    if not fasta.is_file():
        raise InputError(f"{fasta}: FASTA file not found")
    result: dict[str, Any] = {"action": action, "dataset": name, "folder": str(folder), "fasta": str(fasta.resolve())}
    if action == "download":
        say(f"{name}: local file {fasta}, nothing to download")
        return result
    encoded = mf.encoded_dir(folder)
    if action == "verify":
        ok = _cache_is_ready(encoded, fasta)
        say(f"{name}: {fasta}: present; encoded cache: {'up to date' if ok else 'not built or stale'}")
        result.update({"prepared": ok, "ok": ok})
        return result
    user_bed = _user_path(config.intervals, "intervals")
    recorded = _cached_source(encoded)
    if recorded is not None and recorded != str(fasta.resolve()) and not config.force:
        raise InputError(f"dataset name '{name}' in {folder} is already used for {recorded}; choose another name "
                         f"with `genodiff data prepare <name> fasta={fasta}`, or replace it with force=true")

    def check(genome: EncodedGenome) -> None:
        if user_bed is not None:
            result["intervals"] = [_validate_intervals(user_bed, genome.lengths)]

    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        cache = _build_cache(fasta, encoded, progress=config.progress, force=config.force, check=check)
    except BaseException:
        if created:
            shutil.rmtree(folder, ignore_errors=True)
            _remove_if_empty(folder.parent, folder.parent.parent)
        raise
    return _report_cache(name, fasta, encoded, cache, result, say)


# ------------------------------------------------------------------------------------------ actions
def _run(action: str, dataset: str, config: PrepareConfig, say: Say | None) -> dict[str, Any]:
    say = say or _silent
    cache = mf.resolve_cache_dir(config.cache_dir)
    if cache.exists() and not cache.is_dir():
        raise InputError(f"cache_dir {cache}: exists and is not a folder")
    if config.fasta not in (None, "") or _looks_like_fasta(dataset):
        fasta = Path(str(config.fasta if config.fasta not in (None, "") else dataset)).expanduser()
        name = dataset if config.fasta not in (None, "") else _local_name(fasta)
        if not mf.is_plain_name(name):
            raise InputError(f"dataset {dataset!r}: with fasta=..., the dataset must be a plain name")
        return _local(action, name, fasta, cache / "local" / name, config, say)
    manifest = mf.load_manifest(dataset, config.manifest_dir)
    folder = cache / manifest.name
    if action == "verify":
        return _verify(manifest, folder, config, say)
    created = [p for p in (cache, folder) if not p.exists()]
    try:
        if action == "download":
            files = _fetch(manifest, folder, config, say)
            return {"action": "download", "dataset": manifest.name, "folder": str(folder), "files": files}
        return _prepare_manifest(manifest, folder, config, say)
    except BaseException:
        _remove_if_empty(*reversed(created))
        raise


def download(dataset: str, config: PrepareConfig = PrepareConfig(), say: Say | None = None) -> dict[str, Any]:
    """Download (or generate) the files of ``dataset`` into the cache; returns ``{action, dataset, folder, files}``."""
    return _run("download", dataset, config, say)


def verify(dataset: str, config: PrepareConfig = PrepareConfig(), say: Say | None = None) -> dict[str, Any]:
    """Check every file of ``dataset`` (checksums recomputed); returns ``{..., files, prepared, ok}``.

    Raises InputError if a file is missing or fails verification (after ``say``-ing every file's state)."""
    return _run("verify", dataset, config, say)


def prepare(dataset: str, config: PrepareConfig = PrepareConfig(), say: Say | None = None) -> dict[str, Any]:
    """Download + encode + validate ``dataset``; returns ``{..., fasta, encoded, built, sequences, total_length,
    summary, intervals}`` (``encoded``: the cache folder for ``EncodedGenome.open``)."""
    return _run("prepare", dataset, config, say)


#: action name -> function, for the data job
ACTIONS: dict[str, Callable[..., dict[str, Any]]] = {"download": download, "verify": verify, "prepare": prepare}
