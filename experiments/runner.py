"""Run a study's variants, resume finished ones, and write its tables and plots.

Work dirs.  Every run lives in ``WORKDIR/<tool>-<model>-<loss>-<hash>``, where the hash covers
the tool, the corpus and the settings that determine the vectors (``Config.identity()``); so
the same run requested by two studies (the knobs' baseline is the objectives' CBOW/NS run and
the seeds' seed 1) is trained once, and a finished run (``summary.json`` present) is never
trained again: rerunning a study only runs what is missing, and an interrupted w2vjax run
resumes from its checkpoint.  The hash covers every identity field, except fields added to w2vjax
after the committed runs while they are at their default (``ADDED_LATER``), so the current code
still finds those runs.  The prepared corpus (token ids, vocabulary) is made once per
(corpus, min-count, max-vocab) under ``WORKDIR/_prepared`` and hard-linked into each run.

Reports.  ``RESULTS/<study>/`` receives ``results.md`` (the study's header, the table, seed
statistics where a study has them, the plots), ``results.csv`` (every number of every row)
and PNG plots: quality and training loss against training words (from ``metrics.jsonl``,
periodic evaluation via ``eval_every``), raw words/s and final quality per variant, and for
studies whose variants carry ``group``/``x`` one panel per knob.
"""

from __future__ import annotations

import csv
import dataclasses
import fnmatch
import hashlib
import importlib
import json
import math
import os
import platform
import shutil
import time
import traceback
import types
from typing import Any, Callable, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_CORPUS = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "corpora", "enwiki2015_text8style.zip"))
DEFAULT_WORKDIR = os.path.join(HERE, "work")
DEFAULT_RESULTS = os.path.join(HERE, "results")
# settings that change how a run is carried out, not its vectors (kept out of the run's key)
RUNTIME = ("eval_every", "keep", "checkpoint_minutes", "checkpoint_every", "log_every_s", "prefetch")
METRICS = [("analogy_total", "analogy %", 100.0), ("analogy_semantic", "sem %", 100.0),
           ("analogy_syntactic", "syn %", 100.0), ("ws353_spearman", "WS-353", 1.0),
           ("simlex999_spearman", "SimLex-999", 1.0)]
SHOWN_SETTINGS = ("model", "loss", "negative", "sample", "dim", "window", "noise_exponent", "epochs",
                  "seed", "max_vocab", "min_count", "lr", "batch_size")


@dataclasses.dataclass(frozen=True)
class Variant:
    """One named run of a study.

    ``settings``: flat w2vjax settings (any field of :func:`w2vjax.make_config`).
    ``tool``: ``"w2vjax"`` or ``"gensim"`` (gensim at the same settings, via benchmarks/quality.py).
    ``group``/``x``: variants sharing a group are one knob's sweep (plotted against ``x``) or,
    in the seeds study, one configuration's seeds (aggregated).
    ``corpus``: a corpus for this variant alone (``--corpus`` overrides it).
    """
    settings: dict
    tool: str = "w2vjax"
    group: str = ""
    x: Any = None
    corpus: Optional[str] = None
    skip: str = ""  # a reason not to run it (too slow here, ...): listed in the table with the reason, never run


def is_smoke(name: str) -> bool:
    return name == "smoke" or name.startswith("smoke-")


def load_study(name: str) -> types.ModuleType:
    try:
        return importlib.import_module(f"experiments.{name}")
    except ModuleNotFoundError as e:
        from . import STUDIES
        raise SystemExit(f"no study {name!r} (studies: {', '.join(STUDIES)})") from e


def select(variants: dict, patterns: Optional[str]) -> list[str]:
    """Variant names matching a comma-separated list of names or globs; default: all but smoke."""
    if not patterns:
        return [n for n in variants if not is_smoke(n)]
    names = []
    for pat in patterns.split(","):
        hit = [n for n in variants if fnmatch.fnmatchcase(n, pat.strip())]
        if not hit:
            raise SystemExit(f"no variant matches {pat!r}; variants: {', '.join(variants)}")
        names += [n for n in hit if n not in names]
    return names


def config_of(v: Variant):
    from w2vjax import make_config
    return make_config(**v.settings)


ADDED_LATER = (("train", "data_shards", 0), ("train", "host_prep", None), ("train", "device_windows", None))


def run_key(v: Variant, corpus: str) -> str:
    cfg = config_of(v)
    ident = cfg.identity()
    # settings added to w2vjax after the committed runs: left out of the key while at their
    # default, so those runs' work dirs keep their names (and a new default field never
    # renames every run)
    for section, field, default in ADDED_LATER:
        if ident.get(section, {}).get(field, default) == default:
            ident.get(section, {}).pop(field, None)
    if v.tool == "gensim":  # gensim ignores w2vjax-only knobs: key on what it uses
        ident = gensim_settings(cfg)
    st = os.stat(corpus)
    blob = json.dumps({"tool": v.tool, "corpus": os.path.realpath(corpus), "bytes": st.st_size,
                       "config": ident}, sort_keys=True)
    h = hashlib.sha1(blob.encode()).hexdigest()[:10]
    return f"{v.tool}-{cfg.model.model}-{cfg.model.loss}-{h}"


def gensim_settings(cfg) -> dict:
    if cfg.model.loss == "softmax":
        raise ValueError("gensim has no full softmax")
    return {"model": cfg.model.model, "loss": cfg.model.loss, "dim": cfg.model.dim, "window": cfg.data.window,
            "min_count": cfg.data.min_count, "max_vocab": cfg.data.max_vocab, "sample": cfg.data.sample,
            "negative": cfg.model.negative if cfg.model.loss == "ns" else 0,
            "noise_exponent": cfg.data.noise_exponent, "epochs": cfg.train.epochs, "seed": cfg.train.seed,
            "lr": cfg.lr}


def _link_prepared(corpus: str, cfg, workroot: str, workdir: str, log) -> None:
    """Prepare the corpus once per (corpus, min-count, max-vocab) and hard-link it into ``workdir``."""
    from w2vjax import prepare_corpus
    d = cfg.data
    key = hashlib.sha1(json.dumps([os.path.realpath(corpus), d.min_count, d.max_vocab,
                                   d.max_sentence_length]).encode()).hexdigest()[:10]
    cache = os.path.join(workroot, "_prepared", key)
    if not os.path.exists(os.path.join(cache, "data", "prepare.json")):
        log(f"preparing {corpus} into {cache}")
        prepare_corpus(corpus, cache, d.min_count, d.max_vocab, d.max_sentence_length)
    if os.path.exists(os.path.join(workdir, "data", "prepare.json")):
        return
    os.makedirs(os.path.join(workdir, "data"), exist_ok=True)
    for rel in ["vocab.txt"] + [os.path.join("data", f) for f in os.listdir(os.path.join(cache, "data"))]:
        src, dst = os.path.join(cache, rel), os.path.join(workdir, rel)
        if os.path.isfile(src) and not os.path.exists(dst):
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)


def _load_benchmark():
    """benchmarks/quality.py (not a package): its gensim runner is the one gensim runner."""
    spec = importlib.util.spec_from_file_location("w2vjax_bench_quality", os.path.join(ROOT, "benchmarks", "quality.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run_gensim(v: Variant, corpus: str, workroot: str, workdir: str) -> dict:
    from w2vjax import evaluate, export
    bench = _load_benchmark()
    g = gensim_settings(config_of(v))
    if g["max_vocab"] is not None:
        raise ValueError("max_vocab is not passed to gensim here")
    textdir = os.path.join(workroot, "_text")
    os.makedirs(textdir, exist_ok=True)
    args = types.SimpleNamespace(text=bench.text_file(corpus, textdir), dim=g["dim"], window=g["window"],
                                 min_count=g["min_count"], sample=g["sample"], negative=g["negative"],
                                 workers=2, seed=g["seed"], epochs=g["epochs"], alpha=g["lr"],
                                 ns_exponent=g["noise_exponent"])
    t0 = time.time()
    rec = bench.run_gensim(args, g["model"], g["loss"], workdir)
    vecs = export.load_vectors(rec["vectors"])
    summary = {k: rec[k] for k in ("tool", "train_seconds", "raw_words_per_s", "effective_words_per_s", "vocab_size")}
    summary.update(model=g["model"], loss=g["loss"], epochs=g["epochs"], settings=g,
                   eval=evaluate.evaluate_all(vecs), total_seconds=time.time() - t0)
    with open(os.path.join(workdir, "summary.json.tmp"), "w") as f:
        json.dump(summary, f, indent=2)
    os.replace(os.path.join(workdir, "summary.json.tmp"), os.path.join(workdir, "summary.json"))
    return summary


def run_variant(name: str, v: Variant, corpus: str, workroot: str, log=print) -> tuple[str, str]:
    """Train (or resume, or skip if finished) one variant; returns (status, work dir)."""
    workdir = os.path.join(workroot, run_key(v, corpus))
    if os.path.exists(os.path.join(workdir, "summary.json")):
        return "done", workdir
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "variant.json"), "w") as f:
        json.dump({"name": name, "tool": v.tool, "settings": v.settings, "corpus": corpus}, f, indent=2)
    t0 = time.time()
    log(f"[{time.strftime('%H:%M:%S')}] {name}: {v.tool} {v.settings} -> {workdir}")
    if v.tool == "gensim":
        _run_gensim(v, corpus, workroot, workdir)
    else:
        from w2vjax.train import train_and_evaluate
        cfg = config_of(v)
        _link_prepared(corpus, cfg, workroot, workdir, log)
        # keep one checkpoint (disk); resuming needs only the latest.  One CPU kernel thread
        # unless a variant says otherwise: a rerun of a study gives the same vectors (the
        # default Hogwild threads would not)
        from w2vjax import make_config
        cfg = make_config(**{"threads": 1, **v.settings, "keep": 1})
        train_and_evaluate(cfg, workdir, corpus, evaluate=True, progress=False, log=lambda *a: None)
    log(f"[{time.strftime('%H:%M:%S')}] {name}: finished in {time.time() - t0:.0f} s")
    return "ran", workdir


def _read_jsonl(path: str) -> list[dict]:
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass  # a line cut by a kill
    return out


def collect(name: str, v: Variant, corpus: str, workroot: str) -> dict:
    """One table row: the variant's settings, its summary and evaluation (or its status)."""
    cfg = config_of(v)
    s = {"model": cfg.model.model, "loss": cfg.model.loss, "negative": cfg.model.negative if cfg.model.loss == "ns" else "",
         "sample": cfg.data.sample, "dim": cfg.model.dim, "window": cfg.data.window,
         "noise_exponent": cfg.data.noise_exponent if cfg.model.loss == "ns" else "", "epochs": cfg.train.epochs,
         "seed": cfg.train.seed, "max_vocab": cfg.data.max_vocab or "", "min_count": cfg.data.min_count,
         "lr": cfg.lr, "batch_size": cfg.batch_size if v.tool == "w2vjax" else ""}
    row = {"variant": name, "tool": v.tool, "group": v.group, "x": "" if v.x is None else v.x, **s}
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
    for k, _, _ in METRICS:
        row[k] = ev.get(k)
    return row


def curves(row: dict, workroot: str) -> tuple[list, list]:
    """(loss points [(words, loss)], eval points [(words, eval dict)]) of a finished run; the
    final evaluation (summary.json) closes the eval curve at the run's last word."""
    wd = os.path.join(workroot, row["workdir"])
    recs = _read_jsonl(os.path.join(wd, "metrics.jsonl"))
    loss = [(r["words"], r["loss"]) for r in recs if "loss" in r]
    evals = [(r["words"], r["eval"]) for r in recs if "eval" in r]
    if evals and row.get("status") == "done":
        with open(os.path.join(wd, "summary.json")) as f:
            summ = json.load(f)
        if "raw_words" in summ and "eval" in summ:
            evals.append((summ["raw_words"], summ["eval"]))
    return loss, evals


# ----------------------------------------------------------------------------------------------
# tables


def _fmt(v, scale=1.0, digits=3):
    if v is None or v == "":
        return ""
    if isinstance(v, float) and not math.isfinite(v):
        return "nan"
    if isinstance(v, (int, float)):
        return f"{v * scale:.{digits}f}"
    return str(v)


def varying(rows: list[dict]) -> list[str]:
    """The settings that differ between rows (the table shows those)."""
    return [k for k in SHOWN_SETTINGS if len({str(r.get(k)) for r in rows}) > 1]


def markdown_table(rows: list[dict]) -> str:
    cols = varying(rows)
    head = (["variant", "tool"] + cols + ["raw words/s", "eff. words/s", "train s", "final loss",
                                          "analogy % (answered)", "sem %", "syn %", "WS-353", "SimLex-999", "status"])
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        done = r.get("status") == "done"
        cells = [r["variant"], r["tool"]] + [f"{r[c]:g}" if isinstance(r.get(c), float) else str(r.get(c, ""))
                                             for c in cols]
        if done:
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
        for r in rows:
            w.writerow(r)


def _mean_std(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else float("nan")
    return m, sd


def seed_stats(rows: list[dict]) -> list[dict]:
    """Per group (one configuration over seeds): mean and sample standard deviation of each metric."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("status") == "done" and r.get("group"):
            groups.setdefault(r["group"], []).append(r)
    out = []
    for g, rs in groups.items():
        st = {"group": g, "n": len(rs), "seeds": ",".join(str(r["seed"]) for r in rs)}
        for k in [m[0] for m in METRICS] + ["raw_words_per_s"]:
            st[k + "_mean"], st[k + "_std"] = _mean_std([r[k] for r in rs])
        out.append(st)
    return out


def seed_markdown(stats: list[dict]) -> str:
    head = ["configuration", "seeds"] + [label for _, label, _ in METRICS] + ["raw words/s"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for st in stats:
        cells = [st["group"], st["seeds"]]
        for k, _, scale in METRICS:
            d = 2 if scale == 100.0 else 3
            cells.append(f"{_fmt(st[k + '_mean'], scale, d)} ± {_fmt(st[k + '_std'], scale, d)}")
        cells.append(f"{st['raw_words_per_s_mean']:,.0f} ± {_fmt(st['raw_words_per_s_std'], 1, 0)}")
        out.append("| " + " | ".join(cells) + " |")
    # which pairwise differences are larger than their noise (difference of means > 2 standard errors)
    pairs = []
    for i, a in enumerate(stats):
        for b in stats[i + 1:]:
            if a["n"] < 2 or b["n"] < 2:
                continue
            cells = [f"{a['group']} - {b['group']}"]
            for k, _, scale in METRICS:
                diff = a[k + "_mean"] - b[k + "_mean"]
                se = math.sqrt(a[k + "_std"] ** 2 / a["n"] + b[k + "_std"] ** 2 / b["n"])
                d = 2 if scale == 100.0 else 3
                cells.append(f"{diff * scale:+.{d}f} {'**real**' if abs(diff) > 2 * se else '(noise)'}")
            pairs.append("| " + " | ".join(cells) + " |")
    if pairs:
        out += ["", "Differences of means; **real** where |difference| > 2 standard errors "
                    "(sqrt(s_a²/n_a + s_b²/n_b)), else (noise):", "",
                "| pair | " + " | ".join(label for _, label, _ in METRICS) + " |", "|" + "---|" * (len(METRICS) + 1)]
        out += pairs
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------
# plots


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_bars(rows: list[dict], path: str) -> None:
    """Raw words/s and final quality per variant (words/s against objective)."""
    plt = _plt()
    rows = [r for r in rows if r.get("status") == "done"]
    labels = [r["variant"] for r in rows]
    panels = [("raw_words_per_s", "raw words/s", 1.0), ("analogy_total", "analogy accuracy %", 100.0),
              ("ws353_spearman", "WS-353 Spearman", 1.0), ("simlex999_spearman", "SimLex-999 Spearman", 1.0)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 0.35 * len(rows) + 1.5), sharey=True)
    colors = ["tab:orange" if r["tool"] == "gensim" else "tab:blue" for r in rows]
    for ax, (k, title, scale) in zip(axes, panels):
        ax.barh(range(len(rows)), [(r.get(k) or 0) * scale for r in rows], color=colors)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(rows)), labels, fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle("per variant (orange: gensim)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_curves(rows: list[dict], workroot: str, path_loss: str, path_quality: str) -> tuple[bool, bool]:
    """Training loss and periodic evaluation against training words, one line per variant;
    loss panels per objective (their scales differ)."""
    plt = _plt()
    data = [(r, *curves(r, workroot)) for r in rows if r.get("status") == "done" and r["tool"] == "w2vjax"]
    wrote = [False, False]
    with_loss = [(r, l) for r, l, _ in data if l]
    if with_loss:
        losses = sorted({r["loss"] for r, _ in with_loss})
        fig, axes = plt.subplots(1, len(losses), figsize=(5.5 * len(losses), 4), squeeze=False)
        for ax, loss in zip(axes[0], losses):
            for r, pts in with_loss:
                if r["loss"] == loss:
                    ax.plot([p[0] / 1e6 for p in pts], [p[1] for p in pts], label=r["variant"], lw=1)
            ax.set_title(f"training loss: {loss}", fontsize=10)
            ax.set_xlabel("raw training words (M)")
            ax.set_ylabel("loss per example")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(path_loss, dpi=80)
        plt.close(fig)
        wrote[0] = True
    with_eval = [(r, e) for r, _, e in data if len(e) >= 2]
    if with_eval:
        panels = [("analogy_total", "analogy accuracy %", 100.0), ("ws353_spearman", "WS-353 Spearman", 1.0),
                  ("simlex999_spearman", "SimLex-999 Spearman", 1.0)]
        fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
        for ax, (k, title, scale) in zip(axes, panels):
            for r, pts in with_eval:
                ax.plot([p[0] / 1e6 for p in pts], [p[1].get(k, float("nan")) * scale for p in pts],
                        marker="o", ms=3, lw=1, label=r["variant"])
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("raw training words (M)")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(path_quality, dpi=80)
        plt.close(fig)
        wrote[1] = True
    return wrote[0], wrote[1]


def plot_knobs(rows: list[dict], path: str) -> bool:
    """One column per knob (group), one row per metric, variants along the knob's values."""
    plt = _plt()
    groups: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("status") == "done" and r.get("group") and r.get("x") != "":
            groups.setdefault(r["group"], []).append(r)
    if not groups:
        return False
    panels = [("analogy_total", "analogy %", 100.0), ("ws353_spearman", "WS-353", 1.0),
              ("simlex999_spearman", "SimLex-999", 1.0), ("raw_words_per_s", "raw words/s", 1.0)]
    fig, axes = plt.subplots(len(panels), len(groups), figsize=(3.2 * len(groups), 2.4 * len(panels)), squeeze=False)
    for j, (g, rs) in enumerate(groups.items()):
        rs = sorted(rs, key=lambda r: float(r["x"]) if _isnum(r["x"]) else str(r["x"]))
        for i, (k, label, scale) in enumerate(panels):
            ax = axes[i][j]
            ax.plot(range(len(rs)), [(r.get(k) or float("nan")) * scale for r in rs], marker="o")
            ax.set_xticks(range(len(rs)), [str(r["x"]) for r in rs], fontsize=8)
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel(label)
            if i == 0:
                ax.set_title(g, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True


def plot_seeds(stats: list[dict], path: str) -> bool:
    plt = _plt()
    if not stats:
        return False
    panels = [("analogy_total", "analogy %", 100.0), ("ws353_spearman", "WS-353", 1.0),
              ("simlex999_spearman", "SimLex-999", 1.0)]
    fig, axes = plt.subplots(1, 3, figsize=(13, 0.4 * len(stats) + 2), sharey=True)
    for ax, (k, label, scale) in zip(axes, panels):
        ax.errorbar([st[k + "_mean"] * scale for st in stats], range(len(stats)),
                    xerr=[(st[k + "_std"] if math.isfinite(st[k + "_std"]) else 0) * scale for st in stats],
                    fmt="o", capsize=4)
        ax.set_title(f"{label}: mean ± std over seeds", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_yticks(range(len(stats)), [st["group"] for st in stats], fontsize=8)
    axes[0].invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True


def _jax_version() -> str:
    import jax
    return jax.__version__


def _isnum(x) -> bool:
    try:
        float(x)
        return True
    except (TypeError, ValueError):
        return False


# ----------------------------------------------------------------------------------------------
# the study


def machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")


def w2vjax_source() -> str:
    """Which w2vjax trained: the commit of a pinned snapshot (its COMMIT file, see queue.sh) or of
    the repository, flagged when w2vjax/ had uncommitted changes."""
    import subprocess
    import w2vjax
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(w2vjax.__file__)))
    commit_file = os.path.join(pkg, "COMMIT")
    if os.path.exists(commit_file):
        return f"w2vjax snapshot of commit {open(commit_file).read().strip()[:10]}"
    try:
        head = subprocess.run(["git", "-C", pkg, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", pkg, "status", "--porcelain", "w2vjax"], capture_output=True,
                               text=True).stdout.strip()
        return f"w2vjax at commit {head[:10]}" + (" with uncommitted changes to w2vjax/" if dirty else "")
    except OSError:
        return "w2vjax (commit unknown)"


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


def report(study: str, module, rows: list[dict], workroot: str, outdir: str, corpus_label: str,
           noise: str = "") -> dict:
    """Write results.md, results.csv and the PNGs; returns {file: path}."""
    os.makedirs(outdir, exist_ok=True)
    files = {"md": os.path.join(outdir, "results.md"), "csv": os.path.join(outdir, "results.csv")}
    write_csv(rows, files["csv"])
    pngs = []
    if any(r.get("status") == "done" for r in rows):
        plot_bars(rows, os.path.join(outdir, "per_variant.png"))
        pngs.append(("per_variant.png", "Raw words/s and final quality per variant"))
        lw, qw = plot_curves(rows, workroot, os.path.join(outdir, "loss_vs_words.png"),
                             os.path.join(outdir, "quality_vs_words.png"))
        if lw:
            pngs.append(("loss_vs_words.png", "Training loss against training words (from metrics.jsonl)"))
        if qw:
            pngs.append(("quality_vs_words.png", "Periodic evaluation against training words (eval_every)"))
        if getattr(module, "KNOBS", False) and plot_knobs(rows, os.path.join(outdir, "knobs.png")):
            pngs.append(("knobs.png", "Each knob's sweep (one column per knob)"))
    stats = seed_stats(rows) if getattr(module, "SEEDS", False) else []
    if stats and plot_seeds(stats, os.path.join(outdir, "seeds.png")):
        pngs.append(("seeds.png", "Mean ± standard deviation over seeds"))
    for name, _ in pngs:
        files[name] = os.path.join(outdir, name)
    done = sum(r.get("status") == "done" for r in rows)
    run_min = sum({r["workdir"]: r.get("total_seconds") or 0 for r in rows if r.get("status") == "done"}.values()) / 60
    parts = [f"# Study `{study}`", "", (module.__doc__ or "").strip(), "",
             "## Results", "",
             f"Generated by `python -m experiments.run {study}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
             f"corpus {corpus_label}; machine: {machine()}; {w2vjax_source()}, jax {_jax_version()}. {done} of {len(rows)} variants done"
             + (f"; not run or unfinished: {', '.join(r['variant'] for r in rows if r.get('status') != 'done')}"
                if done < len(rows) else "") + f" ({run_min:.0f} min of training and evaluation in all, "
             "a run shared by several variants counted once). "
             "Analogy: Google set, 3CosAdd, restricted to the 30k most frequent words (answered questions in "
             "parentheses); WS-353 / SimLex-999: Spearman. Raw words/s: in-vocabulary words before subsampling "
             "per training second; gensim's seconds cover `model.train()`, w2vjax's its training loop.", "",
             markdown_table(rows)]
    if noise:
        parts += ["", noise]
    if stats:
        parts += ["", "### Spread over seeds", "", seed_markdown(stats)]
    extra = getattr(module, "notes", None)
    if extra is not None:
        parts += ["", extra(rows)]
    for name, caption in pngs:
        parts += ["", f"**{caption}**", "", f"![{caption}]({name})"]
    with open(files["md"], "w") as f:
        f.write("\n".join(parts) + "\n")
    return files


def resolve_corpus(corpus: Optional[str], v: Variant, module) -> str:
    """``--corpus`` if given, else the variant's, else the study's, else the 17 M-word corpus;
    ``"embedded"`` is the 2.1 M-word text8 sample shipped in the package."""
    c = corpus or v.corpus or getattr(module, "CORPUS", None) or DEFAULT_CORPUS
    if c == "embedded":
        from w2vjax.train import default_corpus
        c = default_corpus()
    if not os.path.exists(c):
        raise SystemExit(f"corpus {c!r} not found; pass --corpus PATH")
    return c


def run_study(study: str, variants: Optional[str] = None, corpus: Optional[str] = None,
              workdir: Optional[str] = None, results: Optional[str] = None, log: Callable = print,
              report_only: bool = False) -> dict:
    """Run the selected variants of ``study`` (all but smoke by default), resuming finished ones,
    then write the report over every variant.  Returns ``{"rows", "files", "statuses"}``."""
    module = load_study(study)
    allv: dict[str, Variant] = module.variants()
    names = select(allv, variants)
    workroot = os.path.abspath(workdir or DEFAULT_WORKDIR)
    outdir = os.path.join(results or DEFAULT_RESULTS, study)
    os.makedirs(workroot, exist_ok=True)

    def corpus_of(v: Variant) -> str:
        return resolve_corpus(corpus, v, module)

    statuses = {}
    if not report_only:
        for n in names:
            v = allv[n]
            if v.skip:
                statuses[n] = "skipped"
                continue
            try:
                statuses[n], _ = run_variant(n, v, corpus_of(v), workroot, log=log)
            except KeyboardInterrupt:
                raise
            except Exception as e:  # one failed variant does not stop the study
                statuses[n] = f"failed: {type(e).__name__}: {e}"
                log(f"{n}: FAILED\n{traceback.format_exc()}")
    shown = [n for n in allv if not is_smoke(n) or n in names]
    rows = [collect(n, allv[n], corpus_of(allv[n]), workroot) for n in shown]
    for r in rows:
        if str(statuses.get(r["variant"], "")).startswith("failed"):
            r["status"] = statuses[r["variant"]]
    label = ", ".join(sorted({f"`{os.path.basename(corpus_of(allv[n]))}`" for n in shown}))
    noise = ""
    if study != "seeds" and not getattr(module, "SEEDS", False):
        try:
            seeds = load_study("seeds")
            srows = [collect(n, v, corpus_of(v), workroot) for n, v in seeds.variants().items() if not is_smoke(n)]
            noise = noise_line(seed_stats(srows))
        except (Exception, SystemExit):  # the spread is a courtesy; never fail a report over it
            noise = ""
    files = report(study, module, rows, workroot, outdir, label, noise)
    return {"rows": rows, "files": files, "statuses": statuses}
