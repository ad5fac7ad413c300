"""A study's rows, tables and statistics: ``RESULTS/<study>/results.md`` and ``results.csv``.

``results.md``: the study's header, the table (every row states its learning rate), seed
statistics where the study has them (mean ± sample std; differences between configurations by
Welch's t-test, ``scipy.stats.ttest_ind``), the study's own notes and the plots
(:mod:`experiments.plots`).  ``results.csv``: every number of every row.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import subprocess
import time

from . import plots
from .running import GENSIM_TOOLS, Variant, config_of, run_key, run_lr

METRICS = [("analogy_total", "analogy %", 100.0), ("analogy_semantic", "sem %", 100.0),
           ("analogy_syntactic", "syn %", 100.0), ("ws353_spearman", "WS-353", 1.0),
           ("simlex999_spearman", "SimLex-999", 1.0)]
# settings shown in the table where they differ between rows (the learning rate is always shown)
SHOWN_SETTINGS = ("model", "loss", "negative", "sample", "dim", "window", "noise_exponent", "epochs",
                  "seed", "max_vocab", "min_count", "batch_size", "threads", "row_update_cap")
ALPHA = 0.05  # two-sided level of the seeds' t-tests


def collect(name: str, v: Variant, corpus: str, workroot: str) -> dict:
    """One table row: the variant's settings, its summary and evaluation (or its status)."""
    cfg = config_of(v)
    ns = cfg.model.loss == "ns"
    row = {"variant": name, "tool": v.tool, "group": v.group, "x": "" if v.x is None else v.x,
           "model": cfg.model.model, "loss": cfg.model.loss, "negative": cfg.model.negative if ns else "",
           "sample": cfg.data.sample, "dim": cfg.model.dim, "window": cfg.data.window,
           "noise_exponent": cfg.data.noise_exponent if ns else "", "epochs": cfg.train.epochs,
           "seed": cfg.train.seed, "max_vocab": cfg.data.max_vocab or "", "min_count": cfg.data.min_count,
           "lr": run_lr(v), "batch_size": cfg.batch_size if v.tool == "w2vjax" else "",
           "threads": cfg.train.threads if v.tool == "w2vjax" else "",
           "row_update_cap": cfg.row_cap if v.tool == "w2vjax" else ""}
    workdir = os.path.join(workroot, run_key(v, corpus))
    row["workdir"] = os.path.relpath(workdir, workroot)
    path = os.path.join(workdir, "summary.json")
    if v.skip:
        row["status"] = f"skipped: {v.skip}"
        return row
    if not os.path.exists(path):
        row["status"] = "not run" if not os.path.exists(workdir) else "unfinished"
        return row
    with open(path) as f:
        summ = json.load(f)
    ev = summ.get("eval", {})
    row.update(status="done", tool_version=summ.get("tool", f"w2vjax ({summ.get('platform', '')})"),
               vocab_size=summ.get("vocab_size"), raw_words_per_s=summ.get("raw_words_per_s"),
               effective_words_per_s=summ.get("effective_words_per_s"), train_seconds=summ.get("train_seconds"),
               total_seconds=summ.get("total_seconds"), final_loss=summ.get("final_loss", ""),
               mean_loss=summ.get("mean_loss", ""), analogy_answered=ev.get("analogy_answered"),
               analogy_questions=ev.get("analogy_questions"))
    row["lr"] = summ.get("alpha", row["lr"])  # gensim's summary records the rate it ran at
    resolved = summ.get("resolved") or {}  # what the run resolved its defaults to (the engine's batch)
    for k in ("batch_size", "threads", "row_update_cap"):
        if resolved.get(k) is not None and v.tool == "w2vjax":
            row[k] = resolved[k]
    for k, _, _ in METRICS:
        row[k] = ev.get(k)
    return row


def _fmt(v, scale=1.0, digits=3):
    if v is None or v == "":
        return ""
    if isinstance(v, float) and not math.isfinite(v):
        return "nan"
    if isinstance(v, (int, float)):
        return f"{v * scale:.{digits}f}"
    return str(v)


def _digits(scale: float) -> int:
    return 2 if scale == 100.0 else 3


def varying(rows: list[dict]) -> list[str]:
    """The settings that differ between rows (the table shows those)."""
    return [k for k in SHOWN_SETTINGS if len({str(r.get(k)) for r in rows}) > 1]


def lr_cell(r: dict) -> str:
    lr = r.get("lr")
    text = f"{lr:g}" if isinstance(lr, (int, float)) else str(lr or "")
    return text + (" (gensim's default)" if GENSIM_TOOLS.get(r.get("tool")) == "default" else "")


def markdown_table(rows: list[dict]) -> str:
    cols = varying(rows)
    head = (["variant", "tool"] + cols + ["lr", "raw words/s", "eff. words/s", "train s", "final loss",
                                          "analogy % (answered)", "sem %", "syn %", "WS-353", "SimLex-999", "status"])
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["variant"], r["tool"]] + [f"{r[c]:g}" if isinstance(r.get(c), float) else str(r.get(c, ""))
                                             for c in cols] + [lr_cell(r)]
        if r.get("status") == "done":
            cells += [f"{r['raw_words_per_s']:,.0f}", f"{r['effective_words_per_s']:,.0f}", f"{r['train_seconds']:.0f}",
                      _fmt(r.get("final_loss")),
                      f"{_fmt(r['analogy_total'], 100, 2)} ({r.get('analogy_answered', '')})",
                      _fmt(r["analogy_semantic"], 100, 2), _fmt(r["analogy_syntactic"], 100, 2),
                      _fmt(r["ws353_spearman"]), _fmt(r["simlex999_spearman"]), "done"]
        else:
            cells += [""] * 8 + [r["status"]]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def write_csv(rows: list[dict], path: str) -> None:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


# ----------------------------------------------------------------------------------------------
# seeds: spread and which differences are real


def _groups(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("status") == "done" and r.get("group"):
            out.setdefault(r["group"], []).append(r)
    return out


def seed_stats(rows: list[dict]) -> list[dict]:
    """Per group (one configuration over seeds): mean and sample standard deviation of each metric,
    and the values themselves (``<metric>_values``, for the t-tests)."""
    import numpy as np
    out = []
    for g, rs in _groups(rows).items():
        st = {"group": g, "n": len(rs), "seeds": ",".join(str(r["seed"]) for r in rs)}
        for k in [m[0] for m in METRICS] + ["raw_words_per_s"]:
            xs = np.asarray([r[k] for r in rs], dtype=float)
            st[k + "_values"] = xs.tolist()
            st[k + "_mean"] = float(xs.mean())
            st[k + "_std"] = float(xs.std(ddof=1)) if len(xs) > 1 else float("nan")
        out.append(st)
    return out


def welch(a: list[float], b: list[float], level: float = 0.95) -> tuple[float, float, float, float]:
    """(mean difference a - b, its confidence interval's low and high ends, two-sided p-value) by
    Welch's t-test (unequal variances); nan where either side has fewer than 2 values or no spread."""
    import numpy as np
    from scipy import stats
    diff = float(np.mean(a) - np.mean(b))
    if len(a) < 2 or len(b) < 2 or (np.std(a) == 0 and np.std(b) == 0):
        return diff, float("nan"), float("nan"), float("nan")
    t = stats.ttest_ind(a, b, equal_var=False)
    ci = t.confidence_interval(level)
    return diff, float(ci.low), float(ci.high), float(t.pvalue)


def seed_markdown(stats: list[dict], compare=None) -> str:
    """The seed table and the pairwise tests; ``compare(a, b)`` (a study's ``seed_pair``) picks the
    pairs of groups tested, default all."""
    head = ["configuration", "seeds"] + [label for _, label, _ in METRICS] + ["raw words/s"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for st in stats:
        cells = [st["group"], st["seeds"]]
        for k, _, scale in METRICS:
            d = _digits(scale)
            cells.append(f"{_fmt(st[k + '_mean'], scale, d)} ± {_fmt(st[k + '_std'], scale, d)}")
        cells.append(f"{st['raw_words_per_s_mean']:,.0f} ± {_fmt(st['raw_words_per_s_std'], 1, 0)}")
        out.append("| " + " | ".join(cells) + " |")
    pairs = []
    for i, a in enumerate(stats):
        for b in stats[i + 1:]:
            if a["n"] < 2 or b["n"] < 2 or (compare is not None and not compare(a["group"], b["group"])):
                continue
            cells = [f"{a['group']} - {b['group']}"]
            for k, _, scale in METRICS:
                diff, lo, hi, p = welch(a[k + "_values"], b[k + "_values"])
                d = _digits(scale)
                verdict = "(n/a)" if math.isnan(p) else "**real**" if p < ALPHA else "(noise)"
                cells.append(f"{diff * scale:+.{d}f} [{lo * scale:+.{d}f}, {hi * scale:+.{d}f}] "
                             f"p {p:.3f} {verdict}")
            pairs.append("| " + " | ".join(cells) + " |")
    if pairs:
        out += ["", f"Differences of means with their {100 * (1 - ALPHA):.0f} % confidence interval and p-value "
                    f"(Welch's t-test, `scipy.stats.ttest_ind(equal_var=False)`); **real** where p < {ALPHA}, "
                    "else (noise):", "",
                "| pair | " + " | ".join(label for _, label, _ in METRICS) + " |", "|" + "---|" * (len(METRICS) + 1)]
        out += pairs
    return "\n".join(out)


def noise_line(stats: list[dict]) -> str:
    """One sentence giving the seed spread of each configuration the seeds study ran."""
    done = [st for st in stats if st["n"] >= 2]
    if not done:
        return ""
    return ("Seed spread for judging differences (sample std over seeds, from the seeds study's runs in the "
            "same work dirs): " + "; ".join(
                f"{st['group']} ({st['n']} seeds) analogy ±{100 * st['analogy_total_std']:.2f} points, WS-353 "
                f"±{st['ws353_spearman_std']:.3f}, SimLex-999 ±{st['simlex999_spearman_std']:.3f}" for st in done)
            + ". A difference of less than about twice these is not established by one run per variant.")


# ----------------------------------------------------------------------------------------------
# provenance and the report


def provenance() -> str:
    """The machine, and which w2vjax trained: the commit of a pinned snapshot (its COMMIT file,
    see queue.sh) or of the repository, flagged when w2vjax/ had uncommitted changes."""
    import jax
    import w2vjax
    where = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(w2vjax.__file__)))
    commit_file = os.path.join(pkg, "COMMIT")
    if os.path.exists(commit_file):
        src = f"w2vjax snapshot of commit {open(commit_file).read().strip()[:10]}"
    else:
        git = lambda *a: subprocess.run(["git", "-C", pkg, *a], capture_output=True, text=True).stdout.strip()  # noqa: E731
        try:
            head, dirty = git("rev-parse", "HEAD"), git("status", "--porcelain", "w2vjax")
        except OSError:
            head = dirty = ""
        src = (f"w2vjax at commit {head[:10]}" + (" with uncommitted changes to w2vjax/" if dirty else "")
               if head else "w2vjax (commit unknown: no COMMIT file, not in a git checkout)")
    return f"machine: {where}; {src}, jax {jax.__version__}"


def report(study: str, module, rows: list[dict], workroot: str, outdir: str, corpus_label: str,
           noise: str = "") -> dict:
    """Write results.md, results.csv and the PNGs; returns {file: path}."""
    os.makedirs(outdir, exist_ok=True)
    files = {"md": os.path.join(outdir, "results.md"), "csv": os.path.join(outdir, "results.csv")}
    write_csv(rows, files["csv"])
    stats = seed_stats(rows) if getattr(module, "SEEDS", False) else []
    pngs = plots.write_all(rows, workroot, outdir, knobs=getattr(module, "KNOBS", False), stats=stats)
    for name, _ in pngs:
        files[name] = os.path.join(outdir, name)
    done = sum(r.get("status") == "done" for r in rows)
    run_min = sum({r["workdir"]: r.get("total_seconds") or 0 for r in rows if r.get("status") == "done"}.values()) / 60
    parts = [f"# Study `{study}`", "", (module.__doc__ or "").strip(), "",
             "## Results", "",
             f"Generated by `python -m experiments.run {study}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
             f"corpus {corpus_label}; {provenance()}. {done} of {len(rows)} variants done"
             + (f"; not run or unfinished: {', '.join(r['variant'] for r in rows if r.get('status') != 'done')}"
                if done < len(rows) else "") + f" ({run_min:.0f} min of training and evaluation in all, "
             "a run shared by several variants counted once). "
             "lr: each row's starting learning rate, decayed linearly to lr × 1e-4 (gensim rows run at "
             "w2vjax's rate; a `gensim-default` row at gensim's own alpha and min_alpha). "
             "Analogy: Google set, 3CosAdd, restricted to the 30k most frequent words (answered questions in "
             "parentheses); WS-353 / SimLex-999: Spearman. Raw words/s: in-vocabulary words before subsampling "
             "per training second; gensim's seconds cover `model.train()`, w2vjax's its training loop.", "",
             markdown_table(rows)]
    if noise:
        parts += ["", noise]
    if stats:
        parts += ["", "### Spread over seeds", "", seed_markdown(stats, getattr(module, "seed_pair", None))]
    extra = getattr(module, "notes", None)
    if extra is not None:
        parts += ["", extra(rows)]
    for name, caption in pngs:
        parts += ["", f"**{caption}**", "", f"![{caption}]({name})"]
    with open(files["md"], "w") as f:
        f.write("\n".join(parts) + "\n")
    return files
