"""The app's jobs: each request runs the CLI's own task in a fresh folder, so its files are the CLI's files.

:class:`Runner` has one method per tab (:meth:`~Runner.generate`, :meth:`~Runner.design`, :meth:`~Runner.infill`,
:meth:`~Runner.score`, :meth:`~Runner.variants`, :meth:`~Runner.analyze`). Each

1. checks the request against the server's :class:`~genodiff.app.settings.Limits` (sizes in bp, uploads in
   MB) and copies uploads / pasted text into ``<request>/in/`` (files a browser names on the server come only
   from the data folder, :func:`~genodiff.app.datafiles.resolve_data_file`);
2. composes the job's config exactly as ``genodiff <job> key=value ...`` would
   (:func:`genodiff.config.compose_config`) with the user's values as overrides and
   ``output_dir=<request>/out``;
3. runs the task's ``run(cfg)`` (:mod:`genodiff.tasks.sample`, :mod:`~genodiff.tasks.score`,
   :mod:`~genodiff.tasks.analyze`) and returns its files.

The same values and seed therefore give byte-identical FASTA/TSV to the CLI (``JobResult.command`` is that
command line). Bad input raises :class:`~genodiff.errors.InputError` with one line in which the request folder
and the data folder are left out of paths; a failed request leaves no folder behind. Request folders live in
one private temporary folder per server (mode 0700) and are removed after ``results_ttl_minutes``.

No web framework here: the page (:mod:`genodiff.app.ui`) calls these methods.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genodiff.app.datafiles import SAFE_NAME, resolve_data_file
from genodiff.app.settings import ServeSettings
from genodiff.config import compose_config
from genodiff.data.genome.intervals import read_bed
from genodiff.errors import InputError, NonFiniteError
from genodiff.generate.conditioning import parse_region
from genodiff.generate.design import classifier_classes, label_classes
from genodiff.generate.fasta import DNA_CHARS, read_fasta, sanitize_id
from genodiff.generate.variants import read_variants
from genodiff.interop.export import read_spec, resolve_export
from genodiff.tasks import analyze as analyze_task
from genodiff.tasks import sample as sample_task
from genodiff.tasks import score as score_task

#: the samplers the Generate and Infill tabs offer (those of ``genodiff sample``)
SAMPLERS = sample_task.SAMPLERS
#: the reveal orders of the ancestral / cached samplers (``genodiff sample order=``)
ORDERS = sample_task.ORDERS
DEFAULT_STEPS, DEFAULT_ORDER = sample_task.DEFAULT_STEPS, sample_task.DEFAULT_ORDER
#: Hydra's global state is not thread-safe: one composition at a time
_COMPOSE_LOCK = threading.Lock()
#: guidance kinds of the Design tab (classifier-free needs a class-conditional model, classifier a classifier export)
GUIDANCE_KINDS = ("classifier-free", "classifier")
#: largest guidance strength the Design tab accepts
MAX_GUIDANCE_SCALE = 20.0
#: display order of result files (by ending); others follow alphabetically
_ORDER = (".fa", ".tsv", ".bed", ".md", ".json", ".png")


@dataclass
class JobResult:
    """What one request produced.

    files: the task's output files (FASTA / TSV / BED / JSON / PNG), in display order.
    summary: the dict the task's ``run(cfg)`` returned.
    command: the equivalent command line (uploads named by their file names).
    folder: the request folder (``out/`` holds ``files``).
    """

    files: list[Path]
    summary: dict[str, Any]
    command: str
    folder: Path
    #: (server path, name shown to the user) pairs, longest path first
    names: list[tuple[str, str]] = field(default_factory=list)

    def file(self, suffix: str) -> Path | None:
        """The first result file whose name ends with ``suffix`` (e.g. ``".fa"``), or None."""
        return next((f for f in self.files if f.name.endswith(suffix)), None)

    def redact(self, text: str) -> str:
        """``text`` with the request folder and data folder paths replaced by the names the user gave."""
        for path, shown in self.names:
            text = text.replace(path, shown)
        return text


@dataclass
class _Request:
    folder: Path
    shown: dict[str, str] = field(default_factory=dict)  # path in the request folder -> name shown to the user

    @property
    def inputs(self) -> Path:
        return self.folder / "in"


# ------------------------------------------------------------------------------------------ values
def as_int(key: str, value: Any, lo: int, hi: int) -> int:
    """``value`` as an integer in ``[lo, hi]`` (whole floats such as ``2.0`` accepted), else one InputError line."""
    if isinstance(value, bool) or value is None or value == "":
        raise InputError(f"{key}: must be a whole number in {lo}..{hi}, got {value!r}")
    if isinstance(value, int):
        if not lo <= value <= hi:
            raise InputError(f"{key}: must be a whole number in {lo}..{hi}, got {value!r}")
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{key}: must be a whole number in {lo}..{hi}, got {value!r}") from None
    if not number.is_integer() or not lo <= number <= hi:
        raise InputError(f"{key}: must be a whole number in {lo}..{hi}, got {value!r}")
    return int(number)


def as_fraction(key: str, value: Any) -> float | None:
    """An optional number in ``[0, 1]`` (None or empty: not set)."""
    if isinstance(value, str):
        value = value.strip()
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{key}: must be a number in [0, 1], got {value!r}") from None
    if not 0 <= number <= 1:
        raise InputError(f"{key}: must be a number in [0, 1], got {value!r}")
    return number


def override(key: str, value: Any) -> str:
    """One Hydra override ``key=value`` for a plain value: None -> ``null``, bools, numbers, and strings made
    only of :data:`~genodiff.app.datafiles.SAFE_NAME` characters and ``:`` (quoted). Anything else is refused,
    so no user text can reach the override grammar or an interpolation."""
    if value is None:
        return f"{key}=null"
    if isinstance(value, bool):
        return f"{key}={'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return f"{key}={value!r}"
    text = str(value)
    if not SAFE_NAME.match(text.replace(":", "")):
        raise InputError(f"{key}: {text!r} has characters the app does not pass on (use letters, digits, "
                         "and _ . + - / :)")
    return f"{key}='{text}'"


# ------------------------------------------------------------------------------------------ runner
class Runner:
    """Runs the app's requests (see the module docstring). Thread-safe: the page may call it from several
    worker threads at once (``concurrency``); every request has its own folder."""

    def __init__(self, settings: ServeSettings, root: Path | None = None):
        self.settings = settings
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="genodiff-serve-")) if root is None else Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._active: set[Path] = set()
        self._lock = threading.Lock()

    def close(self) -> None:
        """Remove the request folders (and the root folder when the runner made it)."""
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            for child in self.root.glob("req-*"):
                shutil.rmtree(child, ignore_errors=True)

    # -------------------------------------------------------------------------------- request folders
    def _new_request(self) -> _Request:
        self._prune()
        folder = Path(tempfile.mkdtemp(prefix="req-", dir=self.root))
        (folder / "in").mkdir()
        with self._lock:
            self._active.add(folder)
        return _Request(folder)

    def _prune(self) -> None:
        """Remove finished request folders older than ``results_ttl_minutes``."""
        cutoff = time.time() - self.settings.results_ttl_minutes * 60
        with self._lock:
            active = set(self._active)
        for child in self.root.glob("req-*"):
            try:
                if child not in active and child.stat().st_mtime < cutoff:
                    shutil.rmtree(child, ignore_errors=True)
            except FileNotFoundError:
                pass

    def _finish(self, request: _Request) -> None:
        with self._lock:
            self._active.discard(request.folder)
        os.utime(request.folder)  # the time-to-live counts from the end of the job

    # ------------------------------------------------------------------------------------- inputs
    def _check_size(self, size: int, what: str, shown: str) -> None:
        limit = self.settings.limits
        if size > limit.max_upload_bytes:
            raise InputError(f"{what}: {shown} is {size / 1e6:.1f} MB, over this server's upload limit of "
                             f"{limit.max_upload_mb:g} MB")

    @staticmethod
    def _target(request: _Request, name: str) -> Path:
        """``in/<name>``, or ``in/<n>_<name>`` when two inputs of one request share a name."""
        target, n = request.inputs / name, 1
        while target.exists():
            n += 1
            target = request.inputs / f"{n}_{name}"
        return target

    def _upload(self, request: _Request, source: str | os.PathLike, what: str, stem: str) -> Path:
        """Copy an uploaded file into ``in/`` (size checked) under a safe name keeping a ``.gz`` ending."""
        source = Path(source)
        shown = source.name
        if not source.is_file():
            raise InputError(f"{what}: {shown}: the upload is missing")
        self._check_size(source.stat().st_size, what, shown)
        safe = sanitize_id(shown).replace("|", "_")
        target = self._target(request, safe if SAFE_NAME.match(safe) and not safe.startswith(".") else stem)
        shutil.copyfile(source, target)
        request.shown[str(target)] = shown
        return target

    def _pasted(self, request: _Request, text: str, what: str, name: str, record: str) -> Path:
        """Write pasted text to ``in/<name>``: FASTA as is, a bare sequence as one record called ``record``."""
        data = text.encode("utf-8")
        self._check_size(len(data), what, "the pasted text")
        body = text.strip()
        if not body.startswith(">"):
            body = f">{record}\n" + "".join(body.split())
        target = self._target(request, name)
        target.write_text(body + "\n", encoding="utf-8")
        request.shown[str(target)] = "<pasted>"
        return target

    def _text_or_file(self, request: _Request, text: str | None, upload: str | None, what: str, name: str,
                      record: str) -> Path:
        has_text = bool(text and text.strip())
        if has_text and upload:
            raise InputError(f"{what}: paste a sequence or upload a file, not both")
        if upload:
            return self._upload(request, upload, what, name)
        if has_text:
            return self._pasted(request, text, what, name, record)
        raise InputError(f"{what}: paste a sequence or upload a FASTA file")

    def _fasta_source(self, request: _Request, upload: str | None, data_name: str | None, what: str) -> Path:
        """An uploaded FASTA, or one chosen from the data folder (exactly one of them)."""
        if upload and data_name:
            raise InputError(f"{what}: upload a FASTA or choose one from the data folder, not both")
        if upload:
            return self._upload(request, upload, what, "genome.fa")
        path = resolve_data_file(self.settings.data_dir, data_name, what)
        request.shown[str(path)] = str(data_name)
        return path

    # ---------------------------------------------------------------------------------------- run
    def _run(self, request: _Request, job: str, run: Callable[[Any], dict], values: dict[str, Any],
             model: bool = True) -> JobResult:
        values = dict(values)
        if model:
            values.update(checkpoint=self.settings.checkpoint, device=self.settings.device)
            if self.settings.num_threads is not None:
                values["num_threads"] = self.settings.num_threads
        out = request.folder / "out"
        overrides = [override(k, v) for k, v in values.items()] + [override("output_dir", str(out))]
        with _COMPOSE_LOCK:
            cfg = compose_config(job, overrides)
        summary = run(cfg)
        self._finish(request)
        files = sorted((p for p in out.iterdir() if p.is_file() and not p.name.startswith(".")),
                       key=lambda p: (next((i for i, s in enumerate(_ORDER) if p.name.endswith(s)), len(_ORDER)),
                                      p.name.count("."), p.name))
        return JobResult(files, summary, self._command(job, values, request), request.folder,
                         self._names(request))

    def _discard(self, request: _Request) -> None:
        with self._lock:
            self._active.discard(request.folder)
        shutil.rmtree(request.folder, ignore_errors=True)

    def _names(self, request: _Request) -> list[tuple[str, str]]:
        """(server path, shown name) pairs, longest first: the files the user gave, then the folders."""
        pairs = sorted(request.shown.items(), key=lambda kv: -len(kv[0]))
        pairs += [(str(request.inputs) + os.sep, ""), (str(request.folder) + os.sep, "")]
        if self.settings.data_dir is not None:
            pairs.append((str(self.settings.data_dir) + os.sep, ""))
        return pairs

    def _scrub(self, message: str, request: _Request) -> str:
        """Leave the request and data folders out of a message (users see the names they gave)."""
        for path, shown in self._names(request):
            message = message.replace(path, shown)
        return message

    def _command(self, job: str, values: dict[str, Any], request: _Request) -> str:
        words = [f"genodiff {job}"]
        for key, value in values.items():
            if value is None or (key == "device" and value == "auto"):
                continue  # the defaults (checkpoint=null: the bundled model)
            words.append(f"{key}={request.shown.get(str(value), value)}")
        return " ".join(words)

    # ---------------------------------------------------------------------------------------- tabs
    def _sampling(self, number, sampler, steps, seed, order=None) -> dict[str, Any]:
        limits = self.settings.limits
        sampler = str(sampler)
        if sampler not in SAMPLERS:
            raise InputError(f"sampler: '{sampler}' is not one of {', '.join(SAMPLERS)}")
        values = {"num_samples": as_int("number", number, 1, limits.max_count), "sampler": sampler,
                  "steps": as_int("steps", steps, 1, limits.max_steps), "seed": as_int("seed", seed, 0, 2**63 - 1)}
        if order is not None:  # None: the CLI's default (configs/sample.yaml)
            if str(order) not in ORDERS:
                raise InputError(f"order: '{order}' is not one of {', '.join(ORDERS)}")
            values["order"] = str(order)
        return values

    def generate(self, number: int, length: int, sampler: str = "cached", steps: int = DEFAULT_STEPS, seed: int = 0,
                 gc_target: float | None = None, gc_tolerance: float = 0.02, order: str | None = None) -> JobResult:
        """``genodiff sample num_samples=<number> length=<length> sampler= steps= seed= [order=] [gc.target=]``:
        FASTA (``samples.fa``, provenance in each header) and ``samples.json``."""
        values = self._sampling(number, sampler, steps, seed, order)
        values["length"] = as_int("length", length, 1, self.settings.limits.max_length)
        target = as_fraction("GC target", gc_target)
        if target is not None:
            values["gc.target"] = target
            tolerance = as_fraction("GC tolerance", gc_tolerance)
            values["gc.tolerance"] = 0.02 if tolerance is None else tolerance
        request = self._new_request()
        return self._guarded(request, lambda: self._run(request, "sample", sample_task.run, values))

    def design_classes(self) -> dict[str, list[str]]:
        """The classes the Design tab can aim at, per guidance kind: the served model's (class-conditional
        model: classifier-free guidance) and the served classifier's; a kind without classes is absent."""
        out = {}
        try:
            classes = label_classes(read_spec(resolve_export(self.settings.checkpoint)))
        except InputError:  # e.g. a Hugging Face folder: no genodiff spec, no classes
            classes = None
        if classes:
            out["classifier-free"] = classes
        if self.settings.classifier is not None:
            out["classifier"] = classifier_classes(self.settings.classifier, "classifier")
        return out

    def design(self, number: int, length: int, label: str, scale: float = 2.0, guidance: str = "classifier-free",
               sampler: str = "cached", steps: int = DEFAULT_STEPS, seed: int = 0,
               order: str | None = None) -> JobResult:
        """Guided design: ``genodiff sample condition.label=<label> guidance.scale=<scale>
        [guidance.classifier=<the server's classifier>]`` (docs/generate.md "Guided design"): FASTA whose headers
        record the label, the guidance kind and strength, and ``samples.json``."""
        values = self._sampling(number, sampler, steps, seed, order)
        values["length"] = as_int("length", length, 1, self.settings.limits.max_length)
        guidance = str(guidance)
        classes = self.design_classes()
        if guidance not in GUIDANCE_KINDS:
            raise InputError(f"guidance: '{guidance}' is not one of {', '.join(GUIDANCE_KINDS)}")
        if guidance not in classes:
            raise InputError("guidance: classifier guidance needs a classifier on this server (genodiff serve "
                             "classifier=<export>)" if guidance == "classifier" else
                             "guidance: the served model is unconditional; serve a class-conditional one "
                             "(genodiff finetune conditional_<task>) for classifier-free guidance")
        if str(label) not in classes[guidance]:
            raise InputError(f"class: '{label}' is not one of {', '.join(classes[guidance])}")
        try:
            strength = float(scale)
        except (TypeError, ValueError):
            raise InputError(f"guidance strength: not a number: {scale!r}") from None
        if not 0.0 <= strength <= MAX_GUIDANCE_SCALE:
            raise InputError(f"guidance strength: must be in [0, {MAX_GUIDANCE_SCALE:g}], got {strength:g}")
        values.update({"condition.label": str(label), "guidance.scale": strength})
        if guidance == "classifier":
            values["guidance.classifier"] = self.settings.classifier
        request = self._new_request()
        return self._guarded(request, lambda: self._run(request, "sample", sample_task.run, values))

    def infill(self, template_text: str | None = None, template_file: str | None = None, *,
               genome_file: str | None = None, genome_name: str | None = None, region: str | None = None,
               bed_file: str | None = None, flank: int = 512, number: int = 1, sampler: str = "cached",
               steps: int = DEFAULT_STEPS, seed: int = 0, order: str | None = None) -> JobResult:
        """Infilling with ``genodiff sample``: either a template (pasted or uploaded; its ``N`` / ``?`` are
        generated) or a genome FASTA (uploaded or from the data folder) with a region ``chrom:start-end``
        (0-based half-open) or a BED file; ``flank`` bp of genome context on each side. Writes ``samples.fa``,
        ``samples.infill.bed`` (generated runs, 0-based half-open), ``samples.infill.json`` and ``samples.json``."""
        values = self._sampling(number, sampler, steps, seed, order)
        limits = self.settings.limits
        request = self._new_request()

        def work() -> JobResult:
            has_template = bool((template_text and template_text.strip()) or template_file)
            has_genome = bool(genome_file or genome_name or (region and region.strip()) or bed_file)
            if has_template and has_genome:
                raise InputError("infill: give a template, or a genome FASTA with a region or BED file, not both")
            if has_template:
                path = self._text_or_file(request, template_text, template_file, "template", "template.fa",
                                          "template")
                records = read_fasta(path, what="template")
                for name, seq in records:
                    if len(seq) > limits.max_length:
                        raise InputError(f"template: record {name} is {len(seq)} bp, over this server's limit of "
                                         f"{limits.max_length} bp")
                self._check_count(len(records), values["num_samples"], "template records")
                values["conditioning.template"] = str(path)
            else:
                has_region = bool(region and region.strip())
                if has_region == bool(bed_file):
                    raise InputError("region: give a region chrom:start-end or upload a BED file (one of them)")
                flank_bp = as_int("flank", flank, 0, limits.max_length)
                genome = self._fasta_source(request, genome_file, genome_name, "genome")
                values["conditioning.fasta"] = str(genome)
                values["conditioning.flank"] = flank_bp
                if has_region:
                    chrom, start, end = parse_region(region.strip())
                    spans = [(f"{chrom}:{start}-{end}", end - start)]
                    values["conditioning.region"] = f"{chrom}:{start}-{end}"
                else:
                    bed = self._upload(request, bed_file, "BED", "regions.bed")
                    intervals = read_bed(bed, split_column=None)
                    spans = [(f"{iv.chrom}:{iv.start}-{iv.end}", iv.end - iv.start) for iv in intervals]
                    values["conditioning.bed"] = str(bed)
                for label, size in spans:
                    if size + 2 * flank_bp > limits.max_length:
                        raise InputError(f"region {label}: {size} bp + 2 x {flank_bp} bp flank is over this "
                                         f"server's limit of {limits.max_length} bp")
                self._check_count(len(spans), values["num_samples"], "regions")
            return self._run(request, "sample", sample_task.run, values)

        return self._guarded(request, work)

    def _check_count(self, templates: int, number: int, what: str) -> None:
        limit = self.settings.limits.max_count
        if templates * number > limit:
            raise InputError(f"number: {templates} {what} x {number} = {templates * number} sequences, over this "
                             f"server's limit of {limit}")

    def score(self, fasta_text: str | None = None, fasta_file: str | None = None, draws: int = 32,
              seed: int = 0) -> JobResult:
        """``genodiff score sequences``: per-sequence NELBO and bits per base (``scores.tsv``, ``scores.json``)."""
        limits = self.settings.limits
        values: dict[str, Any] = {"mode": "sequences", "num_samples": as_int("draws", draws, 2, limits.max_draws),
                                  "seed": as_int("seed", seed, 0, 2**63 - 1)}
        request = self._new_request()

        def work() -> JobResult:
            path = self._text_or_file(request, fasta_text, fasta_file, "sequences", "sequences.fa", "sequence")
            records = read_fasta(path, allowed=DNA_CHARS, what="sequences")
            if len(records) > limits.max_records:
                raise InputError(f"sequences: {len(records)} records, over this server's limit of {limits.max_records}")
            for name, seq in records:
                if len(seq) > limits.max_length:
                    raise InputError(f"sequences: record {name} is {len(seq)} bp, over this server's limit of "
                                     f"{limits.max_length} bp")
            values["input"] = str(path)
            return self._run(request, "score", score_task.run, values)

        return self._guarded(request, work)

    def variants(self, vcf_file: str | None, genome_name: str | None, window: int = 256, draws: int = 32,
                 seed: int = 0) -> JobResult:
        """``genodiff score variants``: alt-vs-ref log-likelihood ratios for an uploaded VCF (or TSV) against a
        genome FASTA of the data folder (``variants.tsv``, ``variants.errors.tsv``, ``variants.json``)."""
        limits = self.settings.limits
        values: dict[str, Any] = {"mode": "variants", "window": as_int("window", window, 1, limits.max_length),
                                  "num_samples": as_int("draws", draws, 2, limits.max_draws),
                                  "seed": as_int("seed", seed, 0, 2**63 - 1)}
        request = self._new_request()

        def work() -> JobResult:
            if not vcf_file:
                raise InputError("variants: upload a VCF (.vcf / .vcf.gz) or a TSV chrom pos ref alt")
            genome = self._fasta_source(request, None, genome_name, "genome")
            path = self._upload(request, vcf_file, "variants", "variants.vcf")
            records, _ = read_variants(path)
            if len(records) > limits.max_records:
                raise InputError(f"variants: {len(records)} alleles, over this server's limit of {limits.max_records}")
            values.update(input=str(path), genome=str(genome))
            return self._run(request, "score", score_task.run, values)

        return self._guarded(request, work)

    def analyze(self, samples_text: str | None = None, samples_file: str | None = None, *,
                reference_file: str | None = None, reference_name: str | None = None, kmax: int = 6) -> JobResult:
        """``genodiff analyze``: GC, k-mer spectra and JS divergence, repeats, duplicates of the samples against
        the reference (``report.md``, ``results.json`` and the PNG plots)."""
        values: dict[str, Any] = {"kmax": as_int("kmax", kmax, 1, 10)}
        request = self._new_request()

        def work() -> JobResult:
            samples = self._text_or_file(request, samples_text, samples_file, "samples", "samples.fa", "sample")
            reference = self._fasta_source(request, reference_file, reference_name, "reference")
            size = reference.stat().st_size
            limit = self.settings.limits
            if reference_name and size > limit.max_analyze_bytes:
                raise InputError(f"reference: {reference_name} is {size / 1e6:.1f} MB; the Analyze tab reads files "
                                 f"of at most {limit.max_analyze_mb:g} MB (limits.max_analyze_mb)")
            values.update(samples=str(samples), reference=str(reference))
            return self._run(request, "analyze", analyze_task.run, values, model=False)

        return self._guarded(request, work)

    def _guarded(self, request: _Request, work: Callable[[], JobResult]) -> JobResult:
        """Run ``work``; on any error the request folder goes, and InputError messages are scrubbed."""
        try:
            return work()
        except InputError as exc:
            self._discard(request)
            raise InputError(self._scrub(str(exc), request)) from None
        except NonFiniteError as exc:
            self._discard(request)
            raise NonFiniteError(self._scrub(str(exc), request)) from None
        except BaseException:
            self._discard(request)
            raise
