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
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CONFIGS = {"sg-ns": ("skipgram", "ns"), "cbow-ns": ("cbow", "ns"), "sg-hs": ("skipgram", "hs"),
           "cbow-hs": ("cbow", "hs")}


def text_file(corpus: str, tmp: str) -> str:
    """gensim reads plain text: unpack a one-member zip once."""
    if not corpus.endswith(".zip"):
        return corpus
    with zipfile.ZipFile(corpus) as z:
        name = z.namelist()[0]
        out = os.path.join(tmp, os.path.basename(name) + ".txt")
        if not os.path.exists(out):
            with z.open(name) as src, open(out, "wb") as dst:
                while chunk := src.read(1 << 24):
                    dst.write(chunk)
    return out


def run_gensim(args, model, loss, workdir):
    """Train gensim with ``args``' settings (text, dim, window, min_count, sample, negative,
    workers, seed, epochs; optional alpha (min_alpha = alpha * 1e-4, as w2vjax) and ns_exponent,
    else gensim's defaults) and save ``workdir/vectors.bin``.  Also used by experiments/."""
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence
    t0 = time.time()
    sentences = LineSentence(args.text, max_sentence_length=10000)
    extra = {}
    if getattr(args, "alpha", None) is not None:
        extra.update(alpha=args.alpha, min_alpha=args.alpha * 1e-4)
    if getattr(args, "ns_exponent", None) is not None:
        extra.update(ns_exponent=args.ns_exponent)
    m = Word2Vec(vector_size=args.dim, window=args.window, min_count=args.min_count, sample=args.sample,
                 sg=int(model == "skipgram"), hs=int(loss == "hs"), negative=args.negative if loss == "ns" else 0,
                 workers=args.workers, seed=args.seed, epochs=args.epochs, **extra)
    m.build_vocab(sentences)
    t1 = time.time()
    effective, raw = m.train(sentences, total_examples=m.corpus_count, epochs=args.epochs)
    train_s = time.time() - t1
    in_vocab = sum(m.wv.get_vecattr(w, "count") for w in m.wv.index_to_key)
    path = os.path.join(workdir, "vectors.bin")
    m.wv.save_word2vec_format(path, binary=True)
    return {"tool": f"gensim {__import__('gensim').__version__} ({args.workers} workers)",
            "train_seconds": train_s, "raw_words_per_s": in_vocab * args.epochs / train_s,
            "effective_words_per_s": effective / train_s, "vocab_size": len(m.wv),
            "vectors": path, "startup_seconds": t1 - t0}


def run_w2vjax(args, model, loss, workdir, device_windows=None, cpu_kernel=None, threads=0):
    sys.path.insert(0, ROOT)
    from w2vjax import make_config, sharding
    sharding.one_xla_cpu_thread(True, None)  # as `w2vjax train` does, before JAX starts
    from w2vjax.train import train_and_evaluate
    cfg = make_config(model=model, loss=loss, dim=args.dim, window=args.window, min_count=args.min_count,
                      sample=args.sample, negative=args.negative, epochs=args.epochs, seed=args.seed,
                      batch_size=args.batch_size, row_update_cap=args.row_update_cap,
                      shared_negatives=args.shared_negatives or None, device_windows=device_windows,
                      cpu_kernel=cpu_kernel, threads=threads)
    s = train_and_evaluate(cfg, workdir, args.corpus, evaluate=False, progress=False, log=lambda *a: None)
    import jax
    nproc = f", PJRT_NPROC={os.environ['PJRT_NPROC']}" if "PJRT_NPROC" in os.environ else ""
    rows = f", device windows {s['device_rows'][0]}x{s['device_rows'][1]} tokens" if s["device_windows"] else ""
    k = s["cpu_kernel_threads"]
    mode = " Hogwild" if s["cpu_kernel_hogwild"] else " sharing batches" if k > 1 else ""
    step = f", CPU kernel {k} thread{'s' if k > 1 else ''}{mode}" if k else (", XLA step" if s["platform"] == "cpu" else "")
    return {"tool": f"w2vjax (jax {jax.__version__}, {s['platform']}, batch {cfg.batch_size}"
                    f"{' windows' if cfg.windows else ''}{rows}{step}{nproc})",
            "train_seconds": s["train_seconds"], "raw_words_per_s": s["raw_words_per_s"],
            "effective_words_per_s": s["effective_words_per_s"], "vocab_size": s["vocab_size"],
            "vectors": os.path.join(workdir, "vectors.bin"), "final_loss": s["final_loss"]}


def one(args):
    """Child process: train one tool/config, evaluate, print one JSON line."""
    model, loss = CONFIGS[args.config]
    os.makedirs(args.workdir, exist_ok=True)
    t0 = time.time()
    if args.tool == "gensim":
        rec = run_gensim(args, model, loss, args.workdir)
    else:  # w2vjax: the platform's defaults; w2vjax-device: examples made on the device; w2vjax-xla: no CPU
        # kernel; w2vjax-1t: the CPU kernel on one thread (the same vectors on every run)
        rec = run_w2vjax(args, model, loss, args.workdir, True if args.tool == "w2vjax-device" else None,
                         False if args.tool == "w2vjax-xla" else None, 1 if args.tool == "w2vjax-1t" else 0)
    rec["wall_seconds"] = time.time() - t0
    sys.path.insert(0, ROOT)
    from w2vjax import evaluate, export
    ev = evaluate.evaluate_all(export.load_vectors(rec["vectors"]), restrict_vocab=30000)
    rec.update(config=args.config, analogy=ev["analogy_total"], analogy_semantic=ev["analogy_semantic"],
               analogy_syntactic=ev["analogy_syntactic"], ws353=ev["ws353_spearman"],
               simlex999=ev["simlex999_spearman"],
               peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print("RESULT " + json.dumps(rec), flush=True)


def table(records) -> str:
    head = ("| config | tool | raw words/s | effective words/s | train s | wall s | analogy (30k) | sem | syn "
            "| WS-353 | SimLex-999 | peak RSS MB |\n|" + "---|" * 12)
    rows = [head]
    for r in records:
        rows.append(f"| {r['config']} | {r['tool']} | {r['raw_words_per_s']:,.0f} | {r['effective_words_per_s']:,.0f} "
                    f"| {r['train_seconds']:.0f} | {r['wall_seconds']:.0f} | {100 * r['analogy']:.2f} % "
                    f"| {100 * r['analogy_semantic']:.2f} | {100 * r['analogy_syntactic']:.2f} "
                    f"| {r['ws353']:.3f} | {r['simlex999']:.3f} | {r['peak_rss_mb']:,.0f} |")
    by = {}
    for r in records:
        by.setdefault(r["config"], []).append(r)
    rows.append("\n| config | w2vjax run | speed ratio w2vjax/gensim (raw words/s) | analogy w2vjax - gensim "
                "(points) | WS-353 w2vjax - gensim |\n|---|---|---|---|---|")
    for cfg, runs in by.items():
        g = next((r for r in runs if r["tool"].startswith("gensim")), None)
        for j in runs:
            if g is None or j is g:
                continue
            what = ("device windows" if "device windows" in j["tool"] else
                    "XLA step" if "XLA step" in j["tool"] else
                    "CPU kernel, 1 thread" if "kernel 1 thread" in j["tool"] else "default")
            rows.append(f"| {cfg} | {what} | {j['raw_words_per_s'] / g['raw_words_per_s']:.2f}x "
                        f"| {100 * (j['analogy'] - g['analogy']):+.2f} | {j['ws353'] - g['ws353']:+.3f} |")
    return "\n".join(rows)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default=os.path.join(ROOT, "..", "shared", "data", "corpora",
                                                   "enwiki2015_text8style.zip"))
    p.add_argument("--configs", default="sg-ns,cbow-ns,sg-hs")
    p.add_argument("--tools", default="gensim,w2vjax",
                   help="any of gensim, w2vjax (the platform's default data path and step), w2vjax-device "
                        "(--device-windows: examples made on the device), w2vjax-xla (--no-cpu-kernel: "
                        "the plain XLA step on CPU), w2vjax-1t (--threads 1: the CPU kernel on one thread, "
                        "the same vectors on every run)")
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
        for tool in args.tools.split(","):
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
    machine = (f"{platform.node()}: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
               f"Python {platform.python_version()}")
    md = (f"Corpus `{os.path.basename(args.corpus)}`, dim {args.dim}, window {args.window}, negative "
          f"{args.negative}, sample {args.sample}, min-count {args.min_count}, {args.epochs} epochs; "
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
