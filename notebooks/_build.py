"""Build the analysis notebooks (``notebooks/*.ipynb``) from their sources in ``notebooks/src/*.py``.

Sources use the "percent" cell format (as jupytext / VS Code / Spyder read it)::

    # %% [markdown]
    # # Title
    # %% tags=["parameters"]
    SMOKE = False

A ``# %%`` line starts a code cell, ``# %% [markdown]`` a markdown cell (its lines lose the leading ``# ``),
``tags=[...]`` sets the cell tags. A module docstring-free header line ``# figures: a.png, b.png`` lists the
PNG files the notebook writes to ``OUTPUT_DIR`` (checked by tests/notebooks).

The generated notebooks carry no outputs and no execution counts, so they diff cleanly in git.

    python notebooks/_build.py          # rewrite every notebook
    python notebooks/_build.py --check  # exit 1 if a committed notebook differs from its source
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
_CELL = re.compile(r"^# %%(?P<md> \[markdown\])?(?:\s+tags=(?P<tags>\[.*\]))?\s*$")


def parse_source(text: str) -> tuple[list, dict]:
    """(cells, metadata) of one percent-format source."""
    cells, meta = [], {}
    kind, tags, lines = None, [], []

    def flush():
        if kind is None:
            return
        while lines and not lines[-1].strip():
            lines.pop()
        body = "\n".join(lines)
        if kind == "markdown":
            body = "\n".join(re.sub(r"^# ?", "", line) for line in lines)
            cells.append(nbformat.v4.new_markdown_cell(body))
        else:
            cell = nbformat.v4.new_code_cell(body)
            if tags:
                cell.metadata["tags"] = list(tags)
            cells.append(cell)

    for line in text.splitlines():
        match = _CELL.match(line)
        if match:
            flush()
            kind = "markdown" if match.group("md") else "code"
            tags = json.loads(match.group("tags")) if match.group("tags") else []
            lines = []
            continue
        if kind is None:
            header = re.match(r"^# figures:\s*(.*)$", line)
            if header:
                meta["figures"] = [f.strip() for f in header.group(1).split(",") if f.strip()]
            continue
        lines.append(line)
    flush()
    for i, cell in enumerate(cells):  # stable ids: notebooks rebuild byte-identically
        cell["id"] = f"cell-{i:02d}"
    return cells, meta


def build_notebook(source: Path) -> nbformat.NotebookNode:
    cells, meta = parse_source(source.read_text(encoding="utf-8"))
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "genodiff": {"source": f"notebooks/src/{source.name}", "figures": meta.get("figures", [])},
    }
    nbformat.validate(nb)
    return nb


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def sources() -> list[Path]:
    return sorted(SRC.glob("[0-9][0-9]_*.py"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on a difference")
    args = parser.parse_args(argv)
    stale = []
    for source in sources():
        target = HERE / f"{source.stem}.ipynb"
        text = render(build_notebook(source))
        if target.is_file() and target.read_text(encoding="utf-8") == text:
            continue
        stale.append(target.name)
        if not args.check:
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target.relative_to(HERE.parent)}")
    if args.check and stale:
        print("stale notebooks (run python notebooks/_build.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
