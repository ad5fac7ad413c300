"""Knobs: one setting at a time around CBOW / negative sampling (w2vjax's default model,
the fastest on CPU).

dim {50, 100, 200, 300}, window {2, 5, 10}, negatives {2, 5, 10, 25}, sample {0, 1e-3, 1e-4,
1e-5}, noise exponent {0, 0.5, 0.75, 1}, epochs {1, 3, 5, 10}; everything else at the
baseline dim 100, window 5, 5 negatives, sample 1e-3, noise exponent 0.75, min-count 5, lr
0.05, seed 1, **1 epoch** (shortened from word2vec's 5 to fit a 2-core machine; only the epochs
knob trains longer).  The baseline appears once per knob but is one run (shared work dir, also
the objectives study's ``cbow-ns5-sub``).  Differences smaller than the seed spread of
``cbow-ns5`` (see ../seeds/results.md) are noise.

Command:  python -m experiments.run knobs
Corpus:   ../shared/data/corpora/enwiki2015_text8style.zip (16.9 M words)
Expected runtime (2 cores, measured with another job on the cores): 25 min for the 14 one-epoch
runs beyond the baseline, 6.5 min for epochs 3 and 5, 8 min for epochs 10.

Last result (2026-11-22, w2vjax snapshot of commit 6d7a3d4; results/knobs/; 1 epoch; seed spread
of the baseline: analogy ±0.10 points, WS-353 ±0.007, SimLex-999 ±0.008):
  baseline (dim 100, window 5, 5 negatives, sample 1e-3, noise 0.75): analogy 13.88 %, WS-353 0.490.
  dim 50/100/200/300: analogy 12.68/13.88/13.75/13.63, WS-353 0.480/0.490/0.491/0.490 (flat above 100
    after one epoch).
  window 2/5/10: analogy 12.86/13.88/12.66, WS-353 0.444/0.490/0.519 (wider windows: more topical).
  negatives 2/5/10/25: analogy 8.68/13.88/15.76/16.37, WS-353 0.438/0.490/0.508/0.511, SimLex
    0.197/0.220/0.245/0.255 (more negatives help throughout, at a cost in speed).
  sample 0/1e-3/1e-4/1e-5: analogy 11.83/13.88/7.93/0.85, WS-353 0.453/0.490/0.468/0.217 (at one
    epoch on 17 M words, 1e-4 and 1e-5 drop too many words; SimLex peaks at 1e-4: 0.243).
  noise exponent 0/0.5/0.75/1: analogy 1.86/10.56/13.88/13.51, WS-353 0.259/0.439/0.490/0.509
    (uniform noise fails; 0.75 and 1 are close).
  epochs 1/3/5/10: analogy 13.88/29.81/34.13/38.86, WS-353 0.490/0.608/0.644/0.649, SimLex
    0.220/0.260/0.276/0.292 (the 5-epoch run reproduces the README's quality table exactly:
    34.13 %, 0.644).
Raw words/s in this study were measured while another job shared the 2 cores: compare speeds
only within a row's own run, not between rows.
"""

from .running import Variant

KNOBS = True  # one plot column per group
BASE = dict(model="cbow", loss="ns", dim=100, window=5, negative=5, sample=1e-3, noise_exponent=0.75,
            min_count=5, epochs=1, seed=1, eval_every=0.25)
SWEEPS = {"dim": ("dim", [50, 100, 200, 300]), "window": ("window", [2, 5, 10]),
          "negative": ("negative", [2, 5, 10, 25]), "sample": ("sample", [0.0, 1e-3, 1e-4, 1e-5]),
          "noise": ("noise_exponent", [0.0, 0.5, 0.75, 1.0]), "epochs": ("epochs", [1, 3, 5, 10])}


def variants() -> dict:
    v = {}
    for group, (key, values) in SWEEPS.items():
        for x in values:
            # longer runs are evaluated once per epoch (eval_every is not part of a run's identity)
            extra = {"eval_every": 1.0} if group == "epochs" and x > 1 else {}
            v[f"{group}-{x:g}"] = Variant({**BASE, key: x, **extra}, group=group, x=x)
    smoke = dict(model="cbow", loss="ns", dim=16, min_count=2, epochs=1, seed=1)
    v["smoke"] = Variant(smoke, group="smoke-dim", x=16, corpus="embedded")
    v["smoke-dim8"] = Variant({**smoke, "dim": 8}, group="smoke-dim", x=8, corpus="embedded")
    return v


def notes(rows) -> str:
    """Best value of each knob by each metric (computed from the rows above)."""
    out = ["### Best value per knob", "", "| knob | values run | best by analogy | best by WS-353 | best by SimLex-999 |",
           "|---|---|---|---|---|"]
    for group in SWEEPS:
        rs = [r for r in rows if r.get("group") == group and r.get("status") == "done"]
        if not rs:
            continue
        best = [max(rs, key=lambda r: r[k]) for k in ("analogy_total", "ws353_spearman", "simlex999_spearman")]
        values = ", ".join(f"{r['x']:g}" for r in rs)
        out.append(f"| {group} | {values} | {best[0]['x']:g} "
                   f"({100 * best[0]['analogy_total']:.2f} %) | {best[1]['x']:g} ({best[1]['ws353_spearman']:.3f}) "
                   f"| {best[2]['x']:g} ({best[2]['simlex999_spearman']:.3f}) |")
    return "\n".join(out)
