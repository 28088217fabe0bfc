"""The ``genodiff`` command line: ``genodiff <job> [positional...] [hydra overrides...]``.

The CLI only picks a config and calls one task function (``genodiff.tasks.<job>.run(cfg)``).
Everything else is Hydra: ``key=value`` overrides, ``--cfg job`` to print the composed config,
``-m`` / ``--multirun`` for sweeps, and a per-run output folder holding the resolved config
(``.hydra/config.yaml``) for jobs that write results. The working directory is never changed.

Positional words after the job fill the job's positional keys, e.g. ``genodiff data prepare demo``
means ``genodiff data action=prepare dataset=demo``. Jobs with presets take the preset as their first
positional (``genodiff finetune hg38`` means ``experiment=hg38``).

Errors in user input (unknown config keys, bad files) are printed as one line
``genodiff: error: ...`` on stderr with exit status 2 and no traceback; so is a model that produces NaN or
infinite values (:class:`~genodiff.errors.NonFiniteError`: the sampler or estimator and its step are named).
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from importlib import resources

from genodiff import __version__
from genodiff.errors import InputError, NonFiniteError

CONFIG_PACKAGE = "genodiff.configs"
EXIT_USER_ERROR = 2


@dataclass(frozen=True)
class Job:
    """One CLI job: its primary config, task module and positional arguments."""

    name: str
    summary: str
    config_name: str
    task_module: str
    positionals: tuple[str, ...] = ()
    #: config group whose files are the job's presets (first positional), e.g. "experiment"
    preset_group: str | None = None
    usage: str = ""
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)


JOBS: dict[str, Job] = {}


def register(job: Job) -> None:
    JOBS[job.name] = job


register(Job("info", "print versions, devices, usable kernels and the data cache", "info", "genodiff.tasks.info"))
register(
    Job(
        "data",
        "download, verify or prepare (encode) a genome dataset; train a BPE tokenizer on text",
        "data",
        "genodiff.tasks.data",
        positionals=("action", "dataset"),
        usage="genodiff data {download,verify,prepare} <dataset|path.fa> | genodiff data tokenizer <files> [vocab_size=N out_dir=...]",
        choices={"action": ("download", "verify", "prepare", "tokenizer")},
    )
)
register(Job("finetune", "fine-tune a pretrained backbone with the MDLM objective (default: MDLM on genome windows)",
             "finetune", "genodiff.tasks.train", preset_group="experiment/finetune",
             usage="genodiff finetune [preset] [key=value ...]"))
register(Job("pretrain", "train a backbone from scratch with objective=mdlm|ar|sedd|d3pm|mlm", "pretrain",
             "genodiff.tasks.train", preset_group="experiment/pretrain",
             usage="genodiff pretrain [preset] [objective=mdlm|ar|sedd|d3pm|mlm] [key=value ...]"))
register(Job("evaluate", "held-out NELBO, bits per base (or token) and perplexity bound of exported models; "
             "DNA next to Markov baselines, text with the generative perplexity of samples",
             "evaluate", "genodiff.tasks.evaluate",
             usage="genodiff evaluate checkpoints=[run_or_export,...] [data=demo|hg38|local|text_*] [split=test] "
                   "[samples=<samples.jsonl> eval_model=<AR export>]"))
register(Job("sample", "generate DNA (FASTA) or text from a trained model; prefix/suffix/infilling conditioning",
             "sample", "genodiff.tasks.sample", positionals=("kind",),
             usage="genodiff sample [dna|text] [checkpoint=<run_or_export>] [num_samples=N length=L sampler=...] "
                   "(dna without checkpoint: the bundled model)",
             choices={"kind": ("dna", "text")}))
register(Job("score", "per-sequence NELBO / bits per base of a FASTA, or variant effect scores from a VCF/TSV",
             "score", "genodiff.tasks.score", positionals=("mode",),
             usage="genodiff score [sequences|variants] [checkpoint=<run_or_export>] input=<fasta|vcf|tsv> ... "
                   "(no checkpoint: the bundled model)",
             choices={"mode": ("sequences", "variants")}))
register(Job("models", "list the pretrained model(s) bundled with genodiff and local exports; print a model card",
             "models", "genodiff.tasks.models", positionals=("action", "target"),
             usage="genodiff models [search=<folder>] | genodiff models show <name|path>",
             choices={"action": ("list", "show")}))
register(Job("analyze", "GC, k-mer spectra and JS divergence, repeats and duplicates of generated vs reference FASTA",
             "analyze", "genodiff.tasks.analyze",
             usage="genodiff analyze samples=<fasta> reference=<fasta> [markov=<fasta>] [ar=<fasta>]"))
register(Job("serve", "a local web app (Gradio; pip install 'genodiff[app]'): generate, infill, score, variant "
             "effects and analysis in the browser, each request running the same task as this CLI",
             "serve", "genodiff.app.serve",
             usage="genodiff serve [checkpoint=<run_or_export>] [data_dir=<folder>] [host=127.0.0.1 port=7860] "
                   "[limits.max_length=N ...]"))
register(Job("benchmark", "genomic classification benchmark (5-fold CV or official split) with baselines and reports",
             "benchmark", "genodiff.tasks.benchmark", positionals=("task",),
             usage="genodiff benchmark <task|path|suite> [model=...] [key=value ...]"))


def _error(message: str) -> int:
    print(f"genodiff: error: {' '.join(str(message).split())}", file=sys.stderr)
    return EXIT_USER_ERROR


def list_presets(group: str) -> list[str]:
    """Names of the YAML files in config group ``group`` (a folder of ``configs/``)."""
    folder = resources.files(CONFIG_PACKAGE).joinpath(group)
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def help_text() -> str:
    lines = [
        f"genodiff {__version__}: masked diffusion language models for DNA and text",
        "",
        "usage: genodiff <job> [positional ...] [key=value ...] [--cfg job] [-m]",
        "",
        "jobs:",
    ]
    width = max(len(n) for n in JOBS)
    for job in JOBS.values():
        lines.append(f"  {job.name:<{width}}  {job.summary}")
        if job.usage:
            lines.append(f"  {'':<{width}}  usage: {job.usage}")
        if job.preset_group:
            presets = ", ".join(list_presets(job.preset_group)) or "(none)"
            lines.append(f"  {'':<{width}}  presets: {presets}")
    lines += [
        "",
        "Hydra options: key=value overrides, --cfg job (print config), -m/--multirun (sweeps a=1,2),",
        "--help after a job shows its config. Bad input: one-line error, exit status 2.",
    ]
    return "\n".join(lines)


def split_arguments(job: Job, args: list[str]) -> tuple[list[str], list[str]]:
    """Split ``args`` into positional overrides (``key=value``) and the remaining Hydra arguments.

    Positionals are the leading words that contain no ``=`` and do not start with ``-``.
    """
    positional_overrides: list[str] = []
    rest = list(args)
    keys = list(job.positionals)
    if job.preset_group:
        keys.insert(0, job.preset_group)
    while keys and rest and "=" not in rest[0] and not rest[0].startswith("-"):
        key, value = keys.pop(0), rest.pop(0)
        allowed = job.choices.get(key)
        if allowed and value not in allowed:
            raise InputError(f"{job.name}: unknown {key} '{value}' (choose from {', '.join(allowed)})")
        if key == job.preset_group and value not in list_presets(key):
            known = ", ".join(list_presets(key))
            raise InputError(f"{job.name}: unknown preset '{value}' (known presets: {known})")
        positional_overrides.append(f"{key}={value}")
    extra = [a for a in rest if "=" not in a and not a.startswith("-")]
    if extra and not _is_flag_value(rest, extra[0]):
        raise InputError(f"{job.name}: unexpected argument '{extra[0]}' (usage: {job.usage or 'genodiff ' + job.name + ' [key=value ...]'})")
    return positional_overrides, rest


def _is_flag_value(args: list[str], word: str) -> bool:
    """True when ``word`` is the value of a Hydra flag such as ``--cfg job`` or ``--package x``."""
    index = args.index(word)
    return index > 0 and args[index - 1] in {"--cfg", "-c", "--package", "-p", "--info", "-i", "--config-name", "-cn", "--config-dir", "-cd", "--config-path", "-cp", "--experimental-rerun"}


def validate_overrides(job: Job, overrides: list[str]) -> None:
    """Compose the job's config once so that unknown keys or bad values fail as one clean line.

    Sweep overrides (``a=1,2`` under ``-m``) are checked with their first value.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from genodiff.config import compose_config

    parser = OverridesParser.create()
    checked: list[str] = []
    try:
        parsed = parser.parse_overrides(overrides)
    except Exception as exc:  # hydra's OverrideParseException
        raise InputError(f"bad override: {_first_line(exc)}") from None
    for override, text in zip(parsed, overrides):
        if override.is_sweep_override():
            first = next(iter(override.sweep_string_iterator()))
            checked.append(f"{override.get_key_element()}={first}")
        else:
            checked.append(text)
    try:
        compose_config(job.config_name, checked)
    except Exception as exc:  # ConfigCompositionException, MissingConfigException, ...
        raise InputError(f"config '{job.config_name}': {_config_error_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _config_error_line(exc: BaseException) -> str:
    """Condense Hydra/OmegaConf composition errors into one line naming the key."""
    cause = exc.__cause__ or exc
    text = str(cause).strip() or str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    key = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("full_key:")), None)
    head = lines[0] if lines else type(exc).__name__
    if "is not in struct" in head and key:
        return f"unknown key '{key}' (to add a new key use +{key}=...)"
    if key and key not in head:
        head = f"{head} (key '{key}')"
    outer = _first_line(exc)
    if outer != head and outer.startswith("Could not override"):
        head = f"{outer} {head}"
    return head


def _task_runner(job: Job):
    module = importlib.import_module(job.task_module)
    from genodiff.ops.allocator import keep_freed_memory  # noqa: PLC0415 - genodiff.ops loads torch: not for --help

    def run(cfg):
        keep_freed_memory()  # reuse freed activation memory: no page faults on every forward (perf/README.md)
        try:
            return module.run(cfg)
        except (InputError, NonFiniteError) as exc:
            sys.exit(_error(str(exc)))
        except KeyboardInterrupt:
            print("genodiff: interrupted", file=sys.stderr)
            sys.exit(130)

    return run


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``genodiff`` console script. Returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(help_text())
        return 0
    if args[0] in {"-V", "--version"}:
        print(f"genodiff {__version__}")
        return 0
    name, rest = args[0], args[1:]
    job = JOBS.get(name)
    if job is None:
        return _error(f"unknown job '{name}' (jobs: {', '.join(JOBS)}; see genodiff --help)")
    try:
        positional_overrides, rest = split_arguments(job, rest)
        hydra_flags = [a for a in rest if a.startswith("-") or _is_flag_value(rest, a)]
        overrides = positional_overrides + [a for a in rest if a not in hydra_flags]
        if not any(flag in {"--help", "-h", "--hydra-help"} for flag in hydra_flags):
            validate_overrides(job, overrides)
    except InputError as exc:
        return _error(str(exc))
    return _run_hydra(job, positional_overrides + rest)


def _run_hydra(job: Job, hydra_args: list[str]) -> int:
    import hydra

    entry = hydra.main(version_base="1.3", config_path=f"pkg://{CONFIG_PACKAGE}", config_name=job.config_name)(
        _task_runner(job)
    )
    saved_argv = sys.argv
    sys.argv = [f"genodiff-{job.name}", *hydra_args]
    try:
        entry()
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        sys.argv = saved_argv
    return 0


if __name__ == "__main__":
    sys.exit(main())
