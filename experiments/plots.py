"""The studies' PNG plots (matplotlib, Agg): per variant, against training words, per knob, per seed.

:func:`write_all` writes the ones a study's rows allow and returns ``[(file name, caption)]`` for
``results.md``.
"""

from __future__ import annotations

import json
import math
import os

PER_VARIANT = [("raw_words_per_s", "raw words/s", 1.0), ("analogy_total", "analogy accuracy %", 100.0),
               ("ws353_spearman", "WS-353 Spearman", 1.0), ("simlex999_spearman", "SimLex-999 Spearman", 1.0)]
QUALITY = PER_VARIANT[1:]


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(plt, fig, path: str) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


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


def _isnum(x) -> bool:
    try:
        float(x)
        return True
    except (TypeError, ValueError):
        return False


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


def plot_bars(rows: list[dict], path: str) -> None:
    """Raw words/s and final quality per variant (words/s against objective)."""
    plt = _plt()
    rows = [r for r in rows if r.get("status") == "done"]
    fig, axes = plt.subplots(1, len(PER_VARIANT), figsize=(4 * len(PER_VARIANT), 0.35 * len(rows) + 1.5), sharey=True)
    colors = ["tab:blue" if r["tool"] == "w2vjax" else "tab:orange" for r in rows]
    for ax, (k, title, scale) in zip(axes, PER_VARIANT):
        ax.barh(range(len(rows)), [(r.get(k) or 0) * scale for r in rows], color=colors)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(rows)), [r["variant"] for r in rows], fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle("per variant (orange: gensim)", fontsize=10)
    _save(plt, fig, path)


def plot_loss(data: list, path: str) -> bool:
    """Training loss against training words, one panel per objective (their scales differ)."""
    with_loss = [(r, l) for r, l, _ in data if l]
    if not with_loss:
        return False
    plt = _plt()
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
    _save(plt, fig, path)
    return True


def plot_quality(data: list, path: str) -> bool:
    """The periodic evaluation (``eval_every``) against training words, one line per variant."""
    with_eval = [(r, e) for r, _, e in data if len(e) >= 2]
    if not with_eval:
        return False
    plt = _plt()
    fig, axes = plt.subplots(1, len(QUALITY), figsize=(16, 4.5))
    for ax, (k, title, scale) in zip(axes, QUALITY):
        for r, pts in with_eval:
            ax.plot([p[0] / 1e6 for p in pts], [p[1].get(k, float("nan")) * scale for p in pts],
                    marker="o", ms=3, lw=1, label=r["variant"])
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("raw training words (M)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6)
    _save(plt, fig, path)
    return True


def plot_knobs(rows: list[dict], path: str) -> bool:
    """One column per knob (group), one row per metric, variants along the knob's values."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("status") == "done" and r.get("group") and r.get("x") != "":
            groups.setdefault(r["group"], []).append(r)
    if not groups:
        return False
    plt = _plt()
    panels = QUALITY + PER_VARIANT[:1]
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
    _save(plt, fig, path)
    return True


def plot_seeds(stats: list[dict], path: str) -> bool:
    """Mean ± sample standard deviation over seeds, one row per configuration."""
    if not stats:
        return False
    plt = _plt()
    fig, axes = plt.subplots(1, len(QUALITY), figsize=(13, 0.4 * len(stats) + 2), sharey=True)
    for ax, (k, label, scale) in zip(axes, QUALITY):
        ax.errorbar([st[k + "_mean"] * scale for st in stats], range(len(stats)),
                    xerr=[(st[k + "_std"] if math.isfinite(st[k + "_std"]) else 0) * scale for st in stats],
                    fmt="o", capsize=4)
        ax.set_title(f"{label}: mean ± std over seeds", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_yticks(range(len(stats)), [st["group"] for st in stats], fontsize=8)
    axes[0].invert_yaxis()
    _save(plt, fig, path)
    return True


def write_all(rows: list[dict], workroot: str, outdir: str, knobs: bool = False, stats=()) -> list[tuple[str, str]]:
    """Every plot the rows allow, into ``outdir``; returns ``[(file name, caption)]``."""
    out = []
    if any(r.get("status") == "done" for r in rows):
        plot_bars(rows, os.path.join(outdir, "per_variant.png"))
        out.append(("per_variant.png", "Raw words/s and final quality per variant"))
        data = [(r, *curves(r, workroot)) for r in rows if r.get("status") == "done" and r["tool"] == "w2vjax"]
        if plot_loss(data, os.path.join(outdir, "loss_vs_words.png")):
            out.append(("loss_vs_words.png", "Training loss against training words (from metrics.jsonl)"))
        if plot_quality(data, os.path.join(outdir, "quality_vs_words.png")):
            out.append(("quality_vs_words.png", "Periodic evaluation against training words (eval_every)"))
        if knobs and plot_knobs(rows, os.path.join(outdir, "knobs.png")):
            out.append(("knobs.png", "Each knob's sweep (one column per knob)"))
    if stats and plot_seeds(list(stats), os.path.join(outdir, "seeds.png")):
        out.append(("seeds.png", "Mean ± standard deviation over seeds"))
    return out
