"""Reference: gensim at the same settings as w2vjax, in the same table.

Skip-gram and CBOW with negative sampling (5) and hierarchical softmax, both tools, the same
corpus, vocabulary rule, dim 100, window 5, sample 1e-3, min-count 5, seed 1, learning rate
(gensim's alpha set to w2vjax's: 0.05 for CBOW, 0.025 for skip-gram; min_alpha = alpha * 1e-4),
**1 epoch** (shortened to fit a 2-core machine).  gensim runs with 2 worker threads through
``experiments/gensim_ref.py`` (the runner ``benchmarks/quality.py`` uses too); both tools' vectors
are scored by ``w2vjax.evaluate``.
The w2vjax rows are the same runs as the objectives study's ``*-sub`` rows (shared work dirs).

Command:  python -m experiments.run reference
Corpus:   ../shared/data/corpora/enwiki2015_text8style.zip (16.9 M words)
Expected runtime (2 cores, measured): about 4 min for the four gensim runs, plus the w2vjax
runs if the objectives study has not made them (about 9 min).

Last result (2026-11-22, w2vjax snapshot of commit 6d7a3d4, gensim 4.4.0; results/reference/):
w2vjax's analogy accuracy and WS-353 matched or beat gensim's at the same settings in all four
configurations (analogy % w2vjax / gensim: CBOW/NEG-5 13.88 / 13.74 (a tie, within the seed
spread), CBOW/HS 17.06 / 15.86, SG/NEG-5 16.04 / 14.63, SG/HS 22.96 / 21.46; WS-353 +0.004 to
+0.045; SimLex-999 -0.009 to +0.027), at 0.29-0.58x gensim's raw words/s
(timings taken while another job shared the 2 cores).  Runtime: 4.1 min for the four gensim runs (summed total_seconds).
"""

from .running import Variant

BASE = dict(dim=100, window=5, min_count=5, sample=1e-3, epochs=1, seed=1, eval_every=0.25)
CONFIGS = {"cbow-ns5": dict(model="cbow", loss="ns", negative=5), "cbow-hs": dict(model="cbow", loss="hs"),
           "sg-ns5": dict(model="skipgram", loss="ns", negative=5), "sg-hs": dict(model="skipgram", loss="hs")}


def variants() -> dict:
    v = {}
    for name, c in CONFIGS.items():
        for tool in ("w2vjax", "gensim"):
            v[f"{name}/{tool}"] = Variant({**BASE, **c}, tool=tool, group=name)
    smoke = dict(model="cbow", loss="ns", dim=16, min_count=2, epochs=1, seed=1)
    v["smoke"] = Variant(smoke, corpus="embedded")
    v["smoke-gensim"] = Variant(smoke, tool="gensim", corpus="embedded")
    return v


def notes(rows) -> str:
    """w2vjax - gensim per configuration."""
    by: dict = {}
    for r in rows:
        if r.get("status") == "done" and r.get("group"):
            by.setdefault(r["group"], {})[r["tool"]] = r
    out = ["### w2vjax against gensim", "",
           "| configuration | speed w2vjax/gensim (raw words/s) | analogy w2vjax - gensim (points) "
           "| WS-353 w2vjax - gensim | SimLex-999 w2vjax - gensim |", "|---|---|---|---|---|"]
    for g, pair in by.items():
        if len(pair) == 2:
            j, s = pair["w2vjax"], pair["gensim"]
            out.append(f"| {g} | {j['raw_words_per_s'] / s['raw_words_per_s']:.2f}x "
                       f"| {100 * (j['analogy_total'] - s['analogy_total']):+.2f} "
                       f"| {j['ws353_spearman'] - s['ws353_spearman']:+.3f} "
                       f"| {j['simlex999_spearman'] - s['simlex999_spearman']:+.3f} |")
    return "\n".join(out)
