"""The running app through its HTTP API (gradio_client): the CLI's bytes, one error message for bad input, no
server file outside the data folder, and 20 concurrent requests that all complete, each with its own result."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from app_helpers import cli, read_fasta_text, write_fasta

from genodiff.app.ui import TabContext
from genodiff.errors import InputError

gradio_client = pytest.importorskip("gradio_client",
                                    reason="the app tests need gradio_client (pip install -e '.[dev]')")
httpx = pytest.importorskip("httpx")
AppError = gradio_client.exceptions.AppError


@pytest.fixture(scope="module")
def client(server):
    url, _ = server
    return gradio_client.Client(url, verbose=False, download_files=True)


def _generate(client, seed: int, number: int = 2, length: int = 32):
    # number, length, sampler, order, steps, seed, gc_target, gc_tolerance
    return client.submit(number, length, "cached", "dilated", 4, seed, "", 0.02, api_name="/generate")


def _fasta_of(files) -> Path:
    return next(Path(f) for f in files if str(f).endswith(".fa"))


def test_api_generation_gives_the_cli_bytes(client, export, tmp_path, monkeypatch):
    summary, files, preview = _generate(client, 11, 2, 40).result(timeout=120)
    fasta = _fasta_of(files).read_bytes()
    monkeypatch.chdir(tmp_path)
    out = cli(tmp_path, "sample", f"checkpoint={export}", "num_samples=2", "length=40", "seed=11", "steps=4")
    assert fasta == (out / "samples.fa").read_bytes()
    assert preview == fasta.decode() and "genodiff sample num_samples=2" in summary
    assert sorted(Path(f).name for f in files) == ["samples.fa", "samples.json"]


def test_api_infill_keeps_known_bases(client):
    template = "GATTACAGATTACANNNNNNNNNNNNCATCAT"
    # template_text, template_file, genome_name, genome_file, region, bed_file, flank, number, sampler, order, steps,
    # seed
    _, files, preview = client.predict(template, None, None, None, "", None, 0, 3, "cached", "dilated", 4, 5,
                                       api_name="/infill")
    records = read_fasta_text(preview)
    assert len(records) == 3 and preview == _fasta_of(files).read_text()
    for _, seq in records.values():
        assert len(seq) == len(template) and all(s == t for s, t in zip(seq, template) if t != "N")


def test_bad_upload_is_one_message_without_traceback(client, tmp_path):
    bad = write_fasta(tmp_path / "bad.fa", {"ok": "ACGT", "broken": "ACGTXXACGT"})
    with pytest.raises(AppError) as info:
        client.predict(None, gradio_client.handle_file(str(bad)), 4, 0, api_name="/score")
    message = str(info.value)
    assert message.startswith("sequences: bad.fa line 4: non-DNA character 'X'"), message
    assert "Traceback" not in message and "\n" not in message


def test_browser_cannot_name_a_server_file_outside_the_data_folder(client, server, data_dir, tmp_path):
    url, runner = server
    calls = tmp_path / "calls.tsv"
    calls.write_text("chrA\t50\tA\tC\n")
    secret = (data_dir.parent / "secret.fa").read_text()
    for crafted in ("../secret.fa", "escape.fa", str(data_dir.parent / "secret.fa")):
        with pytest.raises(AppError) as info:
            client.predict(gradio_client.handle_file(str(calls)), crafted, 32, 4, 0, api_name="/variants")
        assert "ACGTACGT" not in str(info.value) and secret not in str(info.value)
    for path in (data_dir / "genome.fa", data_dir.parent / "secret.fa", runner.root):
        assert httpx.get(f"{url}gradio_api/file={path}").status_code == 403


def test_twenty_concurrent_requests_all_complete_with_their_own_results(client, server, export, tmp_path,
                                                                         monkeypatch):
    seeds = list(range(100, 120))
    with ThreadPoolExecutor(max_workers=20) as pool:
        jobs = list(pool.map(lambda s: _generate(client, s), seeds))
        results = [job.result(timeout=300) for job in jobs]
    fastas = {}
    for seed, (summary, files, preview) in zip(seeds, results):
        records = read_fasta_text(preview)
        assert list(records) == ["sample_0", "sample_1"], seed
        for desc, seq in records.values():
            assert len(seq) == 32 and set(seq) <= set("ACGT")
            assert f"seed={seed}" in desc.split()  # nothing mixed up between requests
        assert f"seed={seed}" in summary
        fastas[seed] = _fasta_of(files).read_bytes()
        assert fastas[seed].decode() == preview
    assert len(set(fastas.values())) == len(seeds)  # distinct results
    monkeypatch.chdir(tmp_path)
    for seed in (seeds[0], seeds[13]):
        out = cli(tmp_path, "sample", f"checkpoint={export}", "num_samples=2", "length=32", "steps=4", f"seed={seed}")
        assert (out / "samples.fa").read_bytes() == fastas[seed]


def test_errors_become_one_message_in_the_page(runner, caplog):
    gr = pytest.importorskip("gradio")
    ctx = TabContext(gr, runner, [])

    def bad_input():
        raise InputError("sequences: x.fa line 2: non-DNA character 'X'")

    def bug():
        raise KeyError("internal detail")

    with pytest.raises(gr.Error) as info:
        ctx.call(bad_input)
    assert info.value.message == "sequences: x.fa line 2: non-DNA character 'X'"
    with caplog.at_level("ERROR", logger="genodiff.app"), pytest.raises(gr.Error) as info:
        ctx.call(bug)
    assert info.value.message.startswith("internal error") and "internal detail" not in info.value.message
    assert "internal detail" in caplog.text  # the traceback goes to the server log


def test_generation_reports_calls_and_time_left_while_it_runs(client):
    """The page's progress is the task's bar: denoiser calls out of the expected number (first-hitting: one per
    base and batch, known exactly), its description the time left once the first call is timed."""
    import time

    # number, length, sampler, order, steps, seed, gc_target, gc_tolerance: 2 x 400 bp, one batch, 400 calls
    job = client.submit(2, 400, "first_hitting", "dilated", 4, 3, "", 0.02, api_name="/generate")
    seen = []
    while not job.done():
        progress = job.status().progress_data
        if progress:
            seen += [(unit.desc, unit.index, unit.length, unit.unit) for unit in progress]
        time.sleep(0.02)
    job.result(timeout=120)
    assert seen, "no progress was reported while the job ran"
    assert all(length == 400 and unit == "call" for _, _, length, unit in seen)
    assert any(desc and desc.startswith("sample, about ") and desc.endswith(" s left") for desc, *_ in seen)


def test_design_tab_runs_through_the_api_when_the_model_is_conditional(tmp_path):
    """A server whose model is class-conditional (and has a classifier) offers /design; its classes come from
    the exports; the page of an unconditional server explains instead (the browser test opens that tab)."""
    from app_helpers import free_port, make_settings, tiny_design_exports

    from genodiff.app.jobs import Runner
    from genodiff.app.ui import build_app, launch

    cond, clf = tiny_design_exports(tmp_path / "models")
    settings = make_settings(cond, classifier=str(clf), port=free_port())
    runner = Runner(settings, tmp_path / "work")
    demo = build_app(runner, "conditional")
    try:
        url = launch(demo, settings, block=False, quiet=True)
        design = gradio_client.Client(url, verbose=False, download_files=True)
        # number, length, class, strength, guidance, sampler, order, steps, seed
        summary, files, preview = design.predict(2, 30, "promoter", 2.0, "classifier", "cached", "dilated", 4, 1,
                                                 api_name="/design")
        records = read_fasta_text(preview)
        assert len(records) == 2 and all("label=promoter" in head and "guidance=classifier" in head
                                         for head, _ in records.values())
        assert "guidance.classifier=" in summary
        with pytest.raises(AppError, match="enhancer"):  # the page's class list refuses it (the runner too)
            design.predict(1, 30, "enhancer", 2.0, "classifier-free", "cached", "dilated", 4, 1, api_name="/design")
    finally:
        demo.close()
        runner.close()
