"""The app's jobs without a browser: the same bytes as the CLI, limits, the data folder's path safety, one-line
errors and no leftovers (genodiff.app.jobs, .settings, .datafiles)."""

from __future__ import annotations

import os
import time

import pytest
from app_helpers import cli, make_settings, read_fasta_text, tiny_design_exports, write_fasta

from genodiff.app.datafiles import list_fasta, resolve_data_file
from genodiff.app.jobs import Runner, override
from genodiff.app.settings import Limits, ServeSettings, serve_settings
from genodiff.config import compose_config, to_plain
from genodiff.data.genome.reference import Genome
from genodiff.errors import InputError


# ---------------------------------------------------------------------------------------------- settings
def test_serve_yaml_defaults_are_the_settings_defaults():
    settings = serve_settings(to_plain(compose_config("serve")))
    assert settings == ServeSettings()
    assert settings.host == "127.0.0.1" and settings.checkpoint is None and settings.data_dir is None


@pytest.mark.parametrize(("plain", "key"), [
    ({"port": 0}, "port"), ({"port": 70000}, "port"), ({"host": "lab machine"}, "host"),
    ({"concurrency": 0}, "concurrency"), ({"limits": {"max_length": -1}}, "limits.max_length"),
    ({"limits": {"max_lenght": 5}}, "limits.max_lenght"), ({"limits": {"max_upload_mb": 0}}, "limits.max_upload_mb"),
    ({"data_dir": "/no/such/folder"}, "data_dir"),
])
def test_bad_settings_name_their_key(plain, key):
    with pytest.raises(InputError, match=rf"^{key}: "):
        serve_settings(plain)


def test_override_passes_plain_values_and_refuses_anything_else():
    assert override("a", None) == "a=null" and override("a", True) == "a=true" and override("a", 3) == "a=3"
    assert override("gc.target", 0.5) == "gc.target=0.5"
    assert override("conditioning.region", "chr1:10-20") == "conditioning.region='chr1:10-20'"
    for bad in ("a'b", "${oc.env:HOME}", "x,y", "a b", "x]"):
        with pytest.raises(InputError, match="characters the app does not pass on"):
            override("input", bad)


# ---------------------------------------------------------------------------------------------- data folder
def test_data_folder_lists_fasta_files_inside_only(data_dir):
    assert list_fasta(data_dir) == ["genome.fa", "sub/ref.fa"]  # escape.fa leads outside: not offered
    assert list_fasta(None) == []


@pytest.mark.parametrize("name", ["../secret.fa", "escape.fa", "sub/../../secret.fa", "/etc/passwd", "~/x.fa",
                                  "sub/../genome.fa", "nosuch.fa", "", None, "genome.fa\x00"])
def test_crafted_data_paths_are_refused(data_dir, name):
    with pytest.raises(InputError, match=r"^genome: "):
        resolve_data_file(data_dir, name, "genome")


def test_absolute_path_of_a_data_file_is_refused_and_listed_names_resolve(data_dir):
    with pytest.raises(InputError):
        resolve_data_file(data_dir, str(data_dir / "genome.fa"), "genome")
    assert resolve_data_file(data_dir, "sub/ref.fa", "genome") == (data_dir / "sub" / "ref.fa").resolve()
    with pytest.raises(InputError, match="no data folder"):
        resolve_data_file(None, "genome.fa", "genome")


def test_crafted_genome_is_refused_by_the_variants_job(runner, tmp_path):
    vcf = tmp_path / "v.tsv"
    vcf.write_text("chrA\t50\tA\tC\n")
    with pytest.raises(InputError, match=r"^genome: '\.\./secret\.fa' is not a file of the data folder"):
        runner.variants(str(vcf), "../secret.fa", 32, 4, 0)
    assert not list(runner.root.iterdir())


# ---------------------------------------------------------------------------------------------- same bytes as the CLI
def test_generate_gives_the_cli_bytes_for_the_same_seed(runner, export, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = runner.generate(2, 40, "cached", 4, 7)
    fasta = app.file(".fa").read_bytes()
    out = cli(tmp_path, "sample", f"checkpoint={export}", "num_samples=2", "length=40", "sampler=cached", "steps=4",
              "seed=7")
    assert fasta == (out / "samples.fa").read_bytes()
    records = read_fasta_text(fasta.decode())
    assert list(records) == ["sample_0", "sample_1"]
    assert all(len(seq) == 40 and set(seq) <= set("ACGT") for _, seq in records.values())
    assert all("seed=7" in desc.split() for desc, _ in records.values())
    assert app.command.startswith("genodiff sample num_samples=2 sampler=cached steps=4 seed=7 length=40")
    assert runner.generate(2, 40, "cached", 4, 8).file(".fa").read_bytes() != fasta  # the seed matters


def test_infill_template_keeps_known_bases_and_matches_the_cli(runner, export, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    template = "ACGTACGTAANNNNNNNNNNGGCC??TTAA"
    app = runner.infill(template, number=2, steps=4, seed=3)
    out = cli(tmp_path, "sample", f"checkpoint={export}", "num_samples=2", "steps=4", "seed=3",
              f"conditioning.template={template}")
    assert app.file(".fa").read_bytes() == (out / "samples.fa").read_bytes()
    assert app.file(".infill.bed").read_bytes() == (out / "samples.infill.bed").read_bytes()
    for _, seq in read_fasta_text(app.file(".fa").read_text()).values():
        assert len(seq) == len(template)
        assert all(s == t for s, t in zip(seq, template) if t not in "N?")
        assert set(seq) <= set("ACGT")


def test_region_infill_keeps_the_genome_flanks(runner, data_dir):
    app = runner.infill(genome_name="genome.fa", region="chrA:100-120", flank=10, number=1, steps=4, seed=0)
    (desc, seq), = read_fasta_text(app.file(".fa").read_text()).values()
    genome = Genome(data_dir / "genome.fa")
    assert len(seq) == 40 and seq[:10] == genome.fetch("chrA", 90, 100) and seq[30:] == genome.fetch("chrA", 120, 130)
    assert "source=chrA:90-130" in desc.split()
    assert app.file(".infill.bed").read_text().split("\t")[1:3] == ["10", "30"]


def test_score_gives_the_cli_tsv(runner, export, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fasta = write_fasta(tmp_path / "in.fa", {"a": "ACGTACGTAC", "b": "GGGGCCCCAAAANN"})
    app = runner.score(None, str(fasta), 4, 1)
    out = cli(tmp_path, "score", "sequences", f"checkpoint={export}", f"input={fasta}", "num_samples=4", "seed=1")
    assert app.file(".tsv").read_bytes() == (out / "scores.tsv").read_bytes()
    assert [r["id"] for r in app.summary["rows"]] == ["a", "b"]


def test_variants_and_analyze_run_their_tasks(runner, data_dir, tmp_path):
    ref = Genome(data_dir / "genome.fa").fetch("chrA", 49, 50)
    calls = tmp_path / "calls.tsv"
    calls.write_text(f"chrA\t50\t{ref}\t{'A' if ref != 'A' else 'C'}\nchrQ\t1\tA\tC\n")
    app = runner.variants(str(calls), "genome.fa", 32, 4, 0)
    assert [f.name for f in app.files] == ["variants.tsv", "variants.errors.tsv", "variants.json"]
    assert app.summary["scored"] == 1 and "chrQ" in app.summary["rows"][1]["error"]
    samples = runner.generate(3, 60, "cached", 4, 1).file(".fa")
    report = runner.analyze(samples.read_text(), None, reference_name="sub/ref.fa", kmax=3)
    names = [f.name for f in report.files]
    assert names[0] == "report.md" and "results.json" in names and any(n.endswith(".png") for n in names)
    assert "| samples | 3 | 180 |" in report.file("report.md").read_text()


# ---------------------------------------------------------------------------------------------- limits and errors
def test_limits_refuse_requests_before_any_work(export, data_dir, tmp_path):
    limits = {"max_length": 100, "max_count": 4, "max_steps": 8, "max_upload_mb": 0.001, "max_records": 2}
    runner = Runner(make_settings(export, data_dir, limits=limits), tmp_path / "work")
    cases = [
        (lambda: runner.generate(5, 40, "cached", 4), r"^number: must be a whole number in 1\.\.4, got 5"),
        (lambda: runner.generate(1, 101, "cached", 4), r"^length: .* 1\.\.100"),
        (lambda: runner.generate(1, 40, "cached", 9), r"^steps: "),
        (lambda: runner.generate(1, 40, "cached", 4, 2.5), r"^seed: "),
        (lambda: runner.generate(1, 40, "magic", 4), r"^sampler: 'magic' is not one of"),
        (lambda: runner.generate(1, 40, "cached", 4, order="spiral"), r"^order: 'spiral' is not one of"),
        (lambda: runner.generate(1, 40, "cached", 4, 0, 1.5), r"^GC target: "),
        (lambda: runner.infill(">a\nACNNA\n>b\nACNNA\n>c\nANNNA\n", number=2, steps=4),
         r"^number: 3 template records x 2 = 6 sequences"),
        (lambda: runner.infill("ACGT" * 30 + "NN", steps=4), r"^template: record template is 122 bp"),
        (lambda: runner.infill(genome_name="genome.fa", region="chrA:100-150", flank=30, steps=4),
         r"^region chrA:100-150: 50 bp \+ 2 x 30 bp flank"),
        (lambda: runner.score("A" * 1200, None), r"^sequences: the pasted text is 0\.0 MB, over .* of 0\.001 MB"),
        (lambda: runner.score(">a\nAC\n>b\nAC\n>c\nAC\n", None), r"^sequences: 3 records, over this server"),
        (lambda: runner.infill("ACNN", genome_name="genome.fa", steps=4), r"^infill: give a template, or a genome"),
        (lambda: runner.infill(genome_name="genome.fa", steps=4), r"^region: give a region"),
        (lambda: runner.score("", None), r"^sequences: paste a sequence or upload"),
    ]
    for call, pattern in cases:
        with pytest.raises(InputError, match=pattern):
            call()
    assert not list((tmp_path / "work").iterdir())  # no request folder is left behind


def test_bad_fasta_upload_is_one_line_naming_the_upload(runner, tmp_path):
    bad = tmp_path / "my seqs.fa"
    bad.write_text(">ok\nACGT\n>broken\nACXT\n")
    with pytest.raises(InputError) as info:
        runner.score(None, str(bad), 4, 0)
    message = str(info.value)
    assert message.startswith("sequences: ") and "my seqs.fa line 4" in message and "non-DNA character 'X'" in message
    assert "\n" not in message and str(runner.root) not in message
    assert not list(runner.root.iterdir())


def test_finished_request_folders_expire_and_running_ones_stay(export, tmp_path):
    runner = Runner(make_settings(export, results_ttl_minutes=1), tmp_path / "work")
    done = runner.generate(1, 8, "cached", 2).folder
    running = runner._new_request().folder
    old = time.time() - 120
    for folder in (done, running):
        os.utime(folder, (old, old))
    runner.generate(1, 8, "cached", 2)
    assert not done.exists() and running.exists()
    runner.close()
    assert (tmp_path / "work").is_dir() and not list((tmp_path / "work").iterdir())


def test_limits_dataclass_sizes():
    assert Limits(max_upload_mb=2.5).max_upload_bytes == 2_500_000



@pytest.fixture(scope="module")
def design_exports(tmp_path_factory):
    return tiny_design_exports(tmp_path_factory.mktemp("design"))


@pytest.mark.parametrize("guidance", ["classifier-free", "classifier"])
def test_design_gives_the_cli_bytes_and_records_the_guidance(design_exports, tmp_path, monkeypatch, guidance):
    cond, clf = design_exports
    runner = Runner(make_settings(cond, classifier=str(clf)), tmp_path / "work")
    try:
        assert runner.design_classes() == {"classifier-free": ["background", "promoter"],
                                           "classifier": ["background", "promoter"]}
        result = runner.design(2, 40, "promoter", 1.5, guidance, "cached", 4, 7)
        fasta = result.file(".fa").read_bytes()
        monkeypatch.chdir(tmp_path)
        extra = [f"guidance.classifier={clf}"] if guidance == "classifier" else []
        out = cli(tmp_path, "sample", f"checkpoint={cond}", "num_samples=2", "length=40", "seed=7", "steps=4",
                  "condition.label=promoter", "guidance.scale=1.5", *extra)
        assert fasta == (out / "samples.fa").read_bytes()
        header = fasta.decode().splitlines()[0]
        assert "label=promoter" in header and "scale=1.5" in header
        assert ("guidance=classifier " in header + " ") == (guidance == "classifier")
        assert "condition.label=promoter" in result.command and "guidance.scale=1.5" in result.command
        other = runner.design(2, 40, "background", 1.5, guidance, "cached", 4, 7)
        assert other.file(".fa").read_bytes() != fasta  # the class reaches the model
    finally:
        runner.close()


def test_design_refuses_what_the_server_cannot_do(design_exports, export, tmp_path):
    cond, _ = design_exports
    plain = Runner(make_settings(export), tmp_path / "plain")  # unconditional model, no classifier
    assert plain.design_classes() == {}
    with pytest.raises(InputError, match="unconditional"):
        plain.design(1, 20, "promoter", 1.0)
    runner = Runner(make_settings(cond), tmp_path / "cond")  # conditional, no classifier
    try:
        with pytest.raises(InputError, match="classifier=<export>"):
            runner.design(1, 20, "promoter", 1.0, "classifier")
        with pytest.raises(InputError, match="'enhancer' is not one of background, promoter"):
            runner.design(1, 20, "enhancer", 1.0)
        with pytest.raises(InputError, match=r"must be in \[0, 20\]"):
            runner.design(1, 20, "promoter", 25)
        with pytest.raises(InputError, match="not a number"):
            runner.design(1, 20, "promoter", "strong")
        assert not list((tmp_path / "cond").glob("req-*"))  # refused before any folder or work
    finally:
        plain.close()
        runner.close()
