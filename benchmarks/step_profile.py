"""Where the CPU step's time goes: microseconds per example of the real jitted step, and of its parts.

    python benchmarks/step_profile.py [--corpus ../shared/data/corpora/text8_head.gz] [--repeats 5] \
        [--out benchmarks/results/step_profile]

Part 1 times ``w2vjax.step.make_train_step`` on real batches of the corpus (streamed once,
already on the device, so only the step is timed), per model x loss, with the row-update cap's
touch counts made on the host (``host_prep``, the CPU default) and on the device, and with the
host's noise words through the fused CPU kernel (``w2vjax.kernel``) on 1 thread and on 2
threads, sharing each micro-batch by rows or Hogwild.  Part 2 times
the pieces of a skip-gram/NS update of 256 pairs x 6 output rows x dim 100 on their own: the
row gathers and scatter-adds, and the two small batched products.  Each figure is the best of
``--repeats`` timings of ``--calls`` calls (the machine is shared; the best is the least
disturbed).  Run it with ``PJRT_NPROC=1`` (one XLA thread, as ``w2vjax train`` uses on CPU);
this script sets it unless it is set.
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

from w2vjax import make_config, step as step_lib  # noqa: E402
from w2vjax.prepare import prepare  # noqa: E402
from w2vjax.stream import Streamer, StreamSpec  # noqa: E402

CONFIGS = [("skipgram", "ns"), ("cbow", "ns"), ("skipgram", "hs")]


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def best_step_seconds(cfg, tables, data, batches, repeats: int, kernel_threads: int = 0,
                      hogwild: bool = False) -> float:
    """Best of ``repeats`` timings of the jitted train step over ``batches[1:]`` (already on the
    device; ``batches[0]`` compiles it), the state carried from call to call as in training;
    ``kernel_threads`` > 0: the fused CPU kernel's step on that many threads (``hogwild``: each
    its own micro-batches)."""
    fn = step_lib.make_train_step(cfg, tables, data.num_words, kernel_threads=kernel_threads, hogwild=hogwild)
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


def step_rows(args, data, workdir) -> list[dict]:
    rows = []
    keep = data.vocab.keep_prob(1e-3)
    for model, loss in CONFIGS:
        for host in (True, False):
            cfg = make_config(model=model, loss=loss).validate()
            tables = step_lib.make_tables(data.vocab, cfg)
            ns = host and loss == "ns"
            noise = (np.asarray(tables.noise_accept), np.asarray(tables.noise_alias)) if ns else None
            spec = StreamSpec(model, cfg.data.window, cfg.batch_size, cfg.train.steps_per_call, 1, cfg.train.seed,
                              windows=cfg.windows, negative=cfg.model.negative if ns else 0)
            stream = Streamer(data, keep, spec, noise=noise)()
            host_batches = [b for b, _, _ in itertools.islice(stream, args.calls + 1)]
            counts = step_lib.HostCounts(cfg, tables)
            t = time.perf_counter()
            if host:
                host_batches = [counts(b) for b in host_batches]
            host_ms = (time.perf_counter() - t) / len(host_batches) * 1e3 if host else 0.0
            batches = [jax.device_put(b) for b in host_batches]
            examples = sum(float(b["mask"].sum()) for b in host_batches[1:])
            unit = "window" if cfg.windows else "pair"
            # the kernel takes the host's noise words (and counts its own touches)
            for threads, wild in (((0, False), (1, False), (2, False), (2, True)) if host else ((0, False),)):
                sec = best_step_seconds(cfg, tables, data, batches, args.repeats, threads, wild)
                rows.append({"config": f"{model}/{loss}", "host_prep": host, "unit": unit, "kernel": threads,
                             "hogwild": wild, "us_per_example": sec / examples * 1e6,
                             "host_ms_per_call": 0.0 if threads else host_ms})  # the kernel counts its own
                print(f"# {model}/{loss} host_prep={host} kernel threads {threads}{' Hogwild' if wild else ''}: "
                      f"{rows[-1]['us_per_example']:.3f} us per {unit}", flush=True)
    return rows


def part_rows(args) -> list[dict]:
    v, d, b, j, s = 22541, 100, 256, 6, 128
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
    ap.add_argument("--corpus", default=os.path.join(ROOT, "..", "shared", "data", "corpora", "text8_head.gz"))
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "w2vjax_step_profile"))
    ap.add_argument("--calls", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None, help="write OUT.md")
    args = ap.parse_args(argv)
    data = prepare(args.corpus, args.workdir, 5, None, 10_000)
    steps = step_rows(args, data, args.workdir)
    parts = part_rows(args)
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
               f"jax {jax.__version__}")
    lines = [f"Corpus `{os.path.basename(args.corpus)}` (vocabulary {len(data.vocab):,}), defaults (dim 100, "
             f"window 5, negative 5, batch 256 x 128 updates per call); machine: {machine}; "
             f"PJRT_NPROC={os.environ.get('PJRT_NPROC')}; date {time.strftime('%Y-%m-%d')}.",
             f"Command: `python benchmarks/step_profile.py --corpus {args.corpus} --repeats {args.repeats} "
             f"--out {args.out}`", "",
             "| step | noise words + touch counts made on | update | µs per example (device) "
             "| host ms per call (counts) |", "|---|---|---|---|---|"]
    for r in steps:
        mode = " Hogwild" if r.get("hogwild") else " sharing rows" if r["kernel"] > 1 else ""
        update = f"CPU kernel, {r['kernel']} thread{'s' if r['kernel'] > 1 else ''}{mode}" if r["kernel"] else "XLA"
        lines.append(f"| {r['config']} ({r['unit']}s) | {'host' if r['host_prep'] else 'device'} | {update} | "
                     f"{r['us_per_example']:.3f} | {r['host_ms_per_call']:.1f} |")
    lines += ["", "| part of a skip-gram/NS update (256 pairs) | µs per pair |", "|---|---|"]
    lines += [f"| {r['part']} | {r['us_per_pair']:.3f} |" for r in parts]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out + ".md", "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
