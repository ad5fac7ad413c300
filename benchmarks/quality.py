"""w2vjax vs gensim, side by side on the same corpus, settings and machine.

Each run is a separate subprocess (so wall time includes start-up and peak RSS
is the run's own); both tools' vectors are scored by the same evaluator
(``w2vjax.evaluate``, which reproduces gensim's ``evaluate_word_analogies`` /
``evaluate_word_pairs`` numbers: see tests/test_evaluate.py).

    python benchmarks/quality.py \
        --corpus ../shared/data/corpora/enwiki2015_text8style.zip \
        --configs sg-ns,cbow-ns,sg-hs --epochs 5 --out benchmarks/results/enwiki17m

Raw words/s = in-vocabulary words before subsampling x epochs / training
seconds (word2vec.c's convention; gensim's model.train() is timed alone, as is
w2vjax's training loop); effective words/s counts the words left after
subsampling.  Prints a Markdown table and writes it with the JSON records.

Learning rate: gensim runs at w2vjax's (word2vec.c's) rate by default, 0.05 for CBOW and 0.025
for skip-gram, decayed to 1e-4 of it; gensim's own default (0.025 for both) ran CBOW at half
the rate before.  ``--gensim-alpha default`` (or ``both``, or the tool ``gensim-default``) adds
gensim at its own defaults as a separate, labelled row.  Every row states its rate (column lr).
The gensim runner is experiments/gensim_ref.py, shared with the studies.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# benchmarks/ is a folder of scripts, not a package: put the repository root on the path once, so
# that w2vjax and the one gensim runner (experiments/gensim_ref.py, shared with the studies) import
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from experiments.gensim_ref import ALPHA_RULES, run_gensim, text_file  # noqa: E402

# gensim at w2vjax's learning rate (0.05 CBOW, 0.025 skip-gram) / at gensim's own default (0.025)
GENSIM_TOOLS = {"gensim": "same", "gensim-default": "default"}
CONFIGS = {"sg-ns": ("skipgram", "ns"), "cbow-ns": ("cbow", "ns"), "sg-hs": ("skipgram", "hs"),
           "cbow-hs": ("cbow", "hs"), "sg-nce": ("skipgram", "nce"), "cbow-nce": ("cbow", "nce"),
           "sg-ssm": ("skipgram", "sampled-softmax"), "cbow-ssm": ("cbow", "sampled-softmax")}


def config_of(name: str) -> tuple[str, str, int | None]:
    """``(model, loss, k)`` of a ``--configs`` entry: a name of CONFIGS, optionally ``:K`` for its
    own number of noise words (``sg-ssm:64``; else ``--negative``)."""
    base, _, k = name.partition(":")
    if base not in CONFIGS:
        raise SystemExit(f"unknown config {base!r}; choose from {', '.join(CONFIGS)} (optionally :K)")
    return CONFIGS[base] + (int(k) if k else None,)


def run_w2vjax(args, model, loss, workdir, device_windows=None, cpu_kernel=None, threads=0, pallas=False):
    from w2vjax import make_config, sharding
    sharding.one_xla_cpu_thread(True, None)  # as `w2vjax train` does, before JAX starts
    from w2vjax.train import train_and_evaluate
    cfg = make_config(model=model, loss=loss, dim=args.dim, window=args.window, min_count=args.min_count,
                      sample=args.sample, negative=args.negative, epochs=args.epochs, seed=args.seed,
                      batch_size=args.batch_size, row_update_cap=args.row_update_cap,
                      **({"steps_per_call": args.steps_per_call} if args.steps_per_call else {}),
                      shared_negatives=args.shared_negatives or None, device_windows=device_windows,
                      cpu_kernel=cpu_kernel, threads=threads, pallas=pallas)
    s = train_and_evaluate(cfg, workdir, args.corpus, evaluate=False, progress=False)
    import jax
    nproc = f", PJRT_NPROC={os.environ['PJRT_NPROC']}" if "PJRT_NPROC" in os.environ else ""
    rows = f", device windows {s['device_rows'][0]}x{s['device_rows'][1]} tokens" if s["device_windows"] else ""
    k = s["cpu_kernel_threads"]
    mode = " Hogwild" if k > 1 else ""  # several kernel threads always run Hogwild
    step = f", CPU kernel {k} thread{'s' if k > 1 else ''}{mode}" if k else (", XLA step" if s["platform"] == "cpu" else "")
    if s["engine"] == "pallas":
        step = ", Pallas kernel" + (" emulated in XLA, programs in step" if s["platform"] == "cpu" else "")
    return {"tool": f"w2vjax (jax {jax.__version__}, {s['platform']}, batch {s.get('batch_size', cfg.batch_size)}"
                    f"{' windows' if cfg.windows else ''}{rows}{step}{nproc})",
            "train_seconds": s["train_seconds"], "raw_words_per_s": s["raw_words_per_s"],
            "effective_words_per_s": s["effective_words_per_s"], "vocab_size": s["vocab_size"],
            "vectors": os.path.join(workdir, "vectors.bin"), "final_loss": s["final_loss"],
            "alpha": cfg.lr, "min_alpha": cfg.lr * cfg.train.min_lr_ratio, "lr_rule": "w2vjax's"}


def one(args):
    """Child process: train one tool/config, evaluate, print one JSON line."""
    model, loss, k = config_of(args.config)
    args.negative = k or args.negative
    os.makedirs(args.workdir, exist_ok=True)
    t0 = time.time()
    if args.tool in GENSIM_TOOLS:
        rec = run_gensim(args.text, model, loss, args.workdir, dim=args.dim, window=args.window,
                         min_count=args.min_count, sample=args.sample, negative=args.negative,
                         workers=args.workers, seed=args.seed, epochs=args.epochs,
                         alpha_rule=GENSIM_TOOLS[args.tool])
    else:  # w2vjax: the platform's defaults; w2vjax-device: examples made on the device; w2vjax-xla: no CPU
        # kernel; w2vjax-1t: the CPU kernel on one thread (the same vectors on every run); w2vjax-pallas:
        # the Pallas engine with device windows (on CPU its XLA emulation)
        pallas = args.tool == "w2vjax-pallas"
        rec = run_w2vjax(args, model, loss, args.workdir, True if args.tool == "w2vjax-device" or pallas else None,
                         False if args.tool == "w2vjax-xla" else None, 1 if args.tool == "w2vjax-1t" else 0, pallas)
    rec["wall_seconds"] = time.time() - t0
    rec["tool_name"] = args.tool
    from w2vjax import evaluate, export
    ev = evaluate.evaluate_all(export.load_vectors(rec["vectors"]), restrict_vocab=30000)
    rec.update(config=args.config, analogy=ev["analogy_total"], analogy_semantic=ev["analogy_semantic"],
               analogy_syntactic=ev["analogy_syntactic"], ws353=ev["ws353_spearman"],
               simlex999=ev["simlex999_spearman"],
               peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print("RESULT " + json.dumps(rec), flush=True)


def lr_cell(r) -> str:
    """A row's learning rate: start -> floor (whose rule: w2vjax's, or gensim's default)."""
    if r.get("alpha") is None:
        return "not recorded"
    return f"{r['alpha']:g} → {r['min_alpha']:g} ({r['lr_rule']})"


def table(records) -> str:
    head = ("| config | tool | lr | raw words/s | effective words/s | train s | wall s | analogy (30k) | sem | syn "
            "| WS-353 | SimLex-999 | peak RSS MB |\n|" + "---|" * 13)
    rows = [head]
    for r in records:
        rows.append(f"| {r['config']} | {r['tool']} | {lr_cell(r)} | {r['raw_words_per_s']:,.0f} "
                    f"| {r['effective_words_per_s']:,.0f} "
                    f"| {r['train_seconds']:.0f} | {r['wall_seconds']:.0f} | {100 * r['analogy']:.2f} % "
                    f"| {100 * r['analogy_semantic']:.2f} | {100 * r['analogy_syntactic']:.2f} "
                    f"| {r['ws353']:.3f} | {r['simlex999']:.3f} | {r['peak_rss_mb']:,.0f} |")
    by = {}
    for r in records:
        by.setdefault(r["config"], []).append(r)
    rows.append("\n| config | run | its lr | against gensim at lr | speed ratio run/gensim (raw words/s) "
                "| analogy run - gensim (points) | WS-353 run - gensim |\n|---|---|---|---|---|---|---|")
    for cfg, runs in by.items():
        gensims = [r for r in runs if r.get("tool_name", "gensim" if r["tool"].startswith("gensim") else "")
                   in GENSIM_TOOLS]
        # the reference row: gensim at w2vjax's rate where it ran, else gensim at its own
        g = min(gensims, key=lambda r: r.get("tool_name") != "gensim", default=None)
        for j in runs:
            if g is None or j is g:
                continue
            what = ("gensim at its default lr" if j.get("tool_name") == "gensim-default" else
                    "Pallas kernel" if "Pallas kernel" in j["tool"] else
                    "device windows" if "device windows" in j["tool"] else
                    "XLA step" if "XLA step" in j["tool"] else
                    "CPU kernel, 1 thread" if "kernel 1 thread" in j["tool"] else "w2vjax default")
            rows.append(f"| {cfg} | {what} | {lr_cell(j)} | {lr_cell(g)} "
                        f"| {j['raw_words_per_s'] / g['raw_words_per_s']:.2f}x "
                        f"| {100 * (j['analogy'] - g['analogy']):+.2f} | {j['ws353'] - g['ws353']:+.3f} |")
    return "\n".join(rows)


def tools_of(args) -> list[str]:
    """``--tools`` with ``gensim`` read by ``--gensim-alpha``: same (w2vjax's rate), default
    (gensim's own, the row labelled ``gensim-default``) or both."""
    out = []
    for t in args.tools.split(","):
        names = {"same": ["gensim"], "default": ["gensim-default"],
                 "both": ["gensim", "gensim-default"]}[args.gensim_alpha] if t == "gensim" else [t]
        out += [n for n in names if n not in out]
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default=os.path.join(ROOT, "..", "shared", "data", "corpora",
                                                   "enwiki2015_text8style.zip"))
    p.add_argument("--configs", default="sg-ns,cbow-ns,sg-hs")
    p.add_argument("--tools", default="gensim,w2vjax",
                   help="any of gensim (at the learning rate --gensim-alpha says), gensim-default (gensim at "
                        "its own default learning rate), w2vjax (the platform's default data path and step), w2vjax-device "
                        "(--device-windows: examples made on the device), w2vjax-xla (--no-cpu-kernel: "
                        "the plain XLA step on CPU), w2vjax-1t (--threads 1: the CPU kernel on one thread, "
                        "the same vectors on every run), w2vjax-pallas (--pallas --device-windows: the fused GPU "
                        "kernel; on CPU its update emulated in XLA, its programs in step)")
    p.add_argument("--gensim-alpha", choices=ALPHA_RULES + ("both",), default="same",
                   help="the learning rate of the gensim tool: same (default): w2vjax's, word2vec.c's (0.05 CBOW, "
                        "0.025 skip-gram, floored at 1e-4 of it); default: gensim's own (alpha 0.025, min_alpha "
                        "0.0001, for both models), as a row labelled gensim-default; both: the two rows")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--negative", type=int, default=5)
    p.add_argument("--min-count", type=int, default=5)
    p.add_argument("--sample", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workers", type=int, default=2, help="gensim worker threads")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--row-update-cap", type=float, default=None)
    p.add_argument("--steps-per-call", type=int, default=None, help="w2vjax's micro-batches per call")
    p.add_argument("--shared-negatives", action="store_true")
    p.add_argument("--out", default=None, help="write OUT.json and OUT.md")
    # child-process arguments
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--tool", help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--text", help=argparse.SUPPRESS)
    args, _ = p.parse_known_args()
    if args.one:
        return one(args)
    tmp = tempfile.mkdtemp(prefix="w2vjax-bench-")
    text = text_file(args.corpus, tmp)
    records = []
    for cfg in args.configs.split(","):
        for tool in tools_of(args):
            if tool in GENSIM_TOOLS and config_of(cfg)[1] not in ("ns", "hs"):
                continue  # gensim has negative sampling and hierarchical softmax only
            cmd = [sys.executable, __file__, "--one", "--tool", tool, "--config", cfg, "--workdir",
                   os.path.join(tmp, f"{tool}-{cfg}"), "--text", text] + sys.argv[1:]
            print(f"# {tool} {cfg} ...", flush=True)
            out = subprocess.run(cmd, capture_output=True, text=True)
            line = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
            if out.returncode or not line:
                print(out.stdout[-2000:], out.stderr[-4000:], file=sys.stderr)
                raise SystemExit(f"{tool} {cfg} failed")
            rec = json.loads(line[0][7:])
            records.append(rec)
            print(f"#   {rec['raw_words_per_s']:,.0f} raw words/s, analogy {100 * rec['analogy']:.2f} %, "
                  f"WS-353 {rec['ws353']:.3f}", flush=True)
            write_results(args, records)  # the table so far, as each run finishes


def write_results(args, records) -> None:
    """Print the Markdown table of ``records`` and write OUT.md / OUT.json (``--out``)."""
    machine = (f"{platform.node()}: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
               f"Python {platform.python_version()}")
    md = (f"Corpus `{os.path.basename(args.corpus)}`, dim {args.dim}, window {args.window}, negative "
          f"{args.negative} (a config's :K its own), sample {args.sample}, min-count {args.min_count}, {args.epochs} epochs, "
          f"learning rate per row (lr: start → floor, and whose default); "
          f"machine: {machine}; date {time.strftime('%Y-%m-%d')}.\n"
          f"Command: `python benchmarks/quality.py {' '.join(sys.argv[1:])}`\n\n" + table(records))
    print(md)
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out + ".json", "w") as f:
            json.dump({"records": records, "machine": machine, "args": vars(args)}, f, indent=2)
        with open(args.out + ".md", "w") as f:
            f.write(md + "\n")


if __name__ == "__main__":
    main()
