"""experiments/: every study's smoke variant through the runner, its reports, and resuming; the
gensim runner shared with benchmarks/quality.py, and the learning rate in every table."""

import csv
import json
import os
import sys

import pytest

pytest.importorskip("matplotlib")

from experiments import STUDIES  # noqa: E402
from experiments.report import markdown_table, welch  # noqa: E402
from experiments.run import run_study  # noqa: E402
from experiments.running import Variant, gensim_settings, load_study, run_key, select  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def study_dirs(tmp_path_factory, head_corpus):
    root = tmp_path_factory.mktemp("experiments")
    return {"corpus": head_corpus(20000), "work": str(root / "work"), "results": str(root / "results")}


def _png(path):
    with open(path, "rb") as f:
        assert f.read(8) == PNG, path


@pytest.mark.parametrize("study", STUDIES)
def test_smoke_variant_runs_and_reports(study, study_dirs):
    d = study_dirs
    out = run_study(study, "smoke*", d["corpus"], d["work"], d["results"], log=lambda *a: None)
    smoke = [n for n in out["statuses"]]
    assert "smoke" in smoke and all(s in ("ran", "done") for s in out["statuses"].values()), out["statuses"]
    outdir = os.path.join(d["results"], study)
    # the table holds every variant: the smoke ones done, the full-size ones listed as not run
    with open(os.path.join(outdir, "results.csv")) as f:
        rows = {r["variant"]: r for r in csv.DictReader(f)}
    allv = load_study(study).variants()
    assert set(rows) == set(allv) - {n for n in allv if n.startswith("smoke") and n not in smoke}
    for n in smoke:
        r = rows[n]
        assert r["status"] == "done"
        assert float(r["raw_words_per_s"]) > 0 and 0 <= float(r["analogy_total"]) <= 1
        assert -1 <= float(r["ws353_spearman"]) <= 1
    for n, r in rows.items():
        if n not in smoke:
            assert r["status"] == ("skipped: " + allv[n].skip if allv[n].skip else "not run"), (n, r["status"])
    md = open(os.path.join(outdir, "results.md")).read()
    assert "Command:" in md and "| smoke |" in md and f"{len(smoke)} of {len(rows)} variants done" in md
    _png(os.path.join(outdir, "per_variant.png"))
    for name in out["files"]:
        if name.endswith(".png"):
            _png(out["files"][name])
            assert f"]({name})" in md
    if study == "objectives":  # loss and periodic-evaluation curves from metrics.jsonl
        for name in ("loss_vs_words.png", "quality_vs_words.png"):
            _png(os.path.join(outdir, name))
    if study == "seeds":
        _png(os.path.join(outdir, "seeds.png"))
        assert "Spread over seeds" in md and "| smoke | 1,2 |" in md
    if study == "knobs":
        _png(os.path.join(outdir, "knobs.png"))
    if study == "reference":
        assert rows["smoke-gensim"]["tool"] == "gensim" and "gensim" in rows["smoke-gensim"]["tool_version"]
        # gensim ran at w2vjax's CBOW rate, and the table says so for both rows
        assert float(rows["smoke-gensim"]["lr"]) == float(rows["smoke"]["lr"]) == 0.05
        assert "| lr |" in md and all(f"| {n} |" in md and "| 0.05 |" in md.split(f"| {n} |")[1].split("\n")[0]
                                      for n in ("smoke", "smoke-gensim"))


def test_resuming_a_finished_study_does_not_retrain(study_dirs):
    d = study_dirs
    run_study("objectives", "smoke", d["corpus"], d["work"], d["results"], log=lambda *a: None)
    v = load_study("objectives").variants()["smoke"]
    summary = os.path.join(d["work"], run_key(v, d["corpus"]), "summary.json")
    before = os.stat(summary).st_mtime_ns, open(summary).read()
    logged = []
    out = run_study("objectives", "smoke", d["corpus"], d["work"], d["results"], log=logged.append)
    assert out["statuses"] == {"smoke": "done"} and logged == []
    assert (os.stat(summary).st_mtime_ns, open(summary).read()) == before
    metrics = [json.loads(l) for l in open(os.path.join(os.path.dirname(summary), "metrics.jsonl"))]
    assert any("eval" in m for m in metrics) and any("loss" in m for m in metrics)


def test_study_files_have_header_smoke_and_distinct_runs():
    for study in STUDIES:
        mod = load_study(study)
        doc = mod.__doc__
        for needed in ("Command:  python -m experiments.run " + study, "Expected runtime", "Last result"):
            assert needed in doc, (study, needed)
        allv = mod.variants()
        assert "smoke" in allv
        assert "smoke" not in select(allv, None)  # the default selection is the real study
    allv = load_study("knobs").variants()
    assert select(allv, "dim-*") == ["dim-50", "dim-100", "dim-200", "dim-300"]
    with pytest.raises(SystemExit):
        select(allv, "nope")
    # the knobs' baseline appears once per knob but is one run, shared with the objectives study
    corpus = __file__
    keys = {run_key(allv[n], corpus) for n in ("dim-100", "window-5", "negative-5", "sample-0.001", "noise-0.75")}
    assert keys == {run_key(load_study("objectives").variants()["cbow-ns5-sub"], corpus)}


def _quality():
    """benchmarks/quality.py as its own script sees it (benchmarks/ is a folder of scripts)."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import quality
    finally:
        sys.path.pop(0)
    return quality


def test_one_gensim_runner_importable_from_both_places():
    from experiments import gensim_ref
    quality = _quality()
    assert quality.run_gensim is gensim_ref.run_gensim and quality.text_file is gensim_ref.text_file
    pytest.importorskip("gensim")
    # by default gensim runs at w2vjax's learning rate (word2vec.c's), its own default on request
    assert gensim_ref.alphas("cbow") == {"alpha": 0.05, "min_alpha": pytest.approx(5e-6), "lr_rule": "w2vjax's"}
    assert gensim_ref.alphas("skipgram")["alpha"] == 0.025
    assert gensim_ref.alphas("cbow", lr=0.01)["alpha"] == 0.01
    assert gensim_ref.alphas("cbow", rule="default") == {"alpha": 0.025, "min_alpha": 0.0001,
                                                          "lr_rule": "gensim's default"}
    cbow = dict(model="cbow", loss="ns", dim=16)
    assert gensim_settings(Variant(cbow, tool="gensim"))["lr"] == 0.05
    assert gensim_settings(Variant(cbow, tool="gensim-default"))["lr"] == 0.025
    # and the two are different runs
    assert run_key(Variant(cbow, tool="gensim"), __file__) != run_key(Variant(cbow, tool="gensim-default"), __file__)


def test_tables_state_each_rows_learning_rate():
    quality = _quality()
    base = dict(config="cbow-ns", raw_words_per_s=1e5, effective_words_per_s=8e4, train_seconds=10.0,
                wall_seconds=12.0, analogy=0.3, analogy_semantic=0.2, analogy_syntactic=0.4, ws353=0.6,
                simlex999=0.3, peak_rss_mb=500.0)
    records = [dict(base, tool="gensim 4.4.0 (2 workers)", tool_name="gensim", alpha=0.05, min_alpha=5e-6,
                    lr_rule="w2vjax's"),
               dict(base, tool="gensim 4.4.0 (2 workers, its default lr)", tool_name="gensim-default",
                    alpha=0.025, min_alpha=0.0001, lr_rule="gensim's default", analogy=0.25),
               dict(base, tool="w2vjax (jax, cpu)", tool_name="w2vjax", alpha=0.05, min_alpha=5e-6,
                    lr_rule="w2vjax's", analogy=0.31)]
    md = quality.table(records)
    assert "| lr |" in md.splitlines()[0]
    assert md.count("0.05 → 5e-06 (w2vjax's)") >= 3 and "0.025 → 0.0001 (gensim's default)" in md
    # the ratios are taken against gensim at the same rate; gensim at its own rate is a row of its own
    assert "| cbow-ns | gensim at its default lr | 0.025 → 0.0001 (gensim's default) | 0.05 → 5e-06" in md
    assert "| cbow-ns | w2vjax default | 0.05 → 5e-06 (w2vjax's) | 0.05 → 5e-06 (w2vjax's) | 1.00x | +1.00 |" in md
    assert quality.tools_of(type("A", (), {"tools": "gensim,w2vjax", "gensim_alpha": "both"})) == \
        ["gensim", "gensim-default", "w2vjax"]
    # the studies' tables: the lr column is there even when every row has the same rate
    rows = [dict(variant=n, tool=t, lr=lr, status="not run") for n, t, lr in
            (("a", "w2vjax", 0.05), ("b", "gensim", 0.05), ("c", "gensim-default", 0.025))]
    md = markdown_table(rows)
    assert "| lr |" in md.splitlines()[0]
    assert "| a | w2vjax | 0.05 |" in md and "| c | gensim-default | 0.025 (gensim's default) |" in md


def test_seed_differences_by_welchs_t_test():
    diff, lo, hi, p = welch([1.0, 2.0, 3.0], [4.0, 5.0, 6.5])
    assert diff == pytest.approx(-19 / 6) and lo < diff < hi < 0 and p < 0.05
    diff, lo, hi, p = welch([1.0, 2.0, 3.0], [1.5, 2.5, 2.0])
    assert lo < 0 < hi and p > 0.05
