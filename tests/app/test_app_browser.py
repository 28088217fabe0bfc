"""The app in a real browser: headless Chromium from the system (Debian's ``chromium`` package; .ci/run installs it)
driven by Playwright. The page loads with every tab, a 2-sequence generation completes and its FASTA downloads,
an infill keeps the known bases, and a bad upload shows its one-line error in the page.

Skips (with the reason) when Playwright or a ``chromium`` binary is missing; Playwright never downloads a browser.
"""

from __future__ import annotations

import shutil

import pytest
from app_helpers import read_fasta_text, write_fasta

sync_api = pytest.importorskip("playwright.sync_api",
                               reason="the browser tests need playwright (pip install -e '.[dev]')")
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)")

TIMEOUT_MS = 120_000  # a loaded 2-core machine can be slow; nothing here waits this long when idle
TAB_LABELS = ["Generate", "Design", "Infill", "Score sequences", "Variant effects", "Analyze"]


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, server):
    url, _ = server
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.requested = []  # every URL the page asked for
    page.on("request", lambda request: page.requested.append(request.url))
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.get_by_role("tab", name="Generate").wait_for()
    yield page
    context.close()


def _set_number(page, elem_id: str, value) -> None:
    field = page.locator(f"#{elem_id} input")
    field.fill(str(value))
    field.press("Tab")  # commit the value


def _open_tab(page, label: str) -> None:
    page.get_by_role("tab", name=label).click()


def test_page_loads_with_every_tab(page):
    assert page.title() == "genodiff"
    for label in TAB_LABELS:
        _open_tab(page, label)
        assert page.get_by_role("tab", name=label).get_attribute("aria-selected") == "true"
    assert "Model: tiny test model." in page.locator("#header").inner_text()
    url = page.url
    outside = [u for u in page.requested if not u.startswith((url, "data:", "blob:"))]
    assert not outside, f"the page loaded from other sites: {outside[:5]}"


def test_two_sequence_generation_downloads_its_fasta(page, tmp_path):
    _set_number(page, "generate-number", 2)
    _set_number(page, "generate-length", 48)
    _set_number(page, "generate-steps", 4)
    _set_number(page, "generate-seed", 21)
    page.locator("#generate-run").click()
    link = page.locator('#generate-files a[download="samples.fa"]')
    link.wait_for()
    with page.expect_download() as info:
        link.click()
    target = tmp_path / "downloaded.fa"
    info.value.save_as(target)
    assert info.value.suggested_filename == "samples.fa"
    records = read_fasta_text(target.read_text())
    assert list(records) == ["sample_0", "sample_1"]
    for desc, seq in records.values():
        assert len(seq) == 48 and set(seq) <= set("ACGT") and "seed=21" in desc.split()


def test_infill_keeps_the_known_bases(page):
    template = "ACGTTGCAACGTNNNNNNNNNNNNTTGCAACG"
    _open_tab(page, "Infill")
    page.locator("#infill-template textarea").fill(template)
    _set_number(page, "infill-number", 2)
    _set_number(page, "infill-steps", 4)
    page.locator("#infill-run").click()
    preview = page.locator("#infill-fasta textarea")
    page.wait_for_function("el => el.value.startsWith('>')", arg=preview.element_handle())
    records = read_fasta_text(preview.input_value())
    assert len(records) == 2
    for _, seq in records.values():
        assert len(seq) == len(template)
        assert all(s == t for s, t in zip(seq, template) if t != "N")


def test_bad_upload_shows_its_error(page, tmp_path):
    bad = write_fasta(tmp_path / "broken.fa", {"ok": "ACGT", "bad": "ACGTZZ"})
    _open_tab(page, "Score sequences")
    page.locator("#score-file input[type=file]").set_input_files(str(bad))
    page.locator("#score-file").get_by_text("broken.fa").first.wait_for()
    page.locator("#score-run").click()
    toast = page.get_by_text("sequences: broken.fa line 4: non-DNA character 'Z'")
    toast.first.wait_for()
    assert "Traceback" not in page.content()
