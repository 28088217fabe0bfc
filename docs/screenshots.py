"""Regenerate the screenshots of docs/app.md: ``python docs/screenshots.py [--checkpoint <run|export>]``.

Starts ``genodiff serve``'s app in this process on a free local port with a small data folder made here (a slice
of the demo genome, reference windows cut from it, three SNVs), runs one example in every tab with headless
Chromium from the system (Playwright drives it; nothing is downloaded) and writes ``docs/img/app_<tab>.png``.
Without ``--checkpoint`` the bundled model is used. Needs ``pip install -e '.[dev]'`` and a ``chromium`` binary.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from genodiff.app.jobs import Runner
from genodiff.app.serve import describe_model
from genodiff.app.settings import serve_settings
from genodiff.app.ui import TABS, build_app, launch
from genodiff.data.genome.demo import write_demo_genome
from genodiff.data.genome.reference import Genome
from genodiff.interop.export import load_model

IMG = Path(__file__).resolve().parent / "img"
TIMEOUT_MS = 300_000


def make_data(folder: Path) -> Path:
    """``demo.fa`` (two contigs of the demo genome), ``reference_windows.fa`` and ``calls.vcf`` under ``folder``."""
    data = folder / "data"
    data.mkdir(parents=True)
    write_demo_genome(data / "demo.fa", chromosomes=[("chr1", 120_000), ("chr2", 60_000)])
    genome = Genome(data / "demo.fa")
    windows = [(f"chr1_{s}_{s + 512}", genome.fetch("chr1", s, s + 512)) for s in range(0, 120_000 - 512, 1_000)]
    windows = [(name, seq) for name, seq in windows if "N" not in seq][:20]  # outside the assembly gaps
    (data / "reference_windows.fa").write_text("".join(f">{n}\n{seq}\n" for n, seq in windows))
    rows = []
    for name, _ in windows[2:5]:  # one SNV in the middle of three of the windows
        pos = int(name.split("_")[1]) + 257  # 1-based
        ref = genome.fetch("chr1", pos - 1, pos)
        alt = "A" if ref != "A" else "G"
        rows.append(f"chr1\t{pos}\t.\t{ref}\t{alt}\t.\t.\t.")
    (folder / "calls.vcf").write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                                      + "\n".join(rows) + "\n")
    return data


def windows_of(data: Path) -> list[str]:
    """The record names of ``reference_windows.fa`` (``chr1_<start>_<end>``)."""
    return [line[1:].strip() for line in (data / "reference_windows.fa").read_text().splitlines()
            if line.startswith(">")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fill(page, elem_id: str, value) -> None:
    field = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    field.fill(str(value))
    field.press("Tab")


def choose(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option).click()


def shoot(page, key: str, wait_for: str) -> None:
    page.locator(wait_for).first.wait_for(timeout=TIMEOUT_MS)
    page.wait_for_timeout(1500)  # let the progress overlay fade
    path = IMG / f"app_{key}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="run or export folder (default: the bundled model)")
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("screenshots: no chromium binary (apt-get install chromium)", file=sys.stderr)
        return 2
    IMG.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="genodiff-screenshots-") as tmp:
        tmp = Path(tmp)
        data = make_data(tmp)
        settings = serve_settings({"checkpoint": args.checkpoint, "data_dir": str(data), "port": free_port(),
                                   "num_threads": 1})
        runner = Runner(settings, tmp / "work")
        demo = build_app(runner, describe_model(load_model(settings.checkpoint, settings.device)))
        url = launch(demo, settings, block=False, quiet=True)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.set_default_timeout(TIMEOUT_MS)
                page.goto(url)
                labels = {tab.key: tab.label for tab in TABS}

                page.get_by_role("tab", name=labels["generate"]).click()
                fill(page, "generate-number", 3)
                fill(page, "generate-length", 180)
                fill(page, "generate-steps", 32)
                page.locator("#generate-run").click()
                shoot(page, "generate", '#generate-files a[download="samples.fa"]')

                page.get_by_role("tab", name=labels["infill"]).click()
                choose(page, "infill-genome", "demo.fa")
                start = int(windows_of(data)[0].split("_")[1]) + 200
                fill(page, "infill-region", f"chr1:{start}-{start + 100}")
                fill(page, "infill-flank", 60)
                fill(page, "infill-number", 2)
                fill(page, "infill-steps", 32)
                page.locator("#infill-run").click()
                shoot(page, "infill", '#infill-files a[download="samples.fa"]')

                page.get_by_role("tab", name=labels["score"]).click()
                page.locator("#score-file input[type=file]").set_input_files(str(data / "reference_windows.fa"))
                fill(page, "score-draws", 8)
                page.locator("#score-run").click()
                shoot(page, "score", '#score-files a[download="scores.tsv"]')

                page.get_by_role("tab", name=labels["variants"]).click()
                page.locator("#variants-file input[type=file]").set_input_files(str(tmp / "calls.vcf"))
                choose(page, "variants-genome", "demo.fa")
                fill(page, "variants-window", 128)
                fill(page, "variants-draws", 8)
                page.locator("#variants-run").click()
                shoot(page, "variants", '#variants-files a[download="variants.tsv"]')

                page.get_by_role("tab", name=labels["analyze"]).click()
                generated = runner.generate(20, 512, "cached", 32, 1).file(".fa")
                page.locator("#analyze-samples-file input[type=file]").set_input_files(str(generated))
                choose(page, "analyze-reference", "reference_windows.fa")
                fill(page, "analyze-kmax", 4)
                page.locator("#analyze-run").click()
                shoot(page, "analyze", '#analyze-files a[download="report.md"]')
                browser.close()
        finally:
            demo.close()
            runner.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
