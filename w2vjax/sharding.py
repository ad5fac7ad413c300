"""Device mesh, shardings of the state and batches, and multi-host set-up.

Data parallelism is ``jax.jit`` over a one-axis :class:`jax.sharding.Mesh` (axis ``"data"``)
with the update written in :func:`jax.shard_map`.  We chose ``shard_map`` over ``jax.pmap``
(which recent JAX keeps only for compatibility) and over letting the GSPMD partitioner place
the collectives itself, because the communication of a word2vec step is easy to get badly
wrong: a scatter-add of batch-sharded updates into a replicated ``[V, D]`` table is, for the
partitioner, a dense ``[V, D]`` all-reduce per update.  In ``shard_map`` we write the one we
want (see :mod:`w2vjax.step`): each device computes the gradients of its slice of the batch
with respect to the rows its examples touch, the row updates are all-gathered (``B * R * D``
floats, ``R`` rows per example), and every device applies the whole batch's updates to its
copy of the tables, in batch order, so the copies stay identical.  The same code runs on one
host or on many (``jax.distributed``), and with the tables either replicated or sharded by
rows over the same axis (``shard_tables``, for vocabularies too big for one device).

Per update and device, with ``B`` the global batch, ``D`` the dim, ``n`` the devices,
``R_in`` input rows per example (1 for skip-gram pairs, ``2W`` for CBOW) and ``R_out``
output rows (``1 + K`` for negative sampling, the code length ``L`` for HS):

* replicated tables: all-gather of the updates and their ids,
  ``(n - 1) / n * B * (R_in + R_out) * (D + 1)`` words received;
* sharded tables: the same, plus the rows themselves (all-gather of ids and a
  reduce-scatter of ``B * (R_in + R_out) * D`` masked rows);
* full softmax (replicated only): an all-reduce of the dense ``[V, D]`` output gradient.
"""

from __future__ import annotations

import math
import os
from typing import Any, Optional, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "data"


class ShardingError(ValueError):
    """An impossible device or process set-up; the message says which and how to fix it."""


ACCELERATOR_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_cuda12_pjrt", "jax_cuda13_pjrt",
                       "jax_rocm60_plugin", "jax_rocm7_plugin", "libtpu")


def one_xla_cpu_thread(single_process: bool, devices: Optional[int]) -> bool:
    """Give XLA:CPU one thread (``PJRT_NPROC=1``) for a one-device run on a CPU-only machine.

    XLA:CPU splits large fusions over a pool as big as the machine's cores; the trainer's
    prefetch thread (stream, noise words) needs one of those cores, and the split work then
    waits on it (measured in ``docs/performance.md``).  Only done before JAX starts its CPU
    client, and only where it cannot hurt: one process, no ``--devices`` above 1, no simulated
    CPU devices in ``XLA_FLAGS``, ``JAX_PLATFORMS`` unset or ``cpu``, no GPU/TPU plugin
    installed, and ``PJRT_NPROC`` not set by the user (set it to override).  Returns whether it
    set it.  (Several simulated CPU devices need several threads: a device waiting in a
    collective holds one.)
    """
    import importlib.util
    env = os.environ
    if (not single_process or (devices or 1) > 1 or "PJRT_NPROC" in env
            or "xla_force_host_platform_device_count" in env.get("XLA_FLAGS", "")
            or env.get("JAX_PLATFORMS", "cpu") not in ("", "cpu")
            or any(importlib.util.find_spec(m) is not None for m in ACCELERATOR_PLUGINS)):
        return False
    env["PJRT_NPROC"] = "1"
    return True


def initialize_distributed(coordinator: Optional[str] = None, num_processes: Optional[int] = None,
                           process_id: Optional[int] = None, auto: bool = False) -> bool:
    """Start ``jax.distributed`` when the run spans several processes; True if it did.

    Settings come from the arguments, else from ``JAX_COORDINATOR_ADDRESS`` (which JAX reads
    itself) with ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID``; ``auto`` calls
    ``jax.distributed.initialize()`` with no arguments, which detects Cloud TPU pods, SLURM,
    Open MPI and Kubernetes jobs.  Nothing set: a one-process run, nothing is started.
    """
    env = os.environ
    coordinator = coordinator or env.get("JAX_COORDINATOR_ADDRESS")
    if num_processes is None and env.get("JAX_NUM_PROCESSES"):
        num_processes = int(env["JAX_NUM_PROCESSES"])
    if process_id is None and env.get("JAX_PROCESS_ID"):
        process_id = int(env["JAX_PROCESS_ID"])
    if not (auto or coordinator or num_processes):
        return False
    if not auto and (coordinator is None or num_processes is None or process_id is None):
        raise ShardingError("a multi-process run needs --coordinator HOST:PORT, --num-processes N and "
                            "--process-id I (or JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID), "
                            "or --distributed to let JAX detect a TPU pod or SLURM job")
    if not auto and not 0 <= process_id < num_processes:
        raise ShardingError(f"--process-id must be in 0..{num_processes - 1}, got {process_id}")
    try:
        if auto:
            jax.distributed.initialize()
        else:
            jax.distributed.initialize(coordinator, num_processes, process_id)
    except Exception as e:  # noqa: BLE001 - report the cause in one line
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ShardingError(f"jax.distributed.initialize failed: {first}") from None
    return True


def make_mesh(devices: Optional[int] = None) -> Mesh:
    """A one-axis mesh over the first ``devices`` devices of every process (default: all).

    In a multi-process run every process contributes the same number of local devices, so
    ``devices`` counts devices per process there.
    """
    nproc = jax.process_count()
    local = jax.local_devices()
    if devices is not None and not 1 <= devices <= len(local):
        raise ShardingError(f"--devices must be in 1..{len(local)} (the local {local[0].platform} devices), "
                            f"got {devices}")
    per = devices or len(local)
    chosen = [d for p in range(nproc)
              for d in sorted((d for d in jax.devices() if d.process_index == p), key=lambda d: d.id)[:per]]
    return Mesh(np.array(chosen), (AXIS,))


def padded_rows(rows: int, mesh: Mesh, shard_tables: bool) -> int:
    """Table rows rounded up to a multiple of the device count when sharding by rows."""
    n = mesh.size
    return int(math.ceil(rows / n) * n) if shard_tables else rows


class Layout:
    """How the train state and batches are laid out on a mesh.

    The host (checkpoint) form of the state is always the unpadded one, so a run can be
    resumed on another number of devices, or with or without ``shard_tables``.
    """

    def __init__(self, mesh: Mesh, shard_tables: bool, rows: dict[str, int], data_shards: int = 1):
        self.mesh, self.shard_tables, self.rows, self.data_shards = mesh, shard_tables, dict(rows), data_shards
        self.table_spec = P(AXIS, None) if shard_tables else P()
        self.padded = {k: padded_rows(v, mesh, shard_tables) for k, v in self.rows.items()}

    @property
    def size(self) -> int:
        return self.mesh.size

    @property
    def plain(self) -> bool:
        """One device, replicated tables: the single-device step, no shard_map."""
        return self.mesh.size == 1 and not self.shard_tables

    def sharding(self, spec: P) -> NamedSharding:
        return NamedSharding(self.mesh, spec)

    def param_specs(self) -> dict[str, P]:
        return {k: self.table_spec for k in self.rows}

    # -- state ---------------------------------------------------------------------------

    def place_tree(self, tree: Any, specs: Any) -> Any:
        """Host arrays -> global arrays on the mesh (works with several processes too)."""
        def put(x, spec):
            x = np.asarray(x)
            return jax.make_array_from_callback(x.shape, self.sharding(spec), lambda idx: x[idx])
        return jax.tree.map(put, tree, specs)

    def place_params(self, params: dict) -> dict:
        """Unpadded host tables -> padded tables on the mesh."""
        out = {}
        for k, x in params.items():
            x = np.asarray(x)
            pad = self.padded[k] - x.shape[0]
            if pad:
                x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
            out[k] = x
        return self.place_tree(out, self.param_specs())

    def host_params(self, params: dict) -> dict:
        """Tables on the mesh -> unpadded host arrays (every process gets all of them)."""
        return {k: to_host(v)[: self.rows[k]] for k, v in params.items()}

    def place_state(self, state):
        """A host (or one-device) train state (:class:`w2vjax.step.TrainState`) -> the same
        state laid out on the mesh."""
        if self.plain:
            return jax.device_put(state)
        rest = jax.tree.map(to_host, {"opt_state": state.opt_state, "step": state.step,
                                      "key": jax.random.key_data(state.key)})
        rest = self.place_tree(rest, jax.tree.map(lambda _: P(), rest))
        return state.replace(step=rest["step"], params=self.place_params(jax.tree.map(to_host, state.params)),
                             opt_state=rest["opt_state"], key=jax.random.wrap_key_data(rest["key"]))

    def host_state(self, state):
        """The train state on the mesh -> unpadded host arrays (the checkpoint form); a
        one-device state is saved as it is."""
        if self.plain:
            return state
        return state.replace(step=to_host(state.step), params=self.host_params(state.params),
                             opt_state=jax.tree.map(to_host, state.opt_state),
                             key=jax.random.wrap_key_data(to_host(jax.random.key_data(state.key))))

    # -- batches -------------------------------------------------------------------------

    def batch_specs(self, batch):
        """``[steps, batch, ...]`` arrays split along the batch axis; ``[steps]`` ones replicated
        (a :mod:`w2vjax.batches` tuple of specs)."""
        return jax.tree.map(lambda v: P(None, AXIS) if np.ndim(v) >= 2 else P(), batch)

    def place_batch(self, batch, whole: bool = False):
        """This process's slice of the global batch (``whole``: the global batch itself, the
        same on every process) -> global arrays split over the mesh."""
        if self.plain:
            return jax.device_put(batch)
        if whole:
            return self.place_tree(batch, self.batch_specs(batch))

        def put(v, spec):
            if spec == P():
                return self.place_tree(v, spec)
            return jax.make_array_from_process_local_data(self.sharding(spec), v)
        return jax.tree.map(put, batch, self.batch_specs(batch))


def to_host(x: jax.Array) -> np.ndarray:
    """A (possibly multi-process) global array as one host NumPy array."""
    if not isinstance(x, jax.Array) or x.is_fully_addressable:
        return np.asarray(jax.device_get(x))
    if x.sharding.is_fully_replicated:
        return np.asarray(x.addressable_data(0))
    from jax.experimental import multihost_utils
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def process_index() -> int:
    return jax.process_index()


def is_primary() -> bool:
    """Only process 0 writes exports, logs and the work dir's text files."""
    return jax.process_index() == 0


def sync(name: str) -> None:
    """A barrier across processes (no-op in a one-process run)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(name)


def allgather_host(values: Sequence[int]) -> np.ndarray:
    """Small host integers from every process -> ``[processes, len(values)]`` on every process."""
    arr = np.asarray(values, np.int64)
    if jax.process_count() == 1:
        return arr[None]
    from jax.experimental import multihost_utils
    return np.asarray(multihost_utils.process_allgather(arr)).reshape(jax.process_count(), -1)
