"""VCF input for variant scoring: bgzip (BGZF) read like plain text, multi-allelic records split per allele
(with the allele index), per-allele errors for symbolic / breakend / spanning-deletion / missing alleles,
and `genodiff score variants` end to end through the CLI on a VCF with SNVs, MNVs, insertions, deletions,
a complex replacement, a multi-allelic record and a symbolic allele."""

from __future__ import annotations

import csv
import json

import pytest
from Bio import bgzf
from fakes import fake_model
from gen_helpers import random_dna, write_fasta_text
from motif_world import motif_model

from genodiff.cli import main
from genodiff.data.genome.reference import Genome
from genodiff.generate.variants import (
    ERROR_COLUMNS,
    TSV_COLUMNS,
    read_variants,
    score_variants,
    variant_row,
)

HEAD = "##fileformat=VCFv4.2\n##contig=<ID=c>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"


def vcf_text(rows):
    return HEAD + "".join(f"{c}\t{p}\t{i}\t{r}\t{a}\t.\tPASS\t.\n" for c, p, i, r, a in rows)


def write_bgzf(path, text):
    with bgzf.BgzfWriter(str(path), "wb") as fh:
        fh.write(text.encode())
    return path


def _records(seq, n):
    """n VCF records on contig c: SNVs, anchored insertions and deletions, complex replacements."""
    rows = []
    for i in range(n):
        p0 = 40 + (i * 7) % (len(seq) - 80)
        kind = i % 4
        ref = seq[p0:p0 + (1 if kind in (0, 1) else 3)]
        if kind == 0:
            alt = "ACGT".replace(ref, "")[i % 3]
        elif kind == 1:
            alt = ref + "GA"
        elif kind == 2:
            alt = ref[0]
        else:  # two bases sharing neither the first nor the last REF base
            alt = 2 * next(b for b in "ACGT" if b not in (ref[0], ref[-1]))
        rows.append(("c", p0 + 1, f"v{i}", ref, alt))
    return rows


def test_bgzip_vcf_reads_like_plain(tmp_path):
    """A BGZF file of several blocks (about 120 kB of text; the writer starts a block every 64 kB) gives
    the same records as the plain file, and the same scores."""
    seq = random_dna(400, 5)
    fa = write_fasta_text(tmp_path / "g.fa", {"c": seq})
    text = vcf_text(_records(seq, 4000))
    (tmp_path / "v.vcf").write_text(text)
    write_bgzf(tmp_path / "v.vcf.gz", text)
    raw = (tmp_path / "v.vcf.gz").read_bytes()
    assert raw[:4] == b"\x1f\x8b\x08\x04" and raw.count(b"BC\x02\x00") >= 3  # BGZF extra field, >= 3 blocks
    plain, fmt_plain = read_variants(tmp_path / "v.vcf")
    gz, fmt_gz = read_variants(tmp_path / "v.vcf.gz")
    assert fmt_plain == fmt_gz == "vcf" and len(plain) == 4000
    assert [(v.chrom, v.pos, v.id, v.ref, v.alt, v.allele, v.line) for v in plain] == \
        [(v.chrom, v.pos, v.id, v.ref, v.alt, v.allele, v.line) for v in gz]
    genome, model = Genome(fa), fake_model()  # a context-dependent stand-in: nonzero llrs
    a, b = plain[:12], gz[:12]
    score_variants(model, a, genome, window=32, num_samples=4, method="auto", seed=1)
    score_variants(model, b, genome, window=32, num_samples=4, method="auto", seed=1)
    assert json.dumps([variant_row(v) for v in a]) == json.dumps([variant_row(v) for v in b])
    assert all(v.result["llr"] != 0 for v in a)
    assert all(not v.error for v in a) and {v.change.kind for v in a} == {"snv", "ins", "del", "complex"}


def test_multiallelic_split_and_per_allele_errors(tmp_path):
    seq = random_dna(200, 9)
    fa = write_fasta_text(tmp_path / "g.fa", {"c": seq})
    r = seq[99]
    other = "ACGT".replace(r, "")
    rows = [("c", 100, "multi", r, f"{other[0]},{r}TT,<DEL>,*,{other[1].lower()}"),
            ("c", 110, "bnd", seq[109], f"{seq[109]}[c:150["),
            ("c", 111, "bnd_single", seq[110], f"{seq[110]}."),
            ("c", 112, "missing", seq[111], "."),
            ("c", 113, "same", seq[112], seq[112]),
            ("c", 114, "iupac", seq[113], "R"),
            ("c", 115, "ins_sym", seq[114], "<INS>")]
    (tmp_path / "v.vcf").write_text(vcf_text(rows))
    vs, _ = read_variants(tmp_path / "v.vcf")
    multi = [v for v in vs if v.id == "multi"]
    assert [(v.allele, v.alt) for v in multi] == [(1, other[0]), (2, r + "TT"), (3, "<DEL>"), (4, "*"), (5, other[1])]
    score_variants(motif_model(), vs, Genome(fa), window=32, num_samples=4, method="auto", seed=0)
    by = {(v.id, v.allele): v for v in vs}
    assert by["multi", 1].change.kind == "snv" and by["multi", 2].change.kind == "ins"
    assert by["multi", 5].result and not by["multi", 5].error
    assert all(by["multi", i].result and not by["multi", i].error for i in (1, 2, 5))
    expected = {("multi", 3): "symbolic", ("multi", 4): "spanning deletion", ("bnd", 1): "breakend",
                ("bnd_single", 1): "breakend", ("missing", 1): "missing ALT", ("same", 1): "no change",
                ("iupac", 1): "A/C/G/T only", ("ins_sym", 1): "symbolic"}
    for key, text in expected.items():
        assert text in by[key].error and not by[key].result and by[key].windows is None, (key, by[key].error)
        assert variant_row(by[key])["error"] == by[key].error


def test_cli_score_variants_end_to_end(tmp_path, tiny_run, genome_fa, capsys, monkeypatch):
    """`genodiff score variants checkpoint= input=<.vcf.gz> genome=` on the generated test genome: a row per
    allele, the symbolic allele the only error (row + errors TSV + JSON), window coordinates as documented,
    exit status 0."""
    monkeypatch.chdir(tmp_path)
    g = Genome(genome_fa)

    def ref(p, n=1):  # 1-based POS, n REF bases
        return g.fetch("chrA", p - 1, p - 1 + n)

    other = {b: "ACGT".replace(b, "")[0] for b in "ACGT"}
    rows = [("chrA", 500, "snv", ref(500), other[ref(500)]),
            ("chrA", 700, "mnv", ref(700, 2), other[ref(700)] + other[ref(701)]),
            ("chrA", 900, "ins", ref(900), ref(900) + "GATC"),
            ("chrA", 1100, "del", ref(1100, 6), ref(1100)),
            ("chrA", 1300, "complex", ref(1300, 2), other[ref(1300)] + "TTT"),
            ("chrA", 1500, "multi", ref(1500, 3), f"{ref(1500)},{other[ref(1500)]}{ref(1501, 2)}"),
            ("chrB", 2, "del_start", g.fetch("chrB", 1, 4), g.fetch("chrB", 1, 2)),
            ("chrA", 1700, "symbolic", ref(1700), "<DEL>")]
    write_bgzf(tmp_path / "v.vcf.gz", vcf_text(rows))
    out = tmp_path / "out"
    window = 48
    code = main(["score", "variants", f"checkpoint={tiny_run}", f"input={tmp_path / 'v.vcf.gz'}",
                 f"genome={genome_fa}", f"window={window}", "num_samples=4", "progress=false", "num_threads=1",
                 f"output_dir={out}"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "scored 8 of 9 variant alleles" in captured.out and "1 errors" in captured.out
    lines = (out / "variants.tsv").read_text().splitlines()
    table = list(csv.DictReader([line for line in lines if not line.startswith("#")], delimiter="\t"))
    assert list(table[0]) == TSV_COLUMNS and len(table) == 9
    assert [(t["id"], t["allele"]) for t in table] == [
        ("snv", "1"), ("mnv", "1"), ("ins", "1"), ("del", "1"), ("complex", "1"), ("multi", "1"), ("multi", "2"),
        ("del_start", "1"), ("symbolic", "1")]
    for t in table[:-1]:
        assert not t["error"] and t["llr"] and t["llr_stderr"], t
        s, e, a = int(t["change_start"]), int(t["change_end"]), len(t["inserted"])
        rs, re_, as_, ae = (int(t[k]) for k in ("ref_window_start", "ref_window_end", "alt_window_start",
                                                "alt_window_end"))
        assert re_ - rs == window and ae - as_ == window + (e - s) - a
        seq = g.fetch(t["chrom"], 0, g.lengths[t["chrom"]])
        p0 = int(t["pos"]) - 1
        hap = seq[:p0] + t["alt"] + seq[p0 + len(t["ref"]):]
        assert hap[as_:as_ + window] == seq[as_:s] + t["inserted"] + seq[e:ae]
        if t["id"] != "del_start":
            assert s - rs == (window - (e - s)) // 2 and s - as_ == (window - a) // 2  # centred
    kinds = {(t["id"], t["allele"]): t["kind"] for t in table}
    assert kinds == {("snv", "1"): "snv", ("mnv", "1"): "mnv", ("ins", "1"): "ins", ("del", "1"): "del",
                     ("complex", "1"): "complex", ("multi", "1"): "del", ("multi", "2"): "snv",
                     ("del_start", "1"): "del", ("symbolic", "1"): ""}
    assert (table[3]["change_start"], table[3]["change_end"]) == ("1100", "1105")  # POS 1100 = 0-based 1099 anchor
    assert (table[2]["change_start"], table[2]["change_end"], table[2]["inserted"]) == ("900", "900", "GATC")
    assert (table[7]["ref_window_start"], table[7]["alt_window_start"]) == ("0", "0")  # contig start
    assert "symbolic" in table[-1]["error"] and not table[-1]["llr"]
    err_lines = (out / "variants.errors.tsv").read_text().splitlines()
    assert err_lines[0].split("\t") == ERROR_COLUMNS and len(err_lines) == 2 and "\tsymbolic\t" in err_lines[1]
    summary = json.loads((out / "variants.json").read_text())
    assert summary["format"] == "vcf" and summary["scored"] == 8 and summary["errors"] == 1
    assert [r["id"] for r in summary["rows"] if r["error"]] == ["symbolic"]


@pytest.mark.parametrize("name", ["v.vcf", "v.vcf.gz"])
def test_cli_all_symbolic_is_one_error_line(tmp_path, tiny_run, genome_fa, capsys, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    text = vcf_text([("chrA", 10, "s", Genome(genome_fa).fetch("chrA", 9, 10), "<DUP>")])
    if name.endswith(".gz"):
        write_bgzf(tmp_path / name, text)
    else:
        (tmp_path / name).write_text(text)
    code = main(["score", "variants", f"checkpoint={tiny_run}", f"input={tmp_path / name}", f"genome={genome_fa}",
                 "window=32", "num_samples=2", "progress=false", f"output_dir={tmp_path / 'o'}"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and err[0].startswith("genodiff: error: input: ") and "symbolic" in err[0]
