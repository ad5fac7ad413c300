"""Run by tests/test_sharding.py in a fresh process with 4 simulated CPU devices.

``python tests/mesh_worker.py CORPUS OUT.json``: trains the same configs on 1, 2 and 4
devices, with replicated and row-sharded tables, and an interrupted 4-device run resumed on
2 devices; writes, per case, whether the vectors equal the 1-device ones bitwise and the
largest difference.
"""

import os
import sys

os.environ["XLA_FLAGS"] = ("--xla_force_host_platform_device_count=4 "
                           # one thread per simulated device: with fewer cores than devices, a
                           # device waiting in a collective must not hold a thread another needs
                           "--xla_cpu_multi_thread_eigen=false "
                           # and should a device still starve, wait for it instead of aborting at 40 s
                           "--xla_cpu_collective_call_warn_stuck_timeout_seconds=60 "
                           "--xla_cpu_collective_call_terminate_timeout_seconds=300")
os.environ["JAX_CPU_ENABLE_ASYNC_DISPATCH"] = "false"
# XLA:CPU runs the simulated devices' programs on thread pools sized by PJRT_NPROC (default: the
# cores it sees).  A device blocked in a collective holds its thread, so with fewer threads than
# devices the last device may never get one and the rendezvous aborts after 40 s (PJRT_NPROC=1
# reproduces it every time; CI's 2-core machine hit it 3 times in a row).  Give the pools more
# threads than devices, so every device of a collective always has a thread to arrive on.
os.environ["PJRT_NPROC"] = "16"

import dataclasses  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from w2vjax import engines, make_config  # noqa: E402
from w2vjax.engines import xla  # noqa: E402
from w2vjax.train import Interrupted, train_and_evaluate  # noqa: E402

CHOOSE, SLOTS = engines.choose, xla.SORTED_SCATTER_SLOTS
CASES = {
    "sg-ns": dict(model="skipgram", loss="ns"),
    "cbow-hs": dict(model="cbow", loss="hs"),
    "sg-ns-shared": dict(model="skipgram", loss="ns", shared_negatives=True),
    "sg-softmax": dict(model="skipgram", loss="softmax", max_vocab=400),
    # examples made on the device from rows of tokens: 4 rows of 880 tokens per micro-step on
    # 1, 2 and 4 devices (sample 0 keeps every token: 6 pairs per token at window 5)
    "sg-ns-device-windows": dict(model="skipgram", loss="ns", device_windows=True, sample=0.0, batch_size=21000),
    # as on a TPU: the scatter ids of each micro-step sorted once per call (xla.call_orders)
    "sg-ns-device-windows-sorted": dict(model="skipgram", loss="ns", device_windows=True, sample=0.0,
                                        batch_size=21000, sort_ids=True),
    # the host stream's examples, sorted as on a TPU (the whole call gathered for the orders)
    "sg-ns-sorted": dict(model="skipgram", loss="ns", sort_ids=True),
    "cbow-hs-device-windows": dict(model="cbow", loss="hs", device_windows=True, sample=0.0, batch_size=3520),
}
LAYOUTS = [(2, False), (4, False), (4, True)]


def _sorting_choose(*args, **kwargs):  # a TPU's engine choice, on this CPU
    cfg, engine = CHOOSE(*args, **kwargs)
    return cfg, dataclasses.replace(engine, sort_ids=True)


def train(corpus, stop=None, **kw):
    wd = kw.pop("workdir", None) or tempfile.mkdtemp()
    sort = kw.pop("sort_ids", False)
    engines.choose, xla.SORTED_SCATTER_SLOTS = (_sorting_choose, 0) if sort else (CHOOSE, SLOTS)  # (the mesh: all)
    # cpu_kernel off: the one-device reference runs the same XLA update as the mesh (the fused
    # CPU kernel agrees with it to rounding, tests/test_kernel.py; here the layouts are compared)
    cfg = make_config(**dict(dict(dim=16, epochs=1, batch_size=64, steps_per_call=8, min_count=3,
                                  cpu_kernel=False), **kw))
    s = train_and_evaluate(cfg, wd, corpus, evaluate=False, progress=False,
                           stop_after_calls=stop)
    return s, np.asarray(__import__("w2vjax").load_vectors(os.path.join(wd, "vectors.bin")).vectors)


def whole_call_is_the_global_batch():
    """Collectives.whole_call on 4 devices' slices of a call gives back the whole call, in batch
    order, every field (per-example word counts, as several data shards make, included)."""
    import jax.numpy as jnp
    from jax.sharding import Mesh, PartitionSpec as P

    from w2vjax.batches import Pairs
    from w2vjax.engines.mesh import Collectives
    rng = np.random.default_rng(0)
    steps, b = 3, 4 * 8
    batch = Pairs(jnp.asarray(rng.integers(0, 99, (steps, b)), jnp.int32), jnp.asarray(rng.integers(0, 99, (steps, b)), jnp.int32),
                  jnp.asarray(rng.random((steps, b)) > 0.2, jnp.float32), jnp.asarray(rng.random((steps, b)) * 1e6, jnp.float32),
                  jnp.asarray(rng.integers(0, 99, (steps, b, 5)), jnp.int32))
    coll = Collectives("d", 4, False, {})
    f = jax.shard_map(coll.whole_call, mesh=Mesh(np.array(jax.devices()), ("d",)), in_specs=(P(None, "d"),),
                      out_specs=P(), check_vma=False)
    got = jax.jit(f)(batch)
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(batch)))


def main(corpus, out):
    assert jax.device_count() == 4, jax.devices()
    result = {"whole_call": {"bitwise": whole_call_is_the_global_batch(), "max_diff": 0.0}}
    for name, kw in CASES.items():
        _, base = train(corpus, devices=1, **kw)
        for devices, shard in LAYOUTS:
            if shard and kw["loss"] == "softmax":
                continue
            summary, v = train(corpus, devices=devices, shard_tables=shard, **kw)
            assert summary["devices"] == devices and summary["shard_tables"] == shard
            assert summary["step_compilations"] == 1, summary["step_compilations"]
            if kw.get("device_windows"):  # the same rows on every device count
                assert summary["device_rows"] == [4, 880], summary["device_rows"]
            assert summary["sort_ids"] == kw.get("sort_ids", False)
            result[f"{name}/{devices}{'/sharded' if shard else ''}"] = {
                "bitwise": bool(np.array_equal(v, base)), "max_diff": float(np.abs(v - base).max())}
    # an interrupted 4-device run, resumed on 2 devices with sharded tables
    _, base = train(corpus, devices=1, **CASES["sg-ns"])
    wd = tempfile.mkdtemp()
    try:
        train(corpus, stop=3, workdir=wd, devices=4, **CASES["sg-ns"])
    except Interrupted:
        pass
    _, v = train(corpus, workdir=wd, devices=2, shard_tables=True, **CASES["sg-ns"])
    result["sg-ns/4->2/sharded resumed"] = {"bitwise": bool(np.array_equal(v, base)),
                                            "max_diff": float(np.abs(v - base).max())}
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
