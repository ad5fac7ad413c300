"""Command line: thin wrappers over the Python API.

    w2vjax train [CORPUS] --workdir DIR [--model cbow|skipgram] [--loss ns|hs|softmax] ...
    w2vjax --version
    w2vjax neighbors VECTORS WORD [WORD ...] [--negative WORD ...]
    w2vjax analogy VECTORS A B C | --positive WORD ... --negative WORD ... [--cosmul]
    w2vjax eval VECTORS [--analogies FILE] [--similarity FILE ...] [--restrict N] [--json]

The train settings' flags are generated from the config dataclasses (:mod:`w2vjax.config`):
each field is ``--kebab-name`` with its help text and default.  Bad input exits with status 2
and one line on stderr, never a traceback (set W2VJAX_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import threading
import typing

from .config import SECTIONS, Config, make_config


def _train(args) -> int:
    from . import sharding
    # jax.distributed starts no backend, so the CPU thread count can still be set after it
    several = sharding.initialize_distributed(args.coordinator, args.num_processes, args.process_id,
                                              args.distributed)
    sharding.one_xla_cpu_thread(not several, args.devices)
    from .train import Interrupted, format_timings, train_and_evaluate
    cfg = config_from_args(args)
    if not sharding.is_primary():  # only process 0 reports: the others' warnings only
        logging.getLogger("w2vjax").setLevel(logging.WARNING)
    try:
        summary = train_and_evaluate(cfg, args.workdir, args.corpus, evaluate=not args.no_eval,
                                     progress=not args.quiet, force=args.force,
                                     text_vectors=not args.no_text_vectors)
    except Interrupted as e:
        print(f"w2vjax: {e}", file=sys.stderr)
        return 130
    if not sharding.is_primary() or summary.get("already_finished"):  # (the log said it is finished)
        return 0
    print(f"trained {summary['raw_words']:,} words in {summary['train_seconds']:.1f} s: "
          f"{summary['raw_words_per_s']:,.0f} raw words/s, "
          f"{summary['effective_words_per_s']:,.0f} effective words/s, final loss {summary['final_loss']:.4f}")
    written = ["vectors.bin"] if args.no_text_vectors else ["vectors.txt", "vectors.bin"]
    print(f"wrote {os.path.join(args.workdir, written[0])}" + "".join(f" and {w}" for w in written[1:]))
    if args.verbose:
        print(format_timings(summary["timings"]))
    if "eval" in summary:
        from . import export, evaluate
        vectors = export.load_vectors(os.path.join(args.workdir, "vectors.bin"))
        probes = [w for w in ("king", "france", "computer", "three", "river", "good") if w in vectors]
        for w in probes[:5]:
            near = ", ".join(f"{n} {s:.2f}" for n, s in vectors.most_similar(w, topn=6))
            print(f"  {w:>10}: {near}")
        print(evaluate.format_report(summary["eval"]))
    return 0


def _load_keyed(path):
    from .model import KeyedVectors
    return KeyedVectors.load_word2vec_format(path)


def _print_ranked(pairs) -> None:
    for n, s in pairs:
        print(f"  {n}\t{s:.4f}")


def _neighbors(args) -> int:
    vectors = _load_keyed(args.vectors)
    if args.negative:  # one query: the words are its positive terms
        print(" + ".join(args.words) + "".join(f" - {w}" for w in args.negative) + ":")
        _print_ranked(vectors.most_similar(positive=args.words, negative=args.negative, topn=args.topn))
        return 0
    for w in args.words:
        print(w + ":")
        _print_ranked(vectors.most_similar(w, topn=args.topn))
    return 0


def _analogy(args) -> int:
    vectors = _load_keyed(args.vectors)
    if args.positive or args.negative:
        if args.words:
            raise ValueError("give A B C or --positive/--negative words, not both")
        pos, neg = args.positive or [], args.negative or []
    elif len(args.words) == 3:  # a is to b as c is to ?: b + c - a
        pos, neg = [args.words[1], args.words[2]], [args.words[0]]
    else:
        raise ValueError(f"analogy takes three words A B C (or --positive/--negative), got {len(args.words)}")
    query = vectors.most_similar_cosmul if args.cosmul else vectors.most_similar
    for n, s in query(positive=pos, negative=neg, topn=args.topn):
        print(f"{n}\t{s:.4f}")
    return 0


def _eval(args) -> int:
    import json
    from . import evaluate, export
    vectors = export.load_vectors(args.vectors)
    similarity = None
    if args.similarity:
        similarity = {os.path.splitext(os.path.basename(p))[0]: p for p in args.similarity}
    result = evaluate.evaluate_all(vectors, analogies=args.analogies, similarity=similarity,
                                   restrict_vocab=args.restrict_vocab)
    print(json.dumps(result, indent=2) if args.json else evaluate.format_report(result))
    return 0


class _Parser(argparse.ArgumentParser):
    """Usage errors (an unknown flag, ``--dim x``) are one line, like every other error."""

    def error(self, message):
        self.exit(2, f"w2vjax: error: {message} (see {self.prog} --help)\n")


def _setting_fields():
    """(section, field) for every config field, in declaration order."""
    for section, klass in SECTIONS.items():
        for f in dataclasses.fields(klass):
            yield section, f


def config_from_args(args) -> Config:
    """The validated Config of parsed ``train`` arguments (each field's flag has its name as dest)."""
    return make_config(**{f.name: getattr(args, f.name) for _, f in _setting_fields()})


def _add_setting(parser, f, kind) -> None:
    """One generated flag: ``--kebab-name`` (or ``metadata["flag"]``), dest the field's name,
    help the field's with its default."""
    meta = f.metadata
    flag = meta["flag"] or "--" + f.name.replace("_", "-")
    shown = meta["default_help"]
    kw: dict = {"dest": f.name, "default": f.default}
    if kind is bool and f.default is None:  # three-way: on, off, or decided by the run
        kw["action"] = argparse.BooleanOptionalAction
    elif kind is bool:  # the flag flips the default
        if f.default and not meta["flag"]:
            raise TypeError(f"{f.name}: a bool setting that defaults to True needs a flag naming its opposite")
        kw["action"] = "store_false" if f.default else "store_true"
        shown = shown or "off"
    else:
        kw["type"] = kind
        kw["metavar"] = {int: "N", float: "X", str: "FILE"}.get(kind, f.name.upper())
        if meta["choices"]:
            kw["choices"], kw["metavar"] = meta["choices"], None
    if shown is None:
        shown = f.default
    kw["help"] = f"{meta['help']} (default: {shown})".replace("%", "%%")
    parser.add_argument(flag, **kw)


def _add_settings(groups) -> None:
    hints = {section: typing.get_type_hints(klass) for section, klass in SECTIONS.items()}
    for section, f in _setting_fields():
        kind = hints[section][f.name]
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        kind = args[0] if args else kind  # Optional[int] -> int
        _add_setting(groups[f.metadata["group"] or section], f, kind)


def _version() -> str:
    from . import __version__
    return __version__


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="w2vjax", description="word2vec in JAX: skip-gram and CBOW with "
                "negative sampling, hierarchical softmax or full softmax.")
    p.add_argument("--version", action="version", version=f"w2vjax {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train vectors on a corpus (default: the embedded text8 sample)")
    t.add_argument("corpus", nargs="?", default=None,
                   help="text, .gz, .bz2 or .zip with one text file; omitted: embedded 2.1M-word text8 sample")
    t.add_argument("--workdir", default="w2vjax-run", help="output directory (default: %(default)s)")
    t.add_argument("--force", action="store_true",
                   help="discard checkpoints of a run with other settings in --workdir and start over")
    t.add_argument("--no-eval", action="store_true", help="skip the evaluation after training")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--no-text-vectors", action="store_true",
                   help="write vectors.bin only, not vectors.txt (the text format is the slow one to write)")
    t.add_argument("--verbose", action="store_true",
                   help="print where the run's wall time went (also in summary.json's timings) and "
                   "debug messages")
    groups = {section: t.add_argument_group(f"{section} settings ({klass.__doc__.rstrip('.').lower()})")
              for section, klass in SECTIONS.items()}
    g = groups["devices"] = t.add_argument_group("devices and processes")
    _add_settings(groups)
    g.add_argument("--coordinator", default=None,
                   help="HOST:PORT of process 0 for a multi-process run (or JAX_COORDINATOR_ADDRESS)")
    g.add_argument("--num-processes", type=int, default=None, help="processes in the run (or JAX_NUM_PROCESSES)")
    g.add_argument("--process-id", type=int, default=None, help="this process, 0..N-1 (or JAX_PROCESS_ID)")
    g.add_argument("--distributed", action="store_true",
                   help="let jax.distributed detect the processes (Cloud TPU pods, SLURM, Open MPI, k8s)")
    t.set_defaults(func=_train)

    n = sub.add_parser("neighbors", help="nearest neighbours of words (with --negative: of one combined query)")
    n.add_argument("vectors")
    n.add_argument("words", nargs="+", help="words (with --negative: the query's positive words)")
    n.add_argument("--negative", nargs="+", default=None, metavar="WORD", help="words to subtract (gensim's negative=)")
    n.add_argument("--topn", type=int, default=10, help="neighbours shown (default: %(default)s)")
    n.set_defaults(func=_neighbors)

    a = sub.add_parser("analogy", help="a is to b as c is to ? (3CosAdd; --cosmul: 3CosMul)")
    a.add_argument("vectors")
    a.add_argument("words", nargs="*", metavar="A B C", help="three words: the answer is near B - A + C")
    a.add_argument("--positive", nargs="+", default=None, metavar="WORD", help="words to add (instead of A B C)")
    a.add_argument("--negative", nargs="+", default=None, metavar="WORD", help="words to subtract")
    a.add_argument("--cosmul", action="store_true", help="rank by 3CosMul (Levy and Goldberg 2014)")
    a.add_argument("--topn", type=int, default=5, help="answers shown (default: %(default)s)")
    a.set_defaults(func=_analogy)

    e = sub.add_parser("eval", help="analogy accuracy and word-similarity correlations")
    e.add_argument("vectors")
    e.add_argument("--analogies", default=None, metavar="FILE",
                   help="questions-words file (default: the Google set)")
    e.add_argument("--similarity", action="append", default=None, metavar="FILE",
                   help="word-pair similarity file, repeatable (default: WS-353 and SimLex-999)")
    e.add_argument("--restrict", "--restrict-vocab", dest="restrict_vocab", type=int, default=30000, metavar="N",
                   help="analogy candidates: the N most frequent words (default: %(default)s)")
    e.add_argument("--json", action="store_true", help="print the results as JSON")
    e.set_defaults(func=_eval)
    return p


class _Print(logging.Handler):
    """The CLI's messages as they always were: the text alone on stdout, looked up at each
    message (so that what rich's live bar puts there, or a test's capture, gets it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stdout, flush=True)
        except Exception:
            self.handleError(record)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    # SIGTERM is an interrupt like SIGINT from the start, not only in the training loop (which
    # saves a checkpoint on either): one line and exit 130, never a silent 143 during prepare
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if on_main else None
    try:
        return _main(argv)
    finally:
        if on_main:
            signal.signal(signal.SIGTERM, previous)


def _main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if not os.environ.get("W2VJAX_DEBUG"):
        # Orbax reports a failed background save through absl's logger, with tracebacks; the
        # error itself reaches us and is printed as one line.
        logging.getLogger("absl").setLevel(logging.CRITICAL)
        # ... and its unawaited write tasks through asyncio's ("Task exception was never retrieved")
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    # w2vjax's messages (logging.getLogger("w2vjax")) printed; --verbose adds the debug ones.
    # (--quiet turns the bar off, not the messages: scripts and tests read them.)
    logger, handler = logging.getLogger("w2vjax"), _Print()
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if getattr(args, "verbose", False) else logging.INFO)
    logger.propagate = False  # printed once, whatever handlers the root logger has
    try:
        return _run(args)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _run(args) -> int:
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
