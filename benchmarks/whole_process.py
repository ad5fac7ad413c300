"""w2vjax vs gensim as whole processes: what a user waits for, start-up and saving included.

Each run is a fresh process, timed from the parent from launch to exit: gensim 4.4 (``--workers``
threads, through the one gensim runner experiments/gensim_ref.py, at w2vjax's learning rate) and
``python -m w2vjax train --no-eval`` (its platform defaults).  Both train, save their vectors and
exit; neither evaluates inside the timed process; both write word2vec's binary format only (w2vjax
with ``--no-text-vectors``; ``--text-vectors`` adds its text file).  The two tools alternate (gensim first on even
repeats, w2vjax first on odd ones) so that a change in the machine's load falls on both.  Every
w2vjax run gets a fresh work dir (nothing prepared or checkpointed is reused); its compilation
cache is the user's own (``--cold-cache``: a fresh one per run, so every run compiles).

    python benchmarks/whole_process.py --repeats 3 --out benchmarks/results/whole_process
    python benchmarks/whole_process.py --smoke        # a tiny corpus, one repeat: a check

Reported per corpus and config: the median whole-process seconds of each tool and their ratio
(gensim / w2vjax: above 1 means w2vjax is faster), the median training-loop ratio (gensim's
``model.train()`` seconds / w2vjax's ``train_seconds``), the median of w2vjax's wall-time
breakdown (``summary.json``'s ``timings``) and, outside the timing, both vectors' quality from
the same evaluator (the last repeat's).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:  # benchmarks/ is a folder of scripts: w2vjax and experiments/ import from the root
    sys.path.insert(0, ROOT)
from experiments.gensim_ref import run_gensim, text_file  # noqa: E402

DATA = os.path.join(ROOT, "..", "shared", "data", "corpora")
# name: (path, epochs, first N words or None); the two corpora and its tiny one (start-up:
# ~60 kB, the first 10,000 words of text8, where the whole run is start-up and saving)
CORPORA = {"tiny": (os.path.join(DATA, "text8_head.gz"), 1, 10_000),
           "text8head": (os.path.join(DATA, "text8_head.gz"), 3, None),
           "enwiki17m": (os.path.join(DATA, "enwiki2015_text8style.zip"), 1, None)}
CONFIGS = {"sg-ns": ("skipgram", "ns"), "cbow-ns": ("cbow", "ns"), "sg-hs": ("skipgram", "hs")}
SMOKE_WORDS = 20_000


def plain_text(corpus: str, tmp: str, words: int | None = None) -> str:
    """The corpus as one plain-text file both tools read (unpacked once, outside the timing);
    ``words``: only its first ``words`` words (the smoke corpus)."""
    if corpus.endswith(".gz"):
        out = os.path.join(tmp, os.path.basename(corpus)[:-3] + ".txt")
        with gzip.open(corpus) as src, open(out, "wb") as dst:
            while chunk := src.read(1 << 24):
                dst.write(chunk)
        corpus = out
    corpus = text_file(corpus, tmp)
    if words:
        out = os.path.join(tmp, f"head{words}.txt")
        with open(corpus, "rb") as f:
            head = f.read(words * 12).split()[:words]
        with open(out, "wb") as f:
            f.write(b" ".join(head))
        corpus = out
    return corpus


def gensim_child(args) -> None:
    """Child process: gensim trains and saves its vectors; one RESULT line (its own timings)."""
    model, loss = CONFIGS[args.config]
    rec = run_gensim(args.text, model, loss, args.workdir, dim=args.dim, window=args.window,
                     min_count=args.min_count, sample=args.sample, negative=args.negative,
                     workers=args.workers, seed=args.seed, epochs=args.epochs)
    print("RESULT " + json.dumps(rec), flush=True)


def timed(cmd: list[str], env: dict) -> tuple[float, str]:
    """Run ``cmd`` to its end; its wall seconds and stdout (exits on failure, showing why)."""
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if out.returncode:
        print(out.stdout[-2000:], out.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"failed ({out.returncode}): {' '.join(cmd)}")
    return seconds, out.stdout


def run_gensim_process(args, text: str, config: str, epochs: int, workdir: str) -> dict:
    cmd = [sys.executable, __file__, "--gensim-child", "--config", config, "--text", text, "--workdir", workdir,
           "--epochs", str(epochs)] + settings_argv(args)
    wall, stdout = timed(cmd, dict(os.environ))
    rec = json.loads([l for l in stdout.splitlines() if l.startswith("RESULT ")][-1][7:])
    return {"tool": "gensim", "wall_seconds": wall, "train_seconds": rec["train_seconds"],
            "vectors": rec["vectors"], "label": rec["tool"]}


def run_w2vjax_process(args, text: str, config: str, epochs: int, workdir: str, cache: str | None) -> dict:
    model, loss = CONFIGS[config]
    cmd = [sys.executable, "-m", "w2vjax", "train", text, "--workdir", workdir, "--no-eval", "--quiet",
           *([] if args.text_vectors else ["--no-text-vectors"]),
           "--model", model, "--loss", loss, "--epochs", str(epochs), "--dim", str(args.dim),
           "--window", str(args.window), "--negative", str(args.negative), "--min-count", str(args.min_count),
           "--sample", str(args.sample), "--seed", str(args.seed)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    if cache is not None:
        env["W2VJAX_COMPILATION_CACHE"] = cache
    wall, _ = timed(cmd, env)
    with open(os.path.join(workdir, "summary.json")) as f:
        s = json.load(f)
    return {"tool": "w2vjax", "wall_seconds": wall, "train_seconds": s["train_seconds"],
            "timings": s.get("timings", {}), "vectors": os.path.join(workdir, "vectors.bin"),
            "label": f"w2vjax {s.get('engine', '')}".strip()}


def settings_argv(args) -> list[str]:
    return ["--dim", str(args.dim), "--window", str(args.window), "--negative", str(args.negative),
            "--min-count", str(args.min_count), "--sample", str(args.sample), "--seed", str(args.seed),
            "--workers", str(args.workers)]


def quality(path: str) -> dict:
    from w2vjax import evaluate, export
    ev = evaluate.evaluate_all(export.load_vectors(path), restrict_vocab=30000)
    return {"analogy": ev["analogy_total"], "ws353": ev["ws353_spearman"], "simlex999": ev["simlex999_spearman"]}


def one_cell(args, tmp: str, corpus: str, text: str, epochs: int, config: str) -> list[dict]:
    """Every repeat of one corpus x config, the tools alternating; the last repeat's quality."""
    records = []
    for r in range(args.repeats):
        order = ("gensim", "w2vjax") if r % 2 == 0 else ("w2vjax", "gensim")
        for tool in order:
            workdir = os.path.join(tmp, f"{corpus}-{config}-{tool}-{r}")
            cache = os.path.join(workdir + "-xla") if args.cold_cache else None
            rec = (run_gensim_process(args, text, config, epochs, workdir) if tool == "gensim"
                   else run_w2vjax_process(args, text, config, epochs, workdir, cache))
            rec.update(corpus=corpus, config=config, repeat=r, epochs=epochs)
            print(f"# {corpus} {config} repeat {r} {tool}: {rec['wall_seconds']:.1f} s whole, "
                  f"{rec['train_seconds']:.1f} s training", flush=True)
            records.append(rec)
    if not args.no_quality:
        for rec in records[-2:]:
            rec.update(quality(rec["vectors"]))
    return records


def _median(records, tool, key):
    vals = [r[key] for r in records if r["tool"] == tool]
    return statistics.median(vals) if vals else float("nan")


def summarize(records: list[dict]) -> list[dict]:
    """One row per corpus x config: medians and ratios (gensim / w2vjax)."""
    rows = []
    for key in dict.fromkeys((r["corpus"], r["config"]) for r in records):
        rs = [r for r in records if (r["corpus"], r["config"]) == key]
        g_wall, j_wall = _median(rs, "gensim", "wall_seconds"), _median(rs, "w2vjax", "wall_seconds")
        g_train, j_train = _median(rs, "gensim", "train_seconds"), _median(rs, "w2vjax", "train_seconds")
        parts = [r["timings"] for r in rs if r["tool"] == "w2vjax" and r.get("timings")]
        breakdown = {k: statistics.median(p.get(k, 0.0) for p in parts) for k in (parts[0] if parts else {})}
        last = {r["tool"]: r for r in rs if "analogy" in r}
        rows.append({"corpus": key[0], "config": key[1], "repeats": len(rs) // 2,
                     "gensim_wall": g_wall, "w2vjax_wall": j_wall, "whole_ratio": g_wall / j_wall,
                     "gensim_train": g_train, "w2vjax_train": j_train, "train_ratio": g_train / j_train,
                     "w2vjax_timings": breakdown, "quality": {t: {k: r[k] for k in ("analogy", "ws353", "simlex999")}
                                                              for t, r in last.items()}})
    return rows


def table(rows: list[dict]) -> str:
    out = ["| corpus | config | repeats | gensim s | w2vjax s | whole-process ratio | gensim train s "
           "| w2vjax train s | training-loop ratio | analogy gensim / w2vjax | WS-353 gensim / w2vjax |",
           "|" + "---|" * 11]
    for r in rows:
        q = r["quality"]
        an = (f"{100 * q['gensim']['analogy']:.1f} / {100 * q['w2vjax']['analogy']:.1f} %"
              if len(q) == 2 else "-")
        ws = f"{q['gensim']['ws353']:.3f} / {q['w2vjax']['ws353']:.3f}" if len(q) == 2 else "-"
        out.append(f"| {r['corpus']} | {r['config']} | {r['repeats']} | {r['gensim_wall']:.1f} | {r['w2vjax_wall']:.1f} "
                   f"| {r['whole_ratio']:.2f}x | {r['gensim_train']:.1f} | {r['w2vjax_train']:.1f} "
                   f"| {r['train_ratio']:.2f}x | {an} | {ws} |")
    out += ["", "w2vjax's wall time (median seconds per part, summary.json `timings`):", "",
            "| corpus | config | " + " | ".join(TIMING_KEYS) + " |", "|" + "---|" * (2 + len(TIMING_KEYS))]
    for r in rows:
        t = r["w2vjax_timings"]
        out.append(f"| {r['corpus']} | {r['config']} | " + " | ".join(f"{t.get(k, 0.0):.2f}" for k in TIMING_KEYS) + " |")
    return "\n".join(out)


TIMING_KEYS = ("imports", "backend", "prepare", "setup", "first_call", "loop", "checkpoints", "vectors_to_host",
               "export_text", "export_binary", "other", "total")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpora", default="tiny,text8head,enwiki17m", help=f"any of {', '.join(CORPORA)}")
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--repeats", type=int, default=3, help="runs of each tool per corpus x config")
    p.add_argument("--smoke", action="store_true",
                   help=f"a check: the first {SMOKE_WORDS:,} words of text8, 1 epoch, 1 repeat")
    p.add_argument("--cold-cache", action="store_true", help="a fresh JAX compilation cache for every w2vjax run")
    p.add_argument("--text-vectors", action="store_true",
                   help="w2vjax also writes vectors.txt (by default both tools write the binary format only)")
    p.add_argument("--no-quality", action="store_true", help="do not evaluate the vectors (after the timing)")
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--negative", type=int, default=5)
    p.add_argument("--min-count", type=int, default=5)
    p.add_argument("--sample", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workers", type=int, default=2, help="gensim worker threads")
    p.add_argument("--out", default=None, help="write OUT.json and OUT.md")
    # child-process arguments
    p.add_argument("--gensim-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    p.add_argument("--text", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--epochs", type=int, help=argparse.SUPPRESS)
    return p.parse_args()


def main():
    args = parse_args()
    if args.gensim_child:
        return gensim_child(args)
    corpora = {"text8head-smoke": (CORPORA["text8head"][0], 1, SMOKE_WORDS)} if args.smoke else {
        c: CORPORA[c] for c in args.corpora.split(",")}
    if args.smoke:
        args.repeats = 1
    tmp = tempfile.mkdtemp(prefix="w2vjax-whole-")
    records = []
    for name, (path, epochs, words) in corpora.items():
        text = plain_text(path, tmp, words)
        for config in args.configs.split(","):
            records += one_cell(args, tmp, name, text, epochs, config)
    rows = summarize(records)
    machine = (f"{platform.node()}: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
               f"Python {platform.python_version()}")
    cache = "a cold (fresh per run)" if args.cold_cache else "w2vjax's usual (warm after its first run)"
    md = (f"Whole processes, launch to exit, median of the repeats, the tools alternating; gensim "
          f"{args.workers} workers at w2vjax's learning rate; dim {args.dim}, window {args.window}, negative "
          f"{args.negative}, sample {args.sample}, min-count {args.min_count}; ratio = gensim s / w2vjax s; "
          f"{cache} compilation cache; machine: {machine}; "
          f"date {time.strftime('%Y-%m-%d')}.\n"
          f"Command: `python benchmarks/whole_process.py {' '.join(sys.argv[1:])}`\n\n" + table(rows))
    print(md)
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out + ".json", "w") as f:
            json.dump({"rows": rows, "records": records, "machine": machine, "args": vars(args)}, f, indent=2)
        with open(args.out + ".md", "w") as f:
            f.write(md + "\n")


if __name__ == "__main__":
    main()
