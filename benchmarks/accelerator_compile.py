"""Compile the trainer's step for an accelerator this machine does not have, and count what it would run.

    python benchmarks/accelerator_compile.py --target h200|v5e [--devices N] \
        [--model skipgram|cbow --loss ns|hs|nce|sampled-softmax --batch-size N] [--corpus PATH] --out DIR

JAX compiles for devices it does not have: with ``jax-cuda12-plugin`` at jax's version and an
XLA GPU target description (``../shared/targets/h200.txtpb``) for an NVIDIA H200, with
``libtpu`` for a TPU topology (``pip install -e .[compile]`` installs both;
``--site DIR`` or ``$W2VJAX_COMPILE_SITE`` puts a folder holding them, e.g. made with
``pip install --target DIR``, on the path of the compiling process only).

The step is the one ``w2vjax train`` would run on that target: the config with the
accelerator defaults (:meth:`w2vjax.config.Config.for_platform`), device windows (the
accelerator default: rows of raw tokens from :class:`w2vjax.windows.TokenStream`), and the jitted
step of :func:`w2vjax.step.make_train_step` over a mesh of the target's devices, all built
in :func:`build_step`, the one function here that calls into w2vjax's step building.  Only
shapes matter: the arguments are ``jax.ShapeDtypeStruct`` with shardings on the target's
devices; nothing is placed on a device and nothing runs.

The script re-executes itself so that ``XLA_FLAGS`` (yours, e.g. ``--xla_gpu_ftz=true``, plus
``--xla_dump_to=DIR/dump``) is set before JAX starts.  It writes:

* ``DIR/report.json``: per micro-step (one iteration of the step's ``lax.scan``): ``kernels``,
  ``cas_loops``, ``native_atomics``, ``table_copies``, ``collective_bytes``,
  ``bytes_per_raw_word`` (an estimate), with the target, settings, corpus, versions and commit;
  the rules are in :mod:`hlo_counts` (``benchmarks/hlo_counts.py``) and in ``report['rules']``;
* ``DIR/compiled.hlo.txt``: the optimised HLO (``compiled.as_text()``);
* ``DIR/dump/``: XLA's dump (GPU: the thunk sequence, the PTX of every kernel).

Nothing is timed: compile-only devices cannot run anything (``report['cannot_know']``).
"""

from __future__ import annotations

import argparse
import datetime
import glob
import gzip
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED_TARGETS = os.path.join(os.path.dirname(ROOT), "shared", "targets")
ENWIKI = os.path.join(os.path.dirname(ROOT), "shared", "data", "corpora", "enwiki2015_text8style.zip")

# TPU v5e slices by chip count (libtpu topology names)
# (as MaxText's accelerator table: one chip is its own host, larger slices have 2x2-chip hosts)
V5E_TOPOLOGIES = {1: "1x1", 4: "2x2", 8: "2x4", 16: "4x4", 32: "4x8", 64: "8x8", 128: "8x16", 256: "16x16"}
TARGETS = {
    "h200": {"platform": "cuda", "config": "h200.txtpb", "describe": "NVIDIA H200 (XLA GPU target config)"},
    "v5e": {"platform": "tpu", "describe": "TPU v5e (libtpu topology)"},
}
CANNOT_KNOW = ("Times: the devices are compile-only, nothing runs, so no step time, words/s, kernel "
               "duration, launch or atomic-contention cost can be measured this way. The counts are "
               "static: how many kernels, atomics, copies and collectives one micro-step would issue, "
               "and an estimate of the bytes its buffers hold; not how long they take, nor how many "
               "retries a CAS loop makes (that depends on the data: how often one row repeats).")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", required=True, choices=sorted(TARGETS))
    p.add_argument("--devices", type=int, default=1, help="devices of the target (data parallel mesh)")
    p.add_argument("--model", default="skipgram", choices=["skipgram", "cbow"])
    p.add_argument("--loss", default="ns", choices=["ns", "hs", "nce", "sampled-softmax"])
    p.add_argument("--batch-size", type=int, default=None, help="examples per update (default: the "
                   "accelerator default of Config.for_platform)")
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--shard-tables", action="store_true")
    p.add_argument("--pallas", action="store_true", help="the pallas engine (fused Triton kernel) instead of XLA")
    p.add_argument("--corpus", default=None, help=f"corpus for the vocabulary (default: {ENWIKI} if present, "
                   "else the embedded text8 head)")
    p.add_argument("--corpus-cache", default=os.path.join("/tmp", "w2vjax-compile-corpus"),
                   help="work dir for the prepared corpus (reused)")
    p.add_argument("--target-config", default=None, help="XLA GPU target config (default: "
                   "../shared/targets/<target>.txtpb)")
    p.add_argument("--site", default=os.environ.get("W2VJAX_COMPILE_SITE"),
                   help="a folder holding jax-cuda12-plugin / libtpu, put on the compiling process's path")
    p.add_argument("--out", required=True)
    p.add_argument("--no-dump", action="store_true", help="no XLA dump (then no PTX counts)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# -- the one place that builds w2vjax's step ----------------------------------------------------

def build_step(config, data, devices):
    """``(jitted train step, (abstract state, abstract batch), info)``: the step ``w2vjax train``
    would run for ``config`` on ``devices`` (compile-only devices of one platform), built as
    :func:`w2vjax.train.train_and_evaluate` / :func:`w2vjax.train.run_training` build it: the
    engine and platform defaults from :func:`w2vjax.engines.choose`, the layout of
    :func:`w2vjax.train.make_layout` (its mesh over ``devices`` instead of ``jax.devices()``), the
    batches of :func:`w2vjax.train.make_stream` (device windows: token rows) and
    :func:`w2vjax.step.make_train_step`.  The one function here that calls into w2vjax's step
    building: re-point it when that moves."""
    import jax
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

    from w2vjax import engines, sharding, step as step_lib, train

    cfg, engine = engines.choose(config, devices[0].platform, len(devices))
    vocab = data.vocab
    tables = step_lib.make_tables(vocab, cfg)
    out_rows = len(vocab) - 1 if cfg.model.loss == "hs" else len(vocab)
    rows = {"emb_in": len(vocab), "emb_out": out_rows}
    if not engine.device_windows:
        raise SystemExit(f"{engine.describe()}: this benchmark compiles the device-windows step only")
    mesh = Mesh(np.array(list(devices)), (sharding.AXIS,))
    layout = sharding.Layout(mesh, cfg.train.shard_tables, rows, 1)  # = train.make_layout(cfg, rows, True)
    streamer, position, spec = train.make_stream(cfg, engine, data, layout, tables)
    train_step = step_lib.make_train_step(cfg, tables, streamer.total_words, layout, engine)

    def sds(x, spec_):
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=NamedSharding(mesh, spec_))

    state = jax.eval_shape(lambda: step_lib.init_state(cfg, len(vocab)))  # unpadded shapes, no device
    state = state.replace(params={k: jax.ShapeDtypeStruct((layout.padded[k],) + v.shape[1:], v.dtype)
                                  for k, v in state.params.items()})
    state = jax.tree.map(lambda x: sds(x, P()), state)
    state = state.replace(params={k: sds(v, layout.table_spec) for k, v in state.params.items()})
    batch, _, _ = next(streamer(position))  # one call's token rows: their shapes and dtypes
    batch = jax.tree.map(sds, batch, layout.batch_specs(batch))
    per_dev = layout.size if layout.shard_tables else 1
    info = {"cfg": cfg, "engine": engine.describe(), "engine_name": engine.name, "token_rows": spec.rows, "row_tokens": spec.row_tokens,
            "raw_words_per_micro_step": spec.rows * spec.row_tokens,
            "keep_rate": vocab.keep_rate(cfg.data.sample),
            "table_shapes": {k: [layout.padded[k] // per_dev, cfg.model.dim] for k in rows},
            "vector_shapes": sorted({layout.padded[k] // per_dev for k in rows} | set(rows.values()))}
    return train_step, (state, batch), info


# -- helpers --------------------------------------------------------------------------------

def rows_touched_bytes_per_raw_word(cfg, vocab, keep_rate: float) -> float:
    """Bytes of the table rows a raw word really touches, each row read and written once per
    touch: per kept token about ``W + 1`` skip-gram pairs (``E[2b]``), each with 1 input and
    ``R_out`` output rows; CBOW: ``W + 1`` context rows and ``R_out`` output rows per center.
    ``R_out``: ``1 + negative``, or the mean Huffman code length of the kept centers."""
    import numpy as np
    w, d = cfg.data.window, cfg.model.dim
    if cfg.model.loss == "hs":
        weight = vocab.counts * vocab.keep_prob(cfg.data.sample)
        r_out = float((vocab.huffman().lengths * weight).sum() / weight.sum())
    else:
        r_out = 1.0 + cfg.model.negative
    rows = (w + 1) * (1 + r_out) if cfg.model.model == "skipgram" else (w + 1) + r_out
    del np
    return keep_rate * rows * d * 4 * 2


ACCESS_PRIMITIVES = {"get": 1, "load": 1, "masked_load": 1, "swap": 1, "masked_swap": 1, "atomic_rmw": 2}
# where a masked access's mask sits among its operands (``args_tree``): lanes it masks off move nothing
MASK_AT = {"masked_load": 2, "masked_swap": 3, "atomic_rmw": 3}


def pallas_access_bytes(jaxpr, table_sizes) -> list[dict]:
    """The memory accesses the step's Pallas kernels issue, from their jaxprs (XLA sees a
    ``pallas_call`` as one opaque custom call over its whole in-place tables): per ``pallas_call``
    in ``jaxpr`` (a ClosedJaxpr of the step), each program's loads and stores (their results'
    bytes) and atomics (read and written: twice) times the programs of its grid; masked-off lanes
    included, so an upper bound (``masked_bytes``: the part under a mask, which dead lanes skip).
    ``table_sizes``: element counts of the flat tables, whose accesses are also given apart.  A
    kernel under a ``scan`` is listed once (per micro-step)."""
    import jax
    import math

    from jax._src import core

    def subs(eqn):
        for v in eqn.params.values():
            for x in (v if isinstance(v, (tuple, list)) else (v,)):
                if isinstance(x, core.ClosedJaxpr):
                    yield x.jaxpr
                elif isinstance(x, core.Jaxpr):
                    yield x

    def masked(e):
        at = MASK_AT.get(e.primitive.name)
        if at is None or "args_tree" not in e.params:
            return False
        args = jax.tree.unflatten(e.params["args_tree"], e.invars)
        return len(args) > at and args[at] is not None

    def accesses(kj, refs):
        got = {"bytes": 0, "table_bytes": 0, "masked_bytes": 0}
        for e in kj.eqns:
            if e.primitive.name in ACCESS_PRIMITIVES:
                a = e.outvars[0].aval
                b = math.prod(a.shape) * a.dtype.itemsize * ACCESS_PRIMITIVES[e.primitive.name]
                got["bytes"] += b
                got["masked_bytes"] += b if masked(e) else 0
                ref = refs.get(e.invars[0])
                if ref is not None and math.prod(ref.shape) in table_sizes:
                    got["table_bytes"] += b
            for sub in subs(e):  # a nested jaxpr sees the refs it is passed under its own names
                inner = {iv: refs.get(ov) for iv, ov in zip(sub.invars, e.invars)}
                for k, v in accesses(sub, {k: v for k, v in inner.items() if v is not None}).items():
                    got[k] += v
        return got

    out = []

    def walk(j):
        for e in j.eqns:
            if e.primitive.name == "pallas_call":
                kj = e.params["jaxpr"]
                programs = math.prod(e.params["grid_mapping"].grid)
                refs = {v: v.aval.inner_aval for v in kj.invars if hasattr(v.aval, "inner_aval")}
                got = accesses(kj, refs)
                out.append({"name": str(e.params.get("name", "pallas_call")), "programs": programs,
                            "bytes_per_program": got["bytes"], **{k: v * programs for k, v in got.items()}})
                continue
            for sub in subs(e):
                walk(sub)
    walk(jaxpr.jaxpr)
    return out


def git_commit() -> dict:
    def run(*a):
        try:
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.rstrip()
        except (OSError, subprocess.SubprocessError):
            return ""
    dirty = run("status", "--porcelain", "--", "w2vjax")
    # the compile uses the working tree: say which of w2vjax's files differ from the commit
    return {"commit": run("rev-parse", "HEAD").strip(),
            "w2vjax_uncommitted_changes": [l[3:] for l in dirty.splitlines()] if dirty else []}


def plugin_versions() -> dict:
    import importlib.metadata as md
    out = {}
    for name in ("jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda12-pjrt", "libtpu"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def topology(target: str, devices: int, config_path: str | None):
    from jax.experimental import topologies
    t = TARGETS[target]
    if t["platform"] == "cuda":
        path = config_path or os.path.join(SHARED_TARGETS, t["config"])
        with open(path) as f:
            cfg_text = f.read()
        return topologies.get_topology_desc(target, "cuda", target_config=cfg_text,
                                            topology=f"1x1x{devices}"), path
    if devices not in V5E_TOPOLOGIES:
        raise SystemExit(f"--devices for v5e: one of {sorted(V5E_TOPOLOGIES)}")
    name = f"v5e:{V5E_TOPOLOGIES[devices]}"
    bounds = (1, 1, 1) if devices == 1 else (2, 2, 1)
    topo = topologies.get_topology_desc(name, "tpu", chip_config_name="default", chips_per_host_bounds=bounds,
                                        num_slices=1, wrap=(False, False, False))
    return topo, f"{name} (chips per host {bounds})"


def load_corpus(path: str, cache: str, min_count: int):
    from w2vjax.prepare import prepare
    work = os.path.join(cache, os.path.basename(path).split(".")[0] + f"_min{min_count}")
    return prepare(path, work, min_count=min_count)


def _dump_module(dump: str, name_part: str = "train_step") -> str | None:
    """The module prefix (``DIR/module_0007.jit_train_step``) of the step in an XLA dump."""
    cands = sorted(glob.glob(os.path.join(dump, f"module_*{name_part}*.before_optimizations.txt")))
    if not cands:
        return None
    return cands[-1][: -len(".before_optimizations.txt")]


def count(hlo_text: str, info: dict, steps: int, dump: str | None, platform: str, pallas=()) -> dict:
    """The per-micro-step figures from the optimised HLO and, on GPU, the dump; ``pallas``: the
    Pallas kernels' accesses (:func:`pallas_access_bytes`), which replace the HLO rule's figure
    for their custom calls (each counted there as its whole in-place tables)."""
    sys.path.insert(0, HERE)
    import hlo_counts as hc

    comps, entry = hc.parse_module(hlo_text)
    loop = hc.step_loop(comps, entry, steps)
    tables = [tuple(s) for s in info["table_shapes"].values()]
    ops = hc.loop_ops(comps, loop, tables, [(v,) for v in info["vector_shapes"]])
    raw = info["raw_words_per_micro_step"]
    moved = ops["bytes"]
    if pallas:
        moved += sum(k["bytes"] for k in pallas) - sum(k["bytes"] * k["times"] for k in ops["kernels"]
                                                       if k["op"] == "custom-call" and "pallas_call" in k["name"])
    per = {
        "kernels": len(ops["kernels"]),  # replaced by the thunk sequence's count on GPU (below)
        "kernels_hlo": len(ops["kernels"]),
        "copies": len(ops["copies"]),
        "collectives": len(ops["collectives"]),
        "device_ops": len(ops["kernels"]) + len(ops["copies"]) + len(ops["collectives"]),
        "table_copies": len(ops["table_copies"]),
        "vector_copies": len(ops["vector_copies"]),
        # bytes of copies and (TPU) async slices into / out of a whole table's buffer, e.g. staging a
        # table through on-chip memory; in whole-table equivalents beside it
        "table_transfer_bytes": ops["table_transfer_bytes"],
        "table_transfer_whole_tables": round(ops["table_transfer_bytes"] / (4 * sum(a * b for a, b in tables)
                                                                           / len(tables)), 2),
        "unfused_small_ops": ops["unfused_small_ops"],
        "collective_bytes": {"total": sum(ops["collective_bytes"].values()), **ops["collective_bytes"]},
        "bytes_per_raw_word": round(moved / raw, 1),
        "bytes_per_raw_word_all_operands": round(ops["all_operand_bytes"] / raw, 1),
        "bytes_per_micro_step": moved,
        "raw_words_per_micro_step": raw,
        "sorts": [{"name": k["name"], "shape": k["shape"]} for k in ops["kernels"]
                  if k["op"] == "sort" or "sort" in k["fused_ops"]],
    }
    details = {"loop": loop.name, "loop_trip_count": hc.trip_count(loop),
               "kernels": ops["kernels"], "copies": ops["copies"], "collectives": ops["collectives"],
               "nested_loops_with_unknown_trip_count": ops["unknown_trip_loops"]}
    if pallas:
        per["bytes_per_raw_word_hlo_rule"] = round(ops["bytes"] / raw, 1)
        details["pallas_kernels"] = list(pallas)
    per["cas_loops"] = per["native_atomics"] = None
    if platform == "cuda" and dump:
        mod = _dump_module(dump)
        if mod and os.path.exists(mod + ".thunk_sequence.txt"):
            meta = mod + ".thunk_metadata.txt"
            th = hc.thunk_loop_counts(open(mod + ".thunk_sequence.txt").read(),
                                      open(meta).read() if os.path.exists(meta) else "", loop.name)
            per["kernels"] = th["kernels"]
            per["device_ops"] = th["device_ops"]
            per["kernels_source"] = "GPU thunk sequence (kernel launches); kernels_hlo: the HLO rule"
            details["thunks_per_micro_step"] = th["by_kind"]
            hlo_names = {hc.kernel_key(k["name"]) for k in ops["kernels"]}
            thunk_names = [hc.kernel_key(n) for n in th["kernel_names"]]
            details["kernels_only_in_hlo"] = sorted(hlo_names - set(thunk_names))
            details["kernels_only_in_thunks"] = sorted(set(thunk_names) - hlo_names)
            in_loop = Counter(thunk_names)
        else:
            in_loop = Counter(hc.kernel_key(k["name"]) for k in ops["kernels"])
        ptx_files = sorted(glob.glob((mod or os.path.join(dump, "module_*")) + ".*ptx"))
        if ptx_files:
            cas = 0
            native = Counter()
            cas_total = 0
            cas_kernels = []
            for f in ptx_files:
                a = hc.ptx_atomics(open(f).read())
                cas_total += a["cas_loops"]
                for entry_name, e in a["by_entry"].items():
                    times = in_loop.get(hc.kernel_key(entry_name), 0)
                    cas += e["cas"] * times
                    if e["cas"] and times:
                        cas_kernels.append({"kernel": entry_name, "cas_loops": e["cas"]})
                # native atomics by opcode, of the loop's kernels
                text = open(f).read()
                for entry_name in hc.ptx_entries(text):
                    times = in_loop.get(hc.kernel_key(entry_name), 0)
                    if times:
                        sub = hc.ptx_atomics(_entry_text(text, entry_name))
                        for op, n in sub["native"].items():
                            native[op] += n * times
            per["cas_loops"] = cas
            per["native_atomics"] = dict(native)
            details["cas_loop_kernels"] = cas_kernels
            details["cas_loops_in_whole_module"] = cas_total
            details["ptx_files"] = len(ptx_files)
    return {"per_micro_step": per, "details": details}


def _entry_text(ptx: str, name: str) -> str:
    """The PTX of one ``.entry`` (up to the next one)."""
    import re
    m = re.search(r"\.entry\s+" + re.escape(name) + r"\s*\(", ptx)
    if not m:
        return ""
    n = re.search(r"\.entry\s+[\w$]+\s*\(", ptx[m.end():])
    return ptx[m.start(): m.end() + (n.start() if n else len(ptx))]


from collections import Counter  # noqa: E402


def child(args) -> int:
    import jax
    from w2vjax import make_config
    from w2vjax.train import default_corpus

    t0 = datetime.datetime.now()
    topo, where = topology(args.target, args.devices, args.target_config)
    devices = topo.devices[: args.devices]
    platform = TARGETS[args.target]["platform"]
    corpus = args.corpus or (ENWIKI if os.path.exists(ENWIKI) else default_corpus())
    config = make_config(model=args.model, loss=args.loss, dim=args.dim, batch_size=args.batch_size,
                         devices=args.devices, shard_tables=args.shard_tables, pallas=args.pallas or None)
    data = load_corpus(corpus, args.corpus_cache, config.data.min_count)
    step, abstract, info = build_step(config, data, devices)
    cfg = info.pop("cfg")
    lowered = step.lower(*abstract)
    compiled = lowered.compile()
    hlo = compiled.as_text()
    with open(os.path.join(args.out, "compiled.hlo.txt"), "w") as f:
        f.write(hlo)
    dump = None if args.no_dump else os.path.join(args.out, "dump")
    pallas = ()
    if info.pop("engine_name") == "pallas":
        tables = {a * b for a, b in info["table_shapes"].values()}
        pallas = pallas_access_bytes(step.trace(*abstract).jaxpr, tables)
    counts = count(hlo, info, cfg.train.steps_per_call, dump, platform, pallas)
    extra = {}
    try:
        ma = compiled.memory_analysis()
        extra["memory_analysis_bytes"] = {k: int(getattr(ma, k)) for k in (
            "argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes", "temp_size_in_bytes",
            "generated_code_size_in_bytes") if hasattr(ma, k)}
    except Exception as e:  # noqa: BLE001 - optional
        extra["memory_analysis_bytes"] = f"unavailable: {type(e).__name__}"
    report = {
        "target": args.target, "target_description": TARGETS[args.target]["describe"], "target_source": where,
        "device_kind": devices[0].device_kind, "devices": len(devices), "platform": platform,
        "settings": {"model": cfg.model.model, "loss": cfg.model.loss, "dim": cfg.model.dim,
                     "window": cfg.data.window, "negative": cfg.model.negative, "sample": cfg.data.sample,
                     "batch_size": cfg.batch_size, "steps_per_call": cfg.train.steps_per_call,
                     "row_update_cap": cfg.row_cap, "shard_tables": cfg.train.shard_tables,
                     "device_windows": True, "token_rows_per_micro_step": info["token_rows"],
                     "row_tokens": info["row_tokens"]},
        "engine": info["engine"],
        "corpus": {"path": corpus, "num_words": int(data.num_words), "vocab_size": len(data.vocab),
                   "min_count": cfg.data.min_count, "subsample_keep_rate": round(info["keep_rate"], 4)},
        "table_shapes": info["table_shapes"],
        "xla_flags": os.environ.get("W2VJAX_USER_XLA_FLAGS", ""),
        "versions": plugin_versions(), **git_commit(),
        "date": t0.isoformat(timespec="seconds"),
        "per_micro_step": counts["per_micro_step"],
        "rows_touched_bytes_per_raw_word": round(rows_touched_bytes_per_raw_word(cfg, data.vocab,
                                                                                 info["keep_rate"]), 1),
        "cannot_know": CANNOT_KNOW,
        "estimates": ("bytes_per_raw_word is an ESTIMATE from the compiled buffers, not a measurement: the "
                      "loop body's kernels' operand + result bytes per micro-step (a fusion parameter read "
                      "only by gathers / dynamic-slices counts the rows they read; a buffer updated in place "
                      "by a root scatter / dynamic-update-slice counts the updates, read and written), "
                      "divided by the raw words of a micro-step (token rows x row tokens). "
                      "bytes_per_raw_word_all_operands counts every operand and result once, whole (each "
                      "scattered table in full; a table gathered from counted once, even when more rows "
                      "are gathered than it holds, so it can be the lower figure). Caches, re-reads inside a kernel and "
                      "atomics' retries are not seen. A Pallas kernel (one custom call to XLA) counts "
                      "instead the loads, stores and atomics (twice: read and written) of its jaxpr, per "
                      "program, times its grid, masked-off lanes included (details.pallas_kernels; "
                      "bytes_per_raw_word_hlo_rule: the HLO rule's figure, its whole tables). "
                      "rows_touched_bytes_per_raw_word: the table rows a raw "
                      "word touches, read and written once each."),
        "rules": __import__("hlo_counts").__doc__,
        **extra,
        "details": counts["details"],
        "compile_seconds": round((datetime.datetime.now() - t0).total_seconds(), 1),
    }
    with open(os.path.join(args.out, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    p = report["per_micro_step"]
    print(f"{args.target} x{len(devices)} {cfg.model.model}/{cfg.model.loss} batch {cfg.batch_size}: "
          f"kernels {p['kernels']} (HLO rule {p['kernels_hlo']}, device ops {p['device_ops']}), cas_loops {p['cas_loops']}, "
          f"native atomics {p['native_atomics']}, table copies {p['table_copies']}, "
          f"collective bytes {p['collective_bytes']['total']}, bytes/raw word {p['bytes_per_raw_word']} "
          f"-> {os.path.join(args.out, 'report.json')}")
    del jax
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if args.child:
        return child(args)
    env = dict(os.environ)
    user_flags = env.get("XLA_FLAGS", "")
    dump = os.path.join(os.path.abspath(args.out), "dump")
    if os.path.isdir(dump):
        shutil.rmtree(dump)
    flags = user_flags if args.no_dump else f"{user_flags} --xla_dump_to={dump}".strip()
    env["XLA_FLAGS"] = flags
    env["W2VJAX_USER_XLA_FLAGS"] = user_flags
    if TARGETS[args.target]["platform"] == "tpu":  # no TPU VM here: libtpu need not ask GCE's metadata server
        env.setdefault("TPU_SKIP_MDS_QUERY", "1")
    env["JAX_PLATFORMS"] = "cpu"  # the default backend; the target's devices come from the topology
    env["JAX_ENABLE_COMPILATION_CACHE"] = "false"  # a cached executable would skip the compile (no dump)
    env["TF_CPP_MIN_LOG_LEVEL"] = env.get("TF_CPP_MIN_LOG_LEVEL", "2")
    path = [ROOT] + ([os.path.abspath(args.site)] if args.site else [])
    env["PYTHONPATH"] = os.pathsep.join(path + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    cmd = [sys.executable, os.path.abspath(__file__), *(argv if argv is not None else sys.argv[1:]), "--child"]
    return subprocess.call(cmd, env=env)


def gzip_file(src: str, dst: str) -> None:
    with open(src, "rb") as f, gzip.open(dst, "wb", compresslevel=9) as g:
        shutil.copyfileobj(f, g)


if __name__ == "__main__":
    sys.exit(main())
