"""Command line: thin wrappers over the Python API.

    w2vjax train [CORPUS] --workdir DIR [--model cbow|skipgram] [--loss ns|hs|softmax] ...
    w2vjax neighbors VECTORS WORD [WORD ...]
    w2vjax analogy VECTORS A B C
    w2vjax eval VECTORS

Bad input exits with status 2 and one line on stderr, never a traceback (set
W2VJAX_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .config import make_config


def _train(args) -> int:
    from . import sharding
    # jax.distributed starts no backend, so the CPU thread count can still be set after it
    several = sharding.initialize_distributed(args.coordinator, args.num_processes, args.process_id,
                                              args.distributed)
    sharding.one_xla_cpu_thread(not several, args.devices)
    from .train import Interrupted, train_and_evaluate
    cfg = make_config(model=args.model, loss=args.loss, dim=args.dim, window=args.window,
                      negative=args.negative, min_count=args.min_count, max_vocab=args.max_vocab,
                      sample=args.sample, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                      steps_per_call=args.steps_per_call, seed=args.seed,
                      noise_exponent=args.noise_exponent, cbow_mean=not args.cbow_sum,
                      shared_negatives=args.shared_negatives or None,
                      checkpoint_every=args.checkpoint_every, checkpoint_minutes=args.checkpoint_minutes,
                      keep=args.keep, row_update_cap=args.row_update_cap,
                      max_sentence_length=args.max_sentence_length, eval_every=args.eval_every,
                      devices=args.devices, shard_tables=args.shard_tables or None,
                      data_shards=args.data_shards, host_prep=args.host_prep,
                      device_windows=args.device_windows, cpu_kernel=args.cpu_kernel,
                      threads=args.threads, hogwild=args.hogwild)
    try:
        summary = train_and_evaluate(cfg, args.workdir, args.corpus, evaluate=not args.no_eval,
                                     progress=not args.quiet, force=args.force)
    except Interrupted as e:
        print(f"w2vjax: {e}", file=sys.stderr)
        return 130
    if not sharding.is_primary():  # only process 0 reports and writes
        return 0
    print(f"trained {summary['raw_words']:,} words in {summary['train_seconds']:.1f} s: "
          f"{summary['raw_words_per_s']:,.0f} raw words/s, "
          f"{summary['effective_words_per_s']:,.0f} effective words/s, final loss {summary['final_loss']:.4f}")
    print(f"wrote {os.path.join(args.workdir, 'vectors.txt')} and vectors.bin")
    if "eval" in summary:
        from . import export, evaluate
        vectors = export.load_vectors(os.path.join(args.workdir, "vectors.bin"))
        probes = [w for w in ("king", "france", "computer", "three", "river", "good") if w in vectors]
        for w in probes[:5]:
            near = ", ".join(f"{n} {s:.2f}" for n, s in vectors.most_similar(w, topn=6))
            print(f"  {w:>10}: {near}")
        print(evaluate.format_report(summary["eval"]))
    return 0


def _neighbors(args) -> int:
    from . import export
    vectors = export.load_vectors(args.vectors)
    for w in args.words:
        print(w + ":")
        for n, s in vectors.most_similar(w, topn=args.topn):
            print(f"  {n}\t{s:.4f}")
    return 0


def _analogy(args) -> int:
    from . import export
    vectors = export.load_vectors(args.vectors)
    for n, s in vectors.analogy(args.a, args.b, args.c, topn=args.topn):
        print(f"{n}\t{s:.4f}")
    return 0


def _eval(args) -> int:
    from . import evaluate, export
    vectors = export.load_vectors(args.vectors)
    result = evaluate.evaluate_all(vectors, analogies=args.analogies, restrict_vocab=args.restrict_vocab)
    print(evaluate.format_report(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="w2vjax", description="word2vec in JAX: skip-gram and CBOW with "
                                "negative sampling, hierarchical softmax or full softmax.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train vectors on a corpus (default: the embedded text8 sample)")
    t.add_argument("corpus", nargs="?", default=None,
                   help="text, .gz, .bz2 or .zip with one text file; omitted: embedded 2.1M-word text8 sample")
    t.add_argument("--workdir", default="w2vjax-run", help="output directory (default: %(default)s)")
    t.add_argument("--model", choices=("cbow", "skipgram"), default="cbow")
    t.add_argument("--loss", choices=("ns", "hs", "softmax"), default="ns")
    t.add_argument("--dim", type=int, default=100)
    t.add_argument("--window", type=int, default=5)
    t.add_argument("--negative", type=int, default=5)
    t.add_argument("--min-count", type=int, default=5)
    t.add_argument("--max-vocab", type=int, default=None)
    t.add_argument("--max-sentence-length", type=int, default=10000)
    t.add_argument("--sample", type=float, default=1e-3)
    t.add_argument("--noise-exponent", type=float, default=0.75)
    t.add_argument("--epochs", type=int, default=5)
    t.add_argument("--lr", type=float, default=None, help="default: 0.05 for cbow, 0.025 for skipgram")
    t.add_argument("--batch-size", type=int, default=None,
                   help="examples per SGD update (default 256, 48 center windows with --shared-negatives; "
                        "16x that on GPU/TPU)")
    t.add_argument("--shared-negatives", action="store_true",
                   help="skip-gram/ns: draw one set of negatives per center window instead of per pair "
                        "(about 1.3x faster on CPU; see README for its measured quality)")
    t.add_argument("--row-update-cap", type=float, default=None,
                   help="a row touched m times in one update gets its summed update scaled by "
                        "1/max(1, m/CAP) (default 16 * (batch/256)^(1/3): 16 at 256, 40 at 4096; "
                        "0 turns it off; see README)")
    t.add_argument("--steps-per-call", type=int, default=128, help="updates per jitted call (lax.scan)")
    t.add_argument("--cbow-sum", action="store_true", help="CBOW input is the sum, not the mean")
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--checkpoint-every", type=int, default=0,
                   help="save a checkpoint every N updates (also every --checkpoint-minutes, at each "
                        "epoch end, on SIGINT/SIGTERM and at the end); rerunning resumes from the latest")
    t.add_argument("--checkpoint-minutes", type=float, default=10.0)
    t.add_argument("--keep", type=int, default=3, help="checkpoints kept")
    t.add_argument("--force", action="store_true",
                   help="discard checkpoints of a run with other settings in --workdir and start over")
    t.add_argument("--no-eval", action="store_true", help="skip the evaluation after training")
    t.add_argument("--eval-every", type=float, default=0.0,
                   help="also evaluate every this many epochs (e.g. 0.25) into metrics.jsonl, for "
                        "quality-vs-words curves (default: 0, off)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--host-prep", action=argparse.BooleanOptionalAction, default=None,
                   help="draw noise words and count row touches on the host (default: on CPU only)")
    t.add_argument("--device-windows", action=argparse.BooleanOptionalAction, default=None,
                   help="send raw token ids and make the examples (subsampling, windows, noise words) on the "
                        "device (default: on GPU/TPU unless --data-shards is above 1)")
    t.add_argument("--cpu-kernel", action=argparse.BooleanOptionalAction, default=None,
                   help="run the negative-sampling / hierarchical-softmax update as a fused C++ kernel "
                        "(default: on a one-device CPU run, when it compiles)")
    t.add_argument("--threads", type=int, default=0,
                   help="threads of the CPU kernel (default: 0, the cores this process may use; 1 gives the "
                        "same vectors on every run)")
    t.add_argument("--hogwild", action=argparse.BooleanOptionalAction, default=None,
                   help="with several kernel threads, each updates the tables without locks, as word2vec.c's "
                        "and gensim's threads do (default); --no-hogwild: the threads share each batch by "
                        "rows, slower, the same vectors for a thread count")
    g = t.add_argument_group("devices and processes")
    g.add_argument("--devices", type=int, default=None,
                   help="devices per process to split each batch over (default: all local ones)")
    g.add_argument("--shard-tables", action="store_true",
                   help="shard both tables by rows over the devices, for vocabularies too big for one")
    g.add_argument("--data-shards", type=int, default=0,
                   help="contiguous corpus parts streamed side by side, a multiple of the processes "
                        "(default 0: one per process); fixes the data order whatever the process count")
    g.add_argument("--coordinator", default=None,
                   help="HOST:PORT of process 0 for a multi-process run (or JAX_COORDINATOR_ADDRESS)")
    g.add_argument("--num-processes", type=int, default=None, help="processes in the run (or JAX_NUM_PROCESSES)")
    g.add_argument("--process-id", type=int, default=None, help="this process, 0..N-1 (or JAX_PROCESS_ID)")
    g.add_argument("--distributed", action="store_true",
                   help="let jax.distributed detect the processes (Cloud TPU pods, SLURM, Open MPI, k8s)")
    t.set_defaults(func=_train)

    n = sub.add_parser("neighbors", help="nearest neighbours of words")
    n.add_argument("vectors")
    n.add_argument("words", nargs="+")
    n.add_argument("--topn", type=int, default=10)
    n.set_defaults(func=_neighbors)

    a = sub.add_parser("analogy", help="a is to b as c is to ? (3CosAdd)")
    a.add_argument("vectors")
    a.add_argument("a")
    a.add_argument("b")
    a.add_argument("c")
    a.add_argument("--topn", type=int, default=5)
    a.set_defaults(func=_analogy)

    e = sub.add_parser("eval", help="analogy accuracy and word-similarity correlations")
    e.add_argument("vectors")
    e.add_argument("--analogies", default=None, help="questions-words file (default: Google set)")
    e.add_argument("--restrict-vocab", type=int, default=30000)
    e.set_defaults(func=_eval)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if not os.environ.get("W2VJAX_DEBUG"):
        # Orbax reports a failed background save through absl's logger, with tracebacks; the
        # error itself reaches us and is printed as one line.
        logging.getLogger("absl").setLevel(logging.CRITICAL)
        # ... and its unawaited write tasks through asyncio's ("Task exception was never retrieved")
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("w2vjax: interrupted", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, OSError) as e:
        if os.environ.get("W2VJAX_DEBUG"):
            raise
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"w2vjax: error: {msg}", file=sys.stderr)
        return 2
    except Exception as e:  # anything else is a bug; still one line
        if os.environ.get("W2VJAX_DEBUG"):
            raise
        print(f"w2vjax: internal error: {type(e).__name__}: {e} (rerun with W2VJAX_DEBUG=1 for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
