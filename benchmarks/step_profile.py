"""Where the CPU step's time goes: microseconds per example of the real jitted step, and of its parts.

    python benchmarks/step_profile.py [--corpus ../shared/data/corpora/text8_head.gz] [--repeats 5] \
        [--out benchmarks/results/step_profile]
    python benchmarks/step_profile.py --smoke   # seconds: the embedded corpus, 2 short calls

Part 1 times ``w2vjax.step.make_train_step`` on real batches of the corpus (the host stream's,
noise words included, streamed once and already on the device, so only the step is timed), per
model x loss, for each engine that runs on one CPU device: the XLA reference update
(``w2vjax.engines.xla``) and the fused CPU kernel (``w2vjax.engines.cpu_kernel``) on 1 thread
and on 2 Hogwild threads.  Part 2 times the pieces of a skip-gram/NS update of 256 pairs x 6
output rows x dim 100 on their own: the row gathers and scatter-adds, and the two small batched
products.  Each figure is the best of ``--repeats`` timings of ``--calls`` calls (the machine is
shared; the best is the least disturbed).  Run it with ``PJRT_NPROC=1`` (one XLA thread, as
``w2vjax train`` uses on CPU); this script sets it unless it is set.  Figures:
``benchmarks/results/step_profile.md``.

Host-prep touch counts and row-shared kernel threads are no longer timed: the trainer lost them.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("PJRT_NPROC", "1")
os.environ.setdefault("W2VJAX_COMPILATION_CACHE", "0")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from w2vjax import engines, make_config, step as step_lib  # noqa: E402
from w2vjax.engines import cpu_kernel  # noqa: E402
from w2vjax.prepare import prepare  # noqa: E402
from w2vjax.stream import Streamer, StreamSpec  # noqa: E402
from w2vjax.train import default_corpus  # noqa: E402

CONFIGS = [("skipgram", "ns"), ("cbow", "ns"), ("skipgram", "hs")]
KERNEL_THREADS = (1, 2)  # the CPU kernel's threads timed (2: Hogwild)


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def best_step_seconds(cfg, tables, data, batches, repeats: int, engine: engines.Engine = engines.Engine()) -> float:
    """Best of ``repeats`` timings of the jitted train step of ``engine`` (default: the XLA
    engine) over ``batches[1:]`` (already on the device; ``batches[0]`` compiles it), the state
    carried from call to call as in training."""
    fn = step_lib.make_train_step(cfg, tables, data.num_words, engine=engine)
    state, _ = fn(step_lib.init_state(cfg, len(data.vocab)), batches[0])
    jax.block_until_ready(state)
    holder = [state]

    def run():
        s = holder[0]
        for b in batches[1:]:
            s, _ = fn(s, b)
        jax.block_until_ready(s)
        holder[0] = s

    return best_of(run, repeats)


def host_batches(cfg, data, tables, calls: int) -> list:
    """The first ``calls`` batches of the host stream, as ``w2vjax.train.make_stream`` makes it
    (noise words drawn for negative sampling)."""
    ns = cfg.model.loss == "ns"
    spec = StreamSpec(cfg.model.model, cfg.data.window, cfg.batch_size, cfg.train.steps_per_call, 1, cfg.train.seed,
                      windows=cfg.windows, negative=cfg.model.negative if ns else 0)
    noise = (np.asarray(tables.noise_accept), np.asarray(tables.noise_alias)) if ns else None
    stream = Streamer(data, data.vocab.keep_prob(cfg.data.sample), spec, noise=noise)()
    return [b for b, _, _ in itertools.islice(stream, calls)]


def step_rows(args, data) -> list[dict]:
    rows = []
    ok, why = cpu_kernel.available()
    if not ok:
        print(f"# the CPU kernel is not available ({why}): XLA engine only", flush=True)
    for model, loss in CONFIGS:
        cfg = make_config(model=model, loss=loss, steps_per_call=args.steps_per_call).validate()
        tables = step_lib.make_tables(data.vocab, cfg)
        host = host_batches(cfg, data, tables, args.calls + 1)
        batches = [jax.device_put(b) for b in host]
        examples = sum(float(b.mask.sum()) for b in host[1:])
        unit = "window" if cfg.windows else "pair"
        runs = [engines.Engine()] + ([engines.cpu_kernel_engine(t) for t in KERNEL_THREADS] if ok else [])
        for engine in runs:
            sec = best_step_seconds(cfg, tables, data, batches, args.repeats, engine)
            rows.append({"config": f"{model}/{loss}", "unit": unit, "engine": engine.name,
                         "kernel": engine.threads, "us_per_example": sec / examples * 1e6})
            print(f"# {model}/{loss} {_update_name(rows[-1])}: {rows[-1]['us_per_example']:.3f} us per {unit}",
                  flush=True)
    return rows


def _update_name(r: dict) -> str:
    t = r["kernel"]
    return f"CPU kernel, {t} thread{'s, Hogwild' if t > 1 else ''}" if r["engine"] == "cpu_kernel" else "XLA"


def part_rows(args) -> list[dict]:
    v, d, b, j, s = 22541, 100, 256, 6, args.steps_per_call
    rng = np.random.default_rng(0)
    p = 1.0 / np.arange(1, v + 1)
    p /= p.sum()
    ids = jnp.asarray(rng.choice(v, (s, b * j), p=p).astype(np.int32))
    upd = jnp.asarray(rng.normal(size=(b * j, d)).astype(np.float32))
    table = jnp.asarray(rng.normal(size=(v, d)).astype(np.float32))
    h = jnp.asarray(rng.normal(size=(s, b, d)).astype(np.float32))
    w = jnp.asarray(rng.normal(size=(s, b, j, d)).astype(np.float32))

    def rows_body(t, i):
        return t.at[i].add(t[i] * 1e-3 + upd, mode="promise_in_bounds"), None

    def products(carry, x):
        hh, ww = x
        logit = jnp.einsum("bd,bjd->bj", hh, ww)
        return carry + jnp.einsum("bj,bjd->bd", jax.nn.sigmoid(logit), ww), None

    f_rows = jax.jit(lambda t, i: jax.lax.scan(rows_body, t, i)[0], donate_argnums=0)
    f_prod = jax.jit(lambda hh, ww: jax.lax.scan(products, jnp.zeros((b, d)), (hh, ww))[0])
    holder = [f_rows(table + 0, ids)]
    jax.block_until_ready(holder[0])
    jax.block_until_ready(f_prod(h, w))

    def run_rows():
        t = holder[0]
        for _ in range(args.calls):
            t = f_rows(t, ids)
        jax.block_until_ready(t)
        holder[0] = t

    def run_prod():
        for _ in range(args.calls):
            r = f_prod(h, w)
        jax.block_until_ready(r)

    pairs = s * b * args.calls
    return [{"part": f"gather + scatter-add of {j} rows of {d} floats (one table)",
             "us_per_pair": best_of(run_rows, args.repeats) / pairs * 1e6},
            {"part": f"the two batched products [{b}, {j}, {d}] (logits, input-row gradient)",
             "us_per_pair": best_of(run_prod, args.repeats) / pairs * 1e6}]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=None, help="default: ../shared/data/corpora/text8_head.gz, "
                    "with --smoke the embedded corpus (w2vjax.train.default_corpus)")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "w2vjax_step_profile"))
    ap.add_argument("--calls", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps-per-call", type=int, default=128)
    ap.add_argument("--smoke", action="store_true", help="a check that it runs, not a measurement: "
                    "the embedded corpus, --calls 2 --repeats 1 --steps-per-call 8")
    ap.add_argument("--out", default=None, help="write OUT.md")
    args = ap.parse_args(argv)
    if args.smoke:
        args.calls, args.repeats, args.steps_per_call = 2, 1, 8
    if args.corpus is None:
        args.corpus = default_corpus() if args.smoke else os.path.join(ROOT, "..", "shared", "data", "corpora",
                                                                       "text8_head.gz")
    data = prepare(args.corpus, args.workdir, 5, None, 10_000)
    steps = step_rows(args, data)
    parts = part_rows(args)
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
               f"jax {jax.__version__}")
    cfg = make_config(steps_per_call=args.steps_per_call)
    lines = [f"Corpus `{os.path.basename(args.corpus)}` (vocabulary {len(data.vocab):,}), defaults (dim "
             f"{cfg.model.dim}, window {cfg.data.window}, negative {cfg.model.negative}, batch {cfg.batch_size} x "
             f"{args.steps_per_call} updates per call); machine: {machine}; "
             f"PJRT_NPROC={os.environ.get('PJRT_NPROC')}; date {time.strftime('%Y-%m-%d')}.",
             f"Command: `python benchmarks/step_profile.py --corpus {args.corpus} --calls {args.calls} "
             f"--repeats {args.repeats} --steps-per-call {args.steps_per_call}"
             f"{f' --out {args.out}' if args.out else ''}`", "",
             "The host stream draws the noise words; every engine takes the same batches.", "",
             "| step | update (engine) | µs per example (device) |", "|---|---|---|"]
    lines += [f"| {r['config']} ({r['unit']}s) | {_update_name(r)} | {r['us_per_example']:.3f} |" for r in steps]
    lines += ["", "| part of a skip-gram/NS update (256 pairs) | µs per pair |", "|---|---|"]
    lines += [f"| {r['part']} | {r['us_per_pair']:.3f} |" for r in parts]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out + ".md", "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
