"""``genodiff serve``: start the web app on the configured model and wait until Ctrl-C.

Keys (``configs/serve.yaml``): ``checkpoint`` (null: the bundled model), ``classifier`` (a noise-aware
classifier export for the Design tab), ``data_dir`` (the folder the page may
offer genome / reference FASTA files from), ``host`` (default ``127.0.0.1``: this machine only) and ``port``,
``concurrency`` and ``max_queue``, ``device``, ``num_threads``, ``results_ttl_minutes`` and ``limits.*``
(:class:`~genodiff.app.settings.Limits`). The model is loaded (and the classifier's export checked) once at start
so that a bad checkpoint is one error line before anything listens; every request then runs its task (which
loads the model itself, exactly as the command line does).

This is the one job whose ``run(cfg)`` lives outside ``genodiff.tasks``: the app drives the tasks, so it sits
above them (docs/design.md).
"""

from __future__ import annotations

from typing import Any

from genodiff.app.jobs import Runner
from genodiff.app.settings import serve_settings
from genodiff.app.ui import build_app, gradio, launch
from genodiff.config import to_plain
from genodiff.generate.design import classifier_classes
from genodiff.interop.export import load_model


def describe_model(model) -> str:
    """One line naming the served model for the page header."""
    return f"Model: `{model.name}` (weights {model.digest})."


def run(cfg) -> dict[str, Any]:
    settings = serve_settings(to_plain(cfg))
    gradio()  # one clear line when the extra is missing, before the model loads
    model = load_model(settings.checkpoint, settings.device)
    line = describe_model(model)
    del model
    if settings.classifier is not None:
        classifier_classes(settings.classifier, "classifier")
    runner = Runner(settings)
    try:
        demo = build_app(runner, line)
        print(f"genodiff serve: {line} Ctrl-C stops the server.")
        url = launch(demo, settings, block=True)
    finally:
        runner.close()
    return {"url": url}
