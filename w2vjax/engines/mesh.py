"""The mesh engine: the XLA update on several devices (and hosts), inside one ``shard_map``.

Each device takes the gradients of its slice of the micro-batch, then ONE all-gather gives every
device the whole micro-batch's row updates and ids, so all apply the same updates in the same
order as one device would.  With row-sharded tables (``--shard-tables``) rows are read by an
all-gather of the ids, a masked local lookup and a reduce-scatter, and each device scatter-adds
only the rows it owns.  The design and its collective sizes: ``docs/distributed.md``.
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import objectives
from ..config import Config
from . import xla


TABLES = {"in": "emb_in", "out": "emb_out"}


def _all_gather(x: jax.Array, axis: Optional[str], n: int) -> jax.Array:
    """This device's slice ``[b, ...]`` -> the whole batch ``[n * b, ...]``, in batch order."""
    return jax.lax.all_gather(x, axis, tiled=True) if n > 1 else x


def _owned(table: jax.Array, ids: jax.Array, axis: str) -> jax.Array:
    """Row-sharded tables: the local row index of ``ids``, or the shard's size (an index that
    a ``mode='drop'`` scatter drops) for the rows another device owns."""
    per = table.shape[0]
    local = ids - jax.lax.axis_index(axis) * per
    return jnp.where((local >= 0) & (local < per), local, per)


def all_gather_packed(tree: Any, axis: Optional[str], n: int, summed: Optional[jax.Array] = None):
    """:func:`_all_gather` of a pytree of ``[b, ...]`` 32-bit arrays as ONE collective.

    One collective per update instead of one per array: cheaper, and the XLA CPU runtime
    can deadlock on independent collectives when there are more devices than cores.
    ``summed`` (the full softmax's dense output gradient) is all-reduced in the same
    collective: then the batch arrays are gathered by a psum too (each device adds its
    slice at its offset into zeros, which is exact).  Returns ``(tree, summed)``.
    """
    leaves, treedef = jax.tree.flatten(tree)
    b = leaves[0].shape[0]
    # ids travel as their bits through an all-gather; through a sum they must be numbers (the
    # bit patterns of small ints are denormal floats, which the CPU flushes to zero); ids
    # below 2**24 are exact in float32
    to32 = ((lambda x: jax.lax.bitcast_convert_type(x, jnp.float32)) if summed is None
            else (lambda x: x.astype(jnp.float32)))
    back = ((lambda x, dt: jax.lax.bitcast_convert_type(x, dt)) if summed is None
            else (lambda x, dt: x.astype(dt)))
    flat = jnp.concatenate([to32(x).reshape(b, -1) if x.dtype != jnp.float32 else x.reshape(b, -1)
                            for x in leaves], axis=1)
    if summed is None:
        got = _all_gather(flat, axis, n)
    else:
        slot = jax.lax.dynamic_update_slice_in_dim(jnp.zeros((n * b, flat.shape[1]), flat.dtype), flat,
                                                   jax.lax.axis_index(axis) * b, axis=0)
        both = jax.lax.psum(jnp.concatenate([slot.reshape(-1), summed.reshape(-1)]), axis)
        got = both[:slot.size].reshape(slot.shape)
        summed = both[slot.size:].reshape(summed.shape)
    out, at = [], 0
    for x in leaves:
        w = int(np.prod(x.shape[1:], dtype=np.int64))
        part = got[:, at:at + w].reshape((got.shape[0],) + x.shape[1:])
        out.append(part if x.dtype == jnp.float32 else back(part, x.dtype))
        at += w
    return jax.tree.unflatten(treedef, out), summed


class Collectives:
    """What the XLA update (:func:`w2vjax.engines.xla.make_update`) does differently on a mesh:
    how rows are read, how a device's slice becomes the whole micro-batch, how updates land."""

    def __init__(self, axis: str, n: int, shard_tables: bool, rows: dict):
        self.axis, self.n, self.shard_tables, self.rows = axis, n, shard_tables, rows

    def lookup(self, params: dict):
        if not self.shard_tables:
            return None

        def take(name, ids):
            table = params[name]
            local = _owned(table, _all_gather(ids, self.axis, self.n), self.axis)
            got = table.at[local].get(mode="fill", fill_value=0)
            return jax.lax.psum_scatter(got, self.axis, scatter_dimension=0, tiled=True) if self.n > 1 else got
        return take

    def whole_batch(self, per, grads, bias_grad, ids, aux, mb):
        """This device's slice of an update -> the whole micro-batch's, in batch order, in one
        collective; the full softmax's dense output gradient (and bias gradient) is all-reduced."""
        dense_out = ids["out"] is None
        scalar_words = mb.words.ndim == 0
        local = {"per": per, "in": grads["in"], "ids_in": ids["in"], "aux": aux,
                 "mb": mb._replace(neg=None, words=None if scalar_words else mb.words)}
        if not dense_out:
            local.update(out=grads["out"], ids_out=ids["out"])
        dense = jnp.concatenate([grads["out"], bias_grad[:, None]], axis=1) if dense_out else None
        got, dense = all_gather_packed(local, self.axis, self.n, dense)
        out_grad = dense[:, :-1] if dense_out else got["out"]
        bias_grad = dense[:, -1] if dense_out else bias_grad
        whole_mb = got["mb"]._replace(words=mb.words) if scalar_words else got["mb"]
        return (got["per"], {"in": got["in"], "out": out_grad}, bias_grad,
                {"in": got["ids_in"], "out": None if dense_out else got["ids_out"]}, got["aux"], whole_mb)

    def whole_call(self, batch):
        """This device's slice of a call's examples ``[steps, b, ...]`` -> the whole micro-batches'
        ``[steps, n * b, ...]``, in batch order (as :meth:`whole_batch` gathers them), in one
        collective."""
        front = jax.tree.map(lambda x: jnp.moveaxis(x, 1, 0), batch)
        got, _ = all_gather_packed(front, self.axis, self.n)
        return jax.tree.map(lambda x: jnp.moveaxis(x, 0, 1), got)

    def whole_updates(self, per, grads):
        """This device's per-example losses and row gradients -> the whole micro-batch's, in one
        collective, when the whole micro-batch's examples are known already (:meth:`whole_call`)."""
        got, _ = all_gather_packed({"per": per, "in": grads["in"], "out": grads["out"]}, self.axis, self.n)
        return got["per"], {"in": got["in"], "out": got["out"]}

    def local_ids(self, params: dict):
        """Row-sharded tables: ``(k, ids) -> `` the ids into this device's shard of table ``k``
        (``'in'`` / ``'out'``), the rows another device owns mapped past the shard's end."""
        return lambda k, ids: _owned(params[TABLES[k]], ids, self.axis)

    def apply(self, params: dict, upd: dict, ids: dict, orders: Optional[dict] = None) -> dict:
        """Scatter-add the whole micro-batch's updates; with row-sharded tables each device adds
        only those of the rows it owns (``orders``: sorted in its shard's ids, :func:`xla.call_orders`)."""
        if self.shard_tables:
            ids = {k: self.local_ids(params)(k, v) for k, v in ids.items()}
        return xla.apply_updates(params, upd, ids, orders)


def make_run(cfg: Config, tables: objectives.Tables, schedule: optax.Schedule, layout, sort_ids: bool = False):
    """The XLA engine's call (:func:`w2vjax.engines.xla.make_run`) inside ``shard_map`` over
    ``layout``'s mesh (:class:`w2vjax.sharding.Layout`); every collective is written out here,
    none left to the GSPMD partitioner."""
    from jax.sharding import PartitionSpec as P

    from ..sharding import AXIS
    if layout.shard_tables and cfg.model.loss == "softmax":
        raise ValueError("the full softmax reads every output row; it cannot use row-sharded tables")
    coll = Collectives(AXIS, layout.size, layout.shard_tables, layout.rows)
    scan = xla.make_run(cfg, tables, schedule, coll=coll, data_shards=layout.data_shards, sort_ids=sort_ids)

    def run(params, opt_state, step, key, batch):
        specs = layout.param_specs()
        body = jax.shard_map(scan, mesh=layout.mesh, check_vma=False,
                             in_specs=(specs, P(), P(), P(), layout.batch_specs(batch)),
                             out_specs=(specs, P(), P(), P()))
        return body(params, opt_state, step, key, batch)

    return run
