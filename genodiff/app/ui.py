"""The page of ``genodiff serve``: Gradio Blocks, one tab per job, the work done by :class:`~genodiff.app.jobs.Runner`.

Tabs: Generate, Design, Infill, Score sequences, Variant effects, Analyze (:data:`TABS`). Each tab's button is
also an API endpoint (``api_name``: ``generate``, ``design``, ``infill``, ``score``, ``variants``, ``analyze``;
``gradio_client`` can call them; ``design`` exists when the server can design: a class-conditional model or a
classifier). Results come back as the task's own files (FASTA / TSV / BED / JSON / PNG, downloadable) plus a
preview and the equivalent command line. Long jobs show the task's progress bar in the page (Gradio tracks the
tasks' tqdm bars). Bad input is one message in the page (``gr.Error``), never a traceback; anything unexpected
is "internal error" in the page and a traceback in the server log. Requests queue: at most ``concurrency`` jobs
run at once, at most ``max_queue`` wait.

Adding a tab: write ``def my_tab(ctx: TabContext) -> None`` that lays out its
components and wires its button to a new :class:`~genodiff.app.jobs.Runner` method (which runs the task), then
append ``Tab("my_tab", "My tab", my_tab)`` to :data:`TABS`.

Gradio is optional (``pip install 'genodiff[app]'``) and imported only when a page is built (:func:`gradio`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from genodiff.app.datafiles import list_fasta
from genodiff.app.jobs import DEFAULT_ORDER, DEFAULT_STEPS, ORDERS, SAMPLERS, JobResult, Runner
from genodiff.errors import InputError, NonFiniteError

LOG = logging.getLogger("genodiff.app")
#: characters of FASTA / report shown in the page (the files hold everything)
PREVIEW_CHARS = 100_000
#: a system font stack: the page loads nothing from other sites
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]
MONO_FONTS = ["ui-monospace", "monospace"]
#: height of the upload boxes (pixels)
UPLOAD_HEIGHT = 120


def gradio():
    """The ``gradio`` module, or one InputError line saying how to install it."""
    try:
        import gradio as gr
    except ImportError:
        raise InputError("serve: the web app needs gradio; install it with pip install 'genodiff[app]'") from None
    return gr


@dataclass
class TabContext:
    """What a tab builder gets: the gradio module, the runner and the data-folder FASTA names."""

    gr: Any
    runner: Runner
    fasta_choices: list[str]

    @property
    def progress(self):
        """The default of an event function's ``progress`` argument: the page shows the task's tqdm bars."""
        return self.gr.Progress(track_tqdm=True)

    def call(self, work: Callable[[], Any]) -> Any:
        """Run ``work`` for an event: bad input -> one ``gr.Error`` message; anything else -> "internal error"
        in the page and the traceback in the server log."""
        try:
            return work()
        except (InputError, NonFiniteError) as exc:
            raise self.gr.Error(str(exc), title="genodiff: error", print_exception=False) from None
        except self.gr.Error:
            raise
        except Exception:
            LOG.exception("genodiff serve: request failed")
            raise self.gr.Error("internal error: the job failed (the server log has the details)",
                                title="genodiff: error", print_exception=False) from None

    def data_dropdown(self, label: str, elem_id: str):
        gr = self.gr
        info = ("a FASTA of the server's data folder" if self.fasta_choices
                else "no data folder on this server (genodiff serve data_dir=<folder>)")
        return gr.Dropdown(choices=self.fasta_choices, value=None, label=label, info=info, elem_id=elem_id,
                           allow_custom_value=False)

    def sampling_inputs(self, prefix: str, number: int, length: int | None = None):
        """Number, [length,] sampler, order, steps and seed inputs (shared by Generate, Design and Infill) -> the
        components (length: None when not asked for)."""
        gr = self.gr
        limits = self.runner.settings.limits
        with gr.Row():
            count = gr.Number(min(number, limits.max_count), label="Number", precision=0, minimum=1,
                              maximum=limits.max_count, elem_id=f"{prefix}-number")
            if length is not None:
                length = gr.Number(min(length, limits.max_length), label="Length (bp)", precision=0, minimum=1,
                                   maximum=limits.max_length, elem_id=f"{prefix}-length")
            sampler = gr.Dropdown(list(SAMPLERS), value="cached", label="Sampler", elem_id=f"{prefix}-sampler")
            order = gr.Dropdown(list(ORDERS), value=DEFAULT_ORDER, label="Order", elem_id=f"{prefix}-order",
                                info="which bases a step reveals (cached / ancestral)")
            steps = gr.Number(min(DEFAULT_STEPS, limits.max_steps), label="Steps", precision=0, minimum=1,
                              maximum=limits.max_steps, elem_id=f"{prefix}-steps",
                              info="reverse steps (first_hitting: one per generated base)")
            seed = gr.Number(0, label="Seed", precision=0, minimum=0, elem_id=f"{prefix}-seed")
        return count, length, sampler, order, steps, seed


@dataclass(frozen=True)
class Tab:
    key: str
    label: str
    build: Callable[[TabContext], None]


# ------------------------------------------------------------------------------------------ outputs
def _paths(result: JobResult) -> list[str]:
    return [str(p) for p in result.files]


def _fasta_preview(result: JobResult) -> str:
    path = result.file(".fa")
    text = path.read_text() if path else ""
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "\n... (download the FASTA for the rest)"


def _command(result: JobResult) -> str:
    return f"Same as the command line:\n\n```\n{result.command}\n```"


def _short(value: Any) -> Any:
    """Floats to 4 significant digits for the page (the files keep every digit)."""
    return float(f"{value:.4g}") if isinstance(value, float) else value


def _table(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame([{c: _short(row.get(c, "")) for c in columns} for row in rows], columns=columns)


# --------------------------------------------------------------------------------------------- tabs
def generate_tab(ctx: TabContext) -> None:
    gr, runner = ctx.gr, ctx.runner
    gr.Markdown("Unconditional generation with `genodiff sample`: FASTA with provenance in every header, "
                "and a JSON sidecar. The same values and seed give the same bytes as the command line.")
    number, length, sampler, order, steps, seed = ctx.sampling_inputs("generate", 4, 512)
    with gr.Row():
        # a Textbox: an emptied gr.Number comes back as 0, and "no target" must stay distinct from GC = 0
        gc_target = gr.Textbox("", label="GC target (fraction; empty: none)", elem_id="generate-gc",
                               info="rejection sampling of whole sequences", placeholder="e.g. 0.41")
        gc_tolerance = gr.Number(0.02, label="GC tolerance", minimum=0, maximum=1, elem_id="generate-gc-tolerance",
                                 info="accept |GC - target| <= tolerance")
    run = gr.Button("Generate", variant="primary", elem_id="generate-run")
    summary = gr.Markdown(elem_id="generate-summary")
    files = gr.File(label="Results", file_count="multiple", interactive=False, elem_id="generate-files")
    preview = gr.Textbox(label="FASTA", lines=8, max_lines=20, interactive=False, buttons=["copy"],
                         elem_id="generate-fasta")

    def handle(number, length, sampler, order, steps, seed, gc_target, gc_tolerance,
               progress=ctx.progress):
        result = ctx.call(lambda: runner.generate(number, length, sampler, steps, seed, gc_target, gc_tolerance,
                                                  order))
        return _command(result), _paths(result), _fasta_preview(result)

    run.click(handle, [number, length, sampler, order, steps, seed, gc_target, gc_tolerance], [summary, files, preview],
              api_name="generate")


def infill_tab(ctx: TabContext) -> None:
    gr, runner = ctx.gr, ctx.runner
    gr.Markdown("Infilling with `genodiff sample`: known bases are kept, `N` and `?` are generated. Give either a "
                "template, or a genome FASTA with a region (0-based half-open `chrom:start-end`) or a BED file.")
    with gr.Row():
        with gr.Column():
            gr.Markdown("**Template**")
            template_text = gr.Textbox(label="Sequence with N / ? gaps (or FASTA)", lines=4,
                                       placeholder="ACGTACGTNNNNNNNNACGTACGT", elem_id="infill-template")
            template_file = gr.File(label="or upload a FASTA", height=UPLOAD_HEIGHT, elem_id="infill-template-file")
        with gr.Column():
            gr.Markdown("**Genome region**")
            genome_name = ctx.data_dropdown("Genome FASTA (data folder)", "infill-genome")
            genome_file = gr.File(label="or upload a genome FASTA", height=UPLOAD_HEIGHT, elem_id="infill-genome-file")
            region = gr.Textbox(label="Region chrom:start-end (0-based half-open)", elem_id="infill-region")
            bed_file = gr.File(label="or upload a BED file", height=UPLOAD_HEIGHT, elem_id="infill-bed")
            flank = gr.Number(min(512, runner.settings.limits.max_length), label="Flank (bp of context per side)",
                              precision=0, minimum=0, elem_id="infill-flank")
    number, _, sampler, order, steps, seed = ctx.sampling_inputs("infill", 1)
    run = gr.Button("Infill", variant="primary", elem_id="infill-run")
    summary = gr.Markdown(elem_id="infill-summary")
    files = gr.File(label="Results", file_count="multiple", interactive=False, elem_id="infill-files")
    preview = gr.Textbox(label="FASTA", lines=8, max_lines=20, interactive=False, buttons=["copy"],
                         elem_id="infill-fasta")

    def handle(template_text, template_file, genome_name, genome_file, region, bed_file, flank, number, sampler,
               order, steps, seed, progress=ctx.progress):
        result = ctx.call(lambda: runner.infill(template_text, template_file, genome_file=genome_file,
                                                genome_name=genome_name, region=region, bed_file=bed_file,
                                                flank=flank, number=number, sampler=sampler, steps=steps, seed=seed,
                                                order=order))
        return _command(result), _paths(result), _fasta_preview(result)

    run.click(handle, [template_text, template_file, genome_name, genome_file, region, bed_file, flank, number,
                       sampler, order, steps, seed], [summary, files, preview], api_name="infill")


def score_tab(ctx: TabContext) -> None:
    gr, runner = ctx.gr, ctx.runner
    limits = runner.settings.limits
    gr.Markdown("Per-sequence NELBO (an upper bound on -log p, nats) and bits per base with standard errors, "
                "from `genodiff score sequences`. Only A/C/G/T are scored; N is context.")
    with gr.Row():
        text = gr.Textbox(label="Sequences (FASTA or one sequence)", lines=6, elem_id="score-text")
        upload = gr.File(label="or upload a FASTA", height=UPLOAD_HEIGHT, elem_id="score-file")
    with gr.Row():
        draws = gr.Number(min(32, limits.max_draws), label="Draws per sequence", precision=0, minimum=2,
                          maximum=limits.max_draws, elem_id="score-draws")
        seed = gr.Number(0, label="Seed", precision=0, minimum=0, elem_id="score-seed")
    run = gr.Button("Score", variant="primary", elem_id="score-run")
    summary = gr.Markdown(elem_id="score-summary")
    table = gr.Dataframe(label="Scores", interactive=False, elem_id="score-table")
    files = gr.File(label="Results", file_count="multiple", interactive=False, elem_id="score-files")

    def handle(text, upload, draws, seed, progress=ctx.progress):
        result = ctx.call(lambda: runner.score(text, upload, draws, seed))
        s = result.summary
        head = (f"{s['records']} sequences: {s['bits_per_base']:.4f} ± {s['bits_per_base_stderr']:.4f} bits/base "
                f"({s['scored_bases']} bases)\n\n")
        columns = ["id", "length", "scored_bases", "nelbo_nats", "nelbo_stderr", "bits_per_base",
                   "bits_per_base_stderr"]
        return head + _command(result), _table(s["rows"], columns), _paths(result)

    run.click(handle, [text, upload, draws, seed], [summary, table, files], api_name="score")


def variants_tab(ctx: TabContext) -> None:
    gr, runner = ctx.gr, ctx.runner
    limits = runner.settings.limits
    gr.Markdown("Variant effects from `genodiff score variants`: llr = NELBO(ref) - NELBO(alt) in nats (> 0: the "
                "model favours ALT) in a window around each variant, the same random draws for both alleles. "
                "VCF POS is 1-based; records that cannot be scored are listed with their error.")
    with gr.Row():
        upload = gr.File(label="VCF (.vcf / .vcf.gz) or TSV chrom pos ref alt", height=UPLOAD_HEIGHT,
                         elem_id="variants-file")
        genome = ctx.data_dropdown("Genome FASTA (data folder)", "variants-genome")
    with gr.Row():
        window = gr.Number(min(256, limits.max_length), label="Window (bp)", precision=0, minimum=1,
                           maximum=limits.max_length, elem_id="variants-window")
        draws = gr.Number(min(32, limits.max_draws), label="Draws per variant", precision=0, minimum=2,
                          maximum=limits.max_draws, elem_id="variants-draws")
        seed = gr.Number(0, label="Seed", precision=0, minimum=0, elem_id="variants-seed")
    run = gr.Button("Score variants", variant="primary", elem_id="variants-run")
    summary = gr.Markdown(elem_id="variants-summary")
    table = gr.Dataframe(label="Variants", interactive=False, elem_id="variants-table")
    files = gr.File(label="Results", file_count="multiple", interactive=False, elem_id="variants-files")

    def handle(upload, genome, window, draws, seed, progress=ctx.progress):
        result = ctx.call(lambda: runner.variants(upload, genome, window, draws, seed))
        s = result.summary
        rows = s["rows"]
        columns = [c for c in ("chrom", "pos", "id", "ref", "alt", "llr", "llr_stderr", "z", "error")
                   if any(c in r for r in rows)]
        head = f"scored {s['scored']} of {s['records']} alleles ({s['errors']} errors)\n\n"
        return head + _command(result), _table(rows, columns), _paths(result)

    run.click(handle, [upload, genome, window, draws, seed], [summary, table, files], api_name="variants")


def analyze_tab(ctx: TabContext) -> None:
    gr, runner = ctx.gr, ctx.runner
    gr.Markdown("Generated vs reference sequences with `genodiff analyze`: GC, k-mer spectra and Jensen-Shannon "
                "divergence, homopolymers and tandem repeats, duplicates; the report's plots.")
    with gr.Row():
        with gr.Column():
            samples_text = gr.Textbox(label="Samples (FASTA)", lines=4, elem_id="analyze-samples")
            samples_file = gr.File(label="or upload the samples FASTA", height=UPLOAD_HEIGHT,
                                   elem_id="analyze-samples-file")
        with gr.Column():
            reference_name = ctx.data_dropdown("Reference FASTA (data folder)", "analyze-reference")
            reference_file = gr.File(label="or upload a reference FASTA", height=UPLOAD_HEIGHT,
                                     elem_id="analyze-reference-file")
            kmax = gr.Number(6, label="k-mer spectra up to k", precision=0, minimum=1, maximum=10,
                             elem_id="analyze-kmax")
    run = gr.Button("Analyze", variant="primary", elem_id="analyze-run")
    report = gr.Markdown(elem_id="analyze-report")
    plots = gr.Gallery(label="Plots", columns=2, object_fit="contain", height="auto", elem_id="analyze-plots")
    files = gr.File(label="Results", file_count="multiple", interactive=False, elem_id="analyze-files")

    def handle(samples_text, samples_file, reference_name, reference_file, kmax, progress=ctx.progress):
        result = ctx.call(lambda: runner.analyze(samples_text, samples_file, reference_file=reference_file,
                                                 reference_name=reference_name, kmax=kmax))
        text = result.redact(result.file("report.md").read_text())
        text = "\n".join(line for line in text.splitlines() if not line.startswith("!["))  # plots: the gallery
        pngs = [str(p) for p in result.files if p.suffix == ".png"]
        return text + "\n\n" + _command(result), pngs, _paths(result)

    run.click(handle, [samples_text, samples_file, reference_name, reference_file, kmax], [report, plots, files],
              api_name="analyze")


def design_tab(ctx: TabContext) -> None:
    gr, runner = ctx.gr, ctx.runner
    classes = runner.design_classes()
    if not classes:
        gr.Markdown("Design sequences of a class (a promoter, an enhancer...) with guided generation. This server's "
                    "model is unconditional and it has no classifier: start it with a class-conditional model "
                    "(`genodiff finetune conditional_<task>`) and/or a noise-aware classifier "
                    "(`genodiff serve checkpoint=<conditional run> classifier=<classifier run>`; docs/generate.md, "
                    "\"Guided design\").", elem_id="design-unavailable")
        return
    gr.Markdown("Guided design with `genodiff sample condition.label=... guidance.scale=...`: a larger strength "
                "pushes harder toward the class (not exact sampling from the class; 0 = the conditional model). "
                "Every FASTA header records the class, the guidance and its strength.")
    kinds = list(classes)
    with gr.Row():
        guidance = gr.Dropdown(kinds, value=kinds[0], label="Guidance", elem_id="design-guidance",
                               info="classifier-free: the class-conditional model; classifier: the server's classifier")
        label = gr.Dropdown(classes[kinds[0]], value=classes[kinds[0]][-1], label="Class", elem_id="design-class")
        scale = gr.Number(2.0, label="Strength w", minimum=0, maximum=20, elem_id="design-scale")
    number, length, sampler, order, steps, seed = ctx.sampling_inputs("design", 4, 512)
    run = gr.Button("Design", variant="primary", elem_id="design-run")
    summary = gr.Markdown(elem_id="design-summary")
    files = gr.File(label="Results", file_count="multiple", interactive=False, elem_id="design-files")
    preview = gr.Textbox(label="FASTA", lines=8, max_lines=20, interactive=False, buttons=["copy"],
                         elem_id="design-fasta")

    def classes_of(kind):
        names = classes.get(kind, [])
        return gr.Dropdown(choices=names, value=names[-1] if names else None)

    def handle(number, length, label, scale, guidance, sampler, order, steps, seed, progress=ctx.progress):
        result = ctx.call(lambda: runner.design(number, length, label, scale, guidance, sampler, steps, seed, order))
        return _command(result), _paths(result), _fasta_preview(result)

    guidance.change(classes_of, [guidance], [label], api_name=False)
    run.click(handle, [number, length, label, scale, guidance, sampler, order, steps, seed], [summary, files, preview],
              api_name="design")


#: the page's tabs, in order (append a Tab to add one; see the module docstring)
TABS: list[Tab] = [
    Tab("generate", "Generate", generate_tab),
    Tab("design", "Design", design_tab),
    Tab("infill", "Infill", infill_tab),
    Tab("score", "Score sequences", score_tab),
    Tab("variants", "Variant effects", variants_tab),
    Tab("analyze", "Analyze", analyze_tab),
]


# ------------------------------------------------------------------------------------------- app
def build_app(runner: Runner, model_line: str = ""):
    """The page (a ``gr.Blocks``, queue configured) for ``runner``; ``model_line`` is shown under the title."""
    gr = gradio()
    settings = runner.settings
    limits = settings.limits
    ctx = TabContext(gr, runner, list_fasta(settings.data_dir))
    ttl = int(settings.results_ttl_minutes * 60)
    with gr.Blocks(title="genodiff", analytics_enabled=False, delete_cache=(max(ttl // 2, 60), ttl)) as demo:
        gr.Markdown(f"# genodiff\n{model_line}\n\nLimits of this server: at most {limits.max_count} sequences of "
                    f"{limits.max_length} bp per request, {limits.max_steps} steps, uploads of "
                    f"{limits.max_upload_mb:g} MB. Coordinates are 0-based half-open (BED); VCF POS is 1-based.",
                    elem_id="header")
        with gr.Tabs():
            for tab in TABS:
                with gr.Tab(tab.label, id=tab.key, elem_id=f"tab-{tab.key}"):
                    tab.build(ctx)
    demo.queue(default_concurrency_limit=settings.concurrency, max_size=settings.max_queue)
    return demo


def launch(demo, settings, block: bool = True, quiet: bool = False) -> str:
    """Start the server on ``settings.host:settings.port`` (Gradio's upload limit = ``max_upload_mb``); with
    ``block`` wait until Ctrl-C. Returns the local URL."""
    gr = gradio()
    theme = gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS)
    try:
        demo.launch(server_name=settings.host, server_port=settings.port, share=False, ssr_mode=False, pwa=False,
                    prevent_thread_lock=not block, quiet=quiet, show_error=False, run_history=False,
                    enable_monitoring=False, mcp_server=False, footer_links=["api"],
                    max_file_size=settings.limits.max_upload_bytes, theme=theme)
    except OSError as exc:
        raise InputError(f"port: cannot listen on {settings.host}:{settings.port} ({exc})") from None
    return str(getattr(demo, "local_url", "") or f"http://{settings.host}:{settings.port}/")

