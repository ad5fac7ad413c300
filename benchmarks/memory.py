"""Peak host memory against corpus length: it must not grow with the corpus.

Writes a synthetic Zipfian corpus of N tokens to disk (lines of 1,000 words over 100,000 word
types), then in a fresh subprocess per size: prepares it (vocabulary + uint32 ids), streams one
full epoch of skip-gram/NS batches (noise words included) through the host pipeline, and runs
the jitted trainer, with the engine ``w2vjax train`` would choose for the host stream
(:func:`w2vjax.engines.choose`), on the first ``--train-calls`` batches. Reports the peak RSS
after each phase; figures: ``benchmarks/results/memory.md``.

    python benchmarks/memory.py --sizes 20000000,200000000 --dir /tmp/w2vjax-mem
    python benchmarks/memory.py --smoke   # seconds: one 200,000-token corpus, 2 training calls

Peak RSS counts file-backed pages mapped into the process too; the streamer and prepare read
the token file in bounded blocks, so neither grows with N.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_corpus(path: str, n: int, types: int = 100_000, seed: int = 0) -> None:
    if os.path.exists(path) and os.path.getsize(path) > 0:
        return
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}".encode() for i in range(types)], dtype=object)
    p = 1.0 / np.arange(1, types + 1)
    p /= p.sum()
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        done = 0
        while done < n:
            m = min(10_000_000, n - done)
            ids = rng.choice(types, size=m, p=p)
            toks = words[ids]
            lines = [b" ".join(toks[i: i + 1000]) for i in range(0, m, 1000)]
            f.write(b"\n".join(lines) + b"\n")
            done += m
    os.replace(tmp, path)


def measure(path: str, workdir: str, train_calls: int) -> dict:
    sys.path.insert(0, ROOT)
    import jax
    import numpy as np
    from w2vjax import engines, make_config, step as step_lib
    from w2vjax.prepare import prepare
    from w2vjax.stream import Streamer, StreamSpec
    out = {"start_mb": rss_mb()}
    t = time.time()
    corpus = prepare(path, workdir, min_count=5)
    out.update(prepare_s=time.time() - t, after_prepare_mb=rss_mb(), tokens=corpus.num_words,
               vocab=len(corpus.vocab))
    cfg = make_config(model="skipgram", loss="ns", epochs=1, device_windows=False)
    cfg, engine = engines.choose(cfg, jax.devices()[0].platform)
    tables = step_lib.make_tables(corpus.vocab, cfg)
    spec = StreamSpec("skipgram", cfg.data.window, cfg.batch_size, cfg.train.steps_per_call, 1, cfg.train.seed,
                      negative=cfg.model.negative)  # the host stream draws the noise words, as in training
    noise = (np.asarray(tables.noise_accept), np.asarray(tables.noise_alias))
    streamer = Streamer(corpus, corpus.vocab.keep_prob(cfg.data.sample), spec, noise=noise)
    t = time.time()
    batches = 0
    for batch, _, _ in streamer():
        batches += 1
    out.update(stream_s=time.time() - t, stream_batches=batches, after_stream_mb=rss_mb())
    state = step_lib.init_state(cfg, len(corpus.vocab))
    train = step_lib.make_train_step(cfg, tables, streamer.total_words, engine=engine)
    for i, (batch, _, _) in enumerate(streamer()):
        if i == train_calls:
            break
        state, m = train(state, batch)
    jax.block_until_ready(state.params)
    out["engine"] = engine.name
    out["after_train_mb"] = rss_mb()
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="20000000,200000000")
    p.add_argument("--dir", default="/tmp/w2vjax-mem")
    p.add_argument("--train-calls", type=int, default=20)
    p.add_argument("--out", default=None)
    p.add_argument("--smoke", action="store_true", help="a check that it runs, not a measurement: "
                   "--sizes 200000 --train-calls 2 --dir /tmp/w2vjax-mem-smoke")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.smoke:
        args.sizes, args.train_calls, args.dir = "200000", 2, os.path.join(tempfile.gettempdir(), "w2vjax-mem-smoke")
    if args.one:
        n = int(args.one)
        rec = measure(os.path.join(args.dir, f"corpus_{n}.txt"), os.path.join(args.dir, f"wd_{n}"),
                      args.train_calls)
        print("RESULT " + json.dumps(rec))
        return
    os.makedirs(args.dir, exist_ok=True)
    rows = []
    for n in map(int, args.sizes.split(",")):
        t = time.time()
        write_corpus(os.path.join(args.dir, f"corpus_{n}.txt"), n)
        print(f"# corpus of {n:,} tokens ready ({time.time() - t:.0f} s)", flush=True)
        r = subprocess.run([sys.executable, __file__, "--one", str(n), "--dir", args.dir,
                            "--train-calls", str(args.train_calls)], capture_output=True, text=True)
        line = [l for l in r.stdout.splitlines() if l.startswith("RESULT ")]
        if r.returncode or not line:
            print(r.stdout[-2000:], r.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"size {n} failed")
        rec = json.loads(line[0][7:])
        rec["n"] = n
        rows.append(rec)
        print(json.dumps(rec), flush=True)
    md = [f"Training: engine {rows[0]['engine']}, {args.train_calls} calls.", "",
          "| tokens | vocab | prepare s | peak RSS after prepare MB | stream s (1 epoch, host) "
          "| after streaming MB | after training MB |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['tokens']:,} | {r['vocab']:,} | {r['prepare_s']:.0f} | {r['after_prepare_mb']:,.0f} "
                  f"| {r['stream_s']:.0f} | {r['after_stream_mb']:,.0f} | {r['after_train_mb']:,.0f} |")
    print("\n".join(md))
    if args.out:
        with open(args.out + ".md", "w") as f:
            f.write(f"Command: `python benchmarks/memory.py {' '.join(sys.argv[1:])}`\n\n" + "\n".join(md) + "\n")
        with open(args.out + ".json", "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
