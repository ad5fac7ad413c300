"""experiments/: every study's smoke variant through the runner, its reports, and resuming."""

import csv
import json
import os

import pytest

pytest.importorskip("matplotlib")

from experiments import STUDIES  # noqa: E402
from experiments.runner import load_study, run_key, run_study, select  # noqa: E402

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
