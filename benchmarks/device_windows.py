"""Device windows: how fast the host feeds the device, and what making the examples costs the step.

    python benchmarks/device_windows.py [--corpus ../shared/data/corpora/enwiki2015_text8style.zip] \
        [--batch-size 4096] [--out benchmarks/results/device_windows_cpu]
    python benchmarks/device_windows.py --smoke   # seconds: the embedded corpus, tiny calls

Part 1 (host, one core): raw words/s that the host stream (:class:`w2vjax.stream.Streamer`,
every example and its noise words made in NumPy) and the token stream of device windows
(:class:`w2vjax.windows.TokenStream`, token ids and sentence flags only) deliver, for
skip-gram/NS at the given batch size.  Part 2 (the default JAX device): the jitted train step
of the XLA engine with device windows (:func:`w2vjax.step.make_train_step` on
:class:`w2vjax.batches.TokenRows` already on the device) and, alone, the making of its examples
(:func:`w2vjax.windows.device_examples` in the same ``lax.scan``), in raw words/s, per model x
loss.  Each figure is the best of ``--repeats`` timings.  On a GPU/TPU it is the step's ceiling
(device windows are the default there); on CPU it shows what the path costs where the host
stream is the default.  Figures: ``benchmarks/results/device_windows_cpu.md`` and the
accelerator runs of ``benchmarks/accelerator.sh``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("W2VJAX_COMPILATION_CACHE", "0")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from w2vjax import sharding  # noqa: E402

sharding.one_xla_cpu_thread(True, None)  # as `w2vjax train` does on one CPU device (no-op elsewhere)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from w2vjax import make_config, step as step_lib, windows  # noqa: E402
from w2vjax.prepare import prepare  # noqa: E402
from w2vjax.stream import Streamer, StreamSpec  # noqa: E402
from w2vjax.train import default_corpus  # noqa: E402

sys.path.insert(0, HERE)
from step_profile import CONFIGS, best_of, best_step_seconds  # noqa: E402


def feed_rows(args, data, cfg, token_spec) -> list[dict]:
    """Raw words/s each host stream delivers (first ``--feed-words`` words, one core)."""
    keep = data.vocab.keep_prob(cfg.data.sample)
    tables = step_lib.make_tables(data.vocab, cfg)
    noise = (np.asarray(tables.noise_accept), np.asarray(tables.noise_alias))
    spec = StreamSpec("skipgram", cfg.data.window, cfg.batch_size, cfg.train.steps_per_call, 1, cfg.train.seed,
                      negative=cfg.model.negative)
    out = []
    for name, make in [
            ("host stream: skip-gram pairs + noise words (NumPy)",
             lambda: Streamer(data, keep, spec, noise=noise)()),
            (f"device windows: token rows {token_spec.rows} x {token_spec.row_tokens} (ids + sentence flags)",
             lambda: windows.TokenStream(data, token_spec)())]:
        def run():
            for _, _, done in make():  # (batch, next position, raw words done)
                if done >= args.feed_words:
                    return done
            return data.num_words
        words = [0]
        sec = best_of(lambda: words.__setitem__(0, run()), args.repeats)
        out.append({"what": name, "raw_words_per_s": words[0] / sec})
        print(f"# {name}: {words[0] / sec / 1e6:.1f} M raw words/s", flush=True)
    return out


def step_rows(args, data) -> list[dict]:
    rows = []
    for model, loss in CONFIGS:
        cfg = make_config(model=model, loss=loss, batch_size=args.batch_size, device_windows=True,
                          steps_per_call=args.steps_per_call, epochs=1).for_platform(jax.devices()[0].platform)
        spec = windows.token_spec(cfg, data.vocab.keep_rate(cfg.data.sample))
        shape = (spec.rows, spec.row_tokens)
        tables = step_lib.make_tables(data.vocab, cfg)
        host = [b for b, _, _ in itertools.islice(windows.TokenStream(data, spec)(), args.calls + 1)]
        batches = [jax.device_put(b) for b in host]
        words = sum(int((b.tokens >= 0).sum()) for b in host[1:])

        neg = cfg.model.negative if loss == "ns" else 0
        key = jax.random.key(0)

        @jax.jit
        def make_only(batch):
            def body(c, mb):
                ex = windows.device_examples(mb, key, tables, window=cfg.data.window, windows=cfg.windows,
                                             negative=neg)
                return c + sum(jnp.sum(v) for v in jax.tree.leaves(ex)), None  # keeps every array live
            return jax.lax.scan(body, 0.0, batch)[0]

        jax.block_until_ready(make_only(batches[0]))

        def run_make():
            for b in batches[1:]:
                r = make_only(b)
            jax.block_until_ready(r)

        t_step = best_step_seconds(cfg, tables, data, batches, args.repeats)
        t_make = best_of(run_make, args.repeats)
        rows.append({"config": f"{model}/{loss}", "batch": cfg.batch_size, "rows": shape,
                     "step_raw_words_per_s": words / t_step, "make_raw_words_per_s": words / t_make,
                     "make_share": t_make / t_step})
        print(f"# {model}/{loss} rows {shape}: step {words / t_step / 1e6:.3g} M raw words/s, "
              f"making examples alone {words / t_make / 1e6:.3g} M/s ({100 * t_make / t_step:.0f} % of the step)",
              flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=None, help="default: ../shared/data/corpora/enwiki2015_text8style.zip, "
                    "with --smoke the embedded corpus (w2vjax.train.default_corpus)")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "w2vjax_device_windows"))
    ap.add_argument("--batch-size", type=int, default=None, help="default: the platform's (4096 on GPU/TPU)")
    ap.add_argument("--steps-per-call", type=int, default=128)
    ap.add_argument("--calls", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--feed-words", type=int, default=4_000_000)
    ap.add_argument("--smoke", action="store_true", help="a check that it runs, not a measurement: the "
                    "embedded corpus, --steps-per-call 4 --calls 2 --repeats 1 --feed-words 200000")
    ap.add_argument("--out", default=None, help="write OUT.md")
    args = ap.parse_args(argv)
    if args.smoke:
        args.steps_per_call, args.calls, args.repeats, args.feed_words = 4, 2, 1, 200_000
    if args.corpus is None:
        args.corpus = default_corpus() if args.smoke else os.path.join(ROOT, "..", "shared", "data", "corpora",
                                                                       "enwiki2015_text8style.zip")
    data = prepare(args.corpus, args.workdir, 5, None, 10_000)
    cfg = make_config(model="skipgram", loss="ns", batch_size=args.batch_size, steps_per_call=args.steps_per_call,
                      epochs=1).for_platform(jax.devices()[0].platform)
    feed = feed_rows(args, data, cfg, windows.token_spec(cfg, data.vocab.keep_rate(cfg.data.sample)))
    steps = step_rows(args, data)
    dev = jax.devices()[0]
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
               f"jax {jax.__version__}, device {dev.platform} ({dev.device_kind})")
    lines = [f"Corpus `{os.path.basename(args.corpus)}` (vocabulary {len(data.vocab):,}), dim 100, window 5, "
             f"negative 5, sample 1e-3, {args.steps_per_call} updates per call; machine: {machine}; "
             f"PJRT_NPROC={os.environ.get('PJRT_NPROC')}; date {time.strftime('%Y-%m-%d')}.",
             f"Command: `python benchmarks/device_windows.py --corpus {args.corpus}"
             f"{f' --batch-size {args.batch_size}' if args.batch_size else ''} --steps-per-call {args.steps_per_call}"
             f" --calls {args.calls} --repeats {args.repeats} --feed-words {args.feed_words}"
             f"{f' --out {args.out}' if args.out else ''}`", "",
             f"| host feed, one core (skip-gram/NS, batch {cfg.batch_size}) | M raw words/s |", "|---|---|"]
    lines += [f"| {r['what']} | {r['raw_words_per_s'] / 1e6:.1f} |" for r in feed]
    lines += ["", "| step with device windows | batch (examples) | rows x tokens per update | step: M raw words/s "
                  "| making the examples alone: M raw words/s | share of the step |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['config']} | {r['batch']} | {r['rows'][0]} x {r['rows'][1]} | {r['step_raw_words_per_s'] / 1e6:.3g} "
              f"| {r['make_raw_words_per_s'] / 1e6:.3g} | {100 * r['make_share']:.0f} % |" for r in steps]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out + ".md", "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
