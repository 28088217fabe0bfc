"""Bundle a trained export as a package model: ``genodiff/resources/models/<name>/`` with its model card.

    python perf/bundle_model.py <run folder | export folder> [--name caduceus-ps-tiny-hg38chr2]
        [--config <run's .hydra/config.yaml>] [--evaluate <genodiff evaluate results.json>]
        [--command "genodiff pretrain ..."] [--fact "label: value" ...] [--data-note <file>] [--max-mb 5]
        [--dest <folder>]

Copies ``model.safetensors`` + ``genodiff.json``, checks that the copy loads with
``genodiff.interop.export.load_model`` and keeps its weights digest, and writes ``MODEL_CARD.md`` from facts
only (:func:`genodiff.tasks.models.bundle_export`): the export's spec, the run's Hydra config and overrides
(``--config`` when the run used ``output_dir=``: Hydra then keeps them in ``outputs/<job>/<time>/.hydra/``),
the run's ``summary.json``, the data splits recomputed from the FASTA, and the ``genodiff evaluate`` results
of these very weights on held-out data (``--evaluate``; without it the card says "not measured"). ``--fact``
adds a line the maintainer measured elsewhere (e.g. the machine), listed as such. Nothing is installed unless
every check passes. Prints the installed folder and its listing as JSON. Bad input: one
``genodiff: error: ...`` line, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from genodiff.errors import InputError
from genodiff.interop.export import DEFAULT_MODEL
from genodiff.tasks.models import bundle_export, export_facts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="training run folder (with export/) or export folder")
    parser.add_argument("--name", default=DEFAULT_MODEL, help=f"bundled model name (default {DEFAULT_MODEL})")
    parser.add_argument("--config", help="the run's .hydra/config.yaml (default: <run>/.hydra/config.yaml)")
    parser.add_argument("--evaluate", help="results.json of `genodiff evaluate` that evaluated these weights")
    parser.add_argument("--command", help="training command for the card (default: from the run's overrides.yaml)")
    parser.add_argument("--fact", action="append", default=[], help="'label: value' measured elsewhere (repeatable)")
    parser.add_argument("--data-note", help="file with the data and licence paragraph (for data genodiff "
                                            "does not know)")
    parser.add_argument("--max-mb", type=float, default=5.0, help="largest weights file accepted (MB)")
    parser.add_argument("--dest", help="folder of bundled models (default: the package's resources/models/)")
    args = parser.parse_args(argv)
    try:
        note = Path(args.data_note).read_text(encoding="utf-8").strip() if args.data_note else None
        folder = bundle_export(args.source, args.name, dest_root=args.dest, config=args.config,
                               evaluate=args.evaluate, command=args.command, data_note=note, facts=args.fact,
                               max_mb=args.max_mb)
    except (InputError, OSError) as exc:
        print(f"genodiff: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(json.dumps(export_facts(folder, "bundled", folder.name), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
