"""The reference engine: every model x objective, on any device, in plain XLA.

One update of a micro-batch:

1. gather the rows the examples touch and take the gradient of the summed per-example loss
   with respect to those rows only (never a dense ``[V, D]`` gradient; the full softmax is
   the exception, since every output row has a gradient there by definition);
2. the row-update cap (:func:`cap_row_updates`) scales down rows touched many times;
3. optax SGD, its learning rate word2vec.c's linear decay of the raw words done
   (``optax.inject_hyperparams``);
4. scatter-add the updates into the tables, which are donated so XLA updates them in place.

A call scans ``steps_per_call`` updates (:func:`make_run`).  On several devices the same update
runs inside ``shard_map`` with the collectives of :mod:`w2vjax.engines.mesh` (``coll``).
"""

from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp
import optax

from .. import objectives, windows
from ..batches import Examples, TokenRows, Windows
from ..config import SAMPLED, Config

DROP = 2 ** 31 - 1  # the row id of a slot that updates nothing: every scatter skips it
# device windows draw from fold_in(key, DATA_KEY): never a step's fold_in(key, step), since step < 2**31
DATA_KEY = 0xFFFFFFFF
MAX_SOFTMAX_LOGITS = 1 << 24  # [batch, V] logits above this many floats are computed in chunks


def make_optimizer(cfg: Config) -> optax.GradientTransformation:
    return optax.inject_hyperparams(optax.sgd)(learning_rate=cfg.lr)


def after_updates(opt_state, steps, lr):
    """The optimizer state after ``steps`` SGD updates, the last at rate ``lr``: what
    ``steps`` calls of the injected optimizer's ``update`` leave (its count and its rate).  A call
    applies ``optax.sgd`` at each micro-step's rate and settles the state once, after its scan: a
    count carried through the scan is one more small kernel per micro-step on a GPU."""
    return opt_state._replace(count=opt_state.count + steps,
                              hyperparams=dict(opt_state.hyperparams, learning_rate=lr))


def make_schedule(cfg: Config, total_words: int) -> optax.Schedule:
    """word2vec.c's decay: from ``lr`` to ``lr * min_lr_ratio`` over the run's raw words."""
    return optax.linear_schedule(cfg.lr, cfg.lr * cfg.train.min_lr_ratio, max(int(total_words), 1))


def softmax_chunk(cfg: Config, vocab_size: int) -> int:
    """Vocabulary chunk for the full softmax: 0 (dense) while ``[batch, V]`` stays small."""
    if cfg.train.softmax_chunk:
        return cfg.train.softmax_chunk
    if cfg.batch_size * vocab_size <= MAX_SOFTMAX_LOGITS:
        return 0
    return max(256, MAX_SOFTMAX_LOGITS // cfg.batch_size)


def global_words(words: jax.Array, data_shards: int) -> jax.Array:
    """Raw words done before a micro-batch: ``words`` is a scalar already, or ``[batch]`` when
    the batch joins ``data_shards`` streams, each example carrying its own stream's count."""
    if words.ndim == 0:
        return words
    return words.reshape(data_shards, -1)[:, 0].sum()


def touch_weights(mb: Examples, out_shape: tuple, path_mask=None, skipgram_windows: bool = False):
    """How much each id slot counts as a touch of its row: ``(w_in, w_out)``, broadcastable to
    the input and output ids."""
    w_in = mb.mask[..., None] * mb.inp_mask if isinstance(mb, Windows) else mb.mask
    w_out = mb.mask
    if skipgram_windows:  # skip-gram window: the output rows get one touch per context
        w_out = w_out * mb.inp_mask.sum(-1)
    w_out = w_out[..., None]
    if path_mask is not None:
        w_out = w_out * path_mask
    return w_in, jnp.broadcast_to(w_out, out_shape)


def drop_padding(ids: dict, mb: Examples, aux: dict, skipgram_windows: bool = False) -> dict:
    """The ids of the slots that update nothing -> :data:`DROP`, which the scatters skip.

    Padding slots have zero updates, so skipping them changes no value; it saves their
    read-add-write and, on a GPU, atomics that would all pile onto the row the padding names.
    """
    out = ids["out"]
    w_in, w_out = touch_weights(mb, mb.mask.shape + (1,) if out is None else out.shape,
                                aux.get("path_mask"), skipgram_windows)
    return {"in": jnp.where(jnp.broadcast_to(w_in, ids["in"].shape) > 0, ids["in"], DROP),
            "out": None if out is None else jnp.where(w_out > 0, out, DROP)}


def _multiplicity(ids: jax.Array, weights: jax.Array, zeros: jax.Array) -> tuple[jax.Array, jax.Array]:
    """How many (weighted) times each id's row is touched in this update, gathered back to ``ids``.

    ``zeros`` is an all-zero int32 ``[rows]`` buffer, returned all-zero again (only the touched
    entries are reset), so a scan can carry it instead of filling ``[V]`` every update.  The
    weights are whole numbers (masks and context counts), so the counts are int32: exact, and
    on a GPU a native atomic add instead of a float compare-and-swap loop.
    """
    flat = ids.reshape(-1)
    w = jnp.broadcast_to(weights, ids.shape).reshape(-1).astype(jnp.int32)
    counts = zeros.at[flat].add(w, mode="drop")
    got = counts.at[ids].get(mode="fill", fill_value=0).astype(jnp.float32)
    return got, counts.at[flat].set(0, mode="drop")


def count_buffers(params: dict, rows: Optional[dict] = None) -> dict:
    """All-zero int32 ``[rows]`` count buffers per table: the tables' own rows, or ``rows`` (the
    global row counts, when ``params`` are one device's shard of row-sharded tables)."""
    if rows is None:
        rows = {k: v.shape[0] for k, v in params.items()}
    return {k: jnp.zeros((r,), jnp.int32) for k, r in rows.items()}


def cap_divisor(touches: jax.Array, cap: float) -> jax.Array:
    """What the row-update cap divides a slot's update by: ``max(1, touches / cap)``."""
    return jnp.maximum(1.0, touches / cap)


def cap_row_updates(grads: dict, ids: dict, aux: dict, mb: Examples, bufs: Optional[dict], cap: float,
                    skipgram_windows: bool = False, touches: Optional[tuple] = None):
    """Scale the summed update of a row touched ``m`` times by ``1 / max(1, m / cap)``.

    word2vec.c applies the updates of one row one after another, each on the row as the last
    left it; a batch sums them, all computed from the same old row.  For a row touched hundreds
    of times per batch (the Huffman root, frequent noise words) the sum overshoots and training
    diverges; ``cap`` summed updates per step is what ``cap`` Hogwild threads of word2vec.c
    would apply at once.  For the full softmax a row's touches are its count as a target plus
    its expected count ``sum_e y_ej`` (``aux['touch']``).  Touches are ``touches`` (``(m_in,
    m_out)``, per slot, counted for a whole call by :func:`call_touches`), or counted here in the
    all-zero ``bufs`` (a scatter and a gather over ``[V]`` per table and update).
    """
    out_shape = None if ids["out"] is None else ids["out"].shape
    w_in, w_out = touch_weights(mb, out_shape or mb.mask.shape + (1,), aux.get("path_mask"), skipgram_windows)
    if touches is not None:
        m_in, m_out = touches
    else:
        m_in, buf_in = _multiplicity(ids["in"], w_in, bufs["emb_in"])
        bufs = dict(bufs, emb_in=buf_in)
    out = {"in": grads["in"] / cap_divisor(m_in, cap)[..., None]}
    if ids["out"] is None:
        out["out"] = grads["out"] / cap_divisor(aux["touch"], cap)[:, None]
    else:
        if touches is None:
            m_out, buf_out = _multiplicity(ids["out"], w_out, bufs["emb_out"])
            bufs = dict(bufs, emb_out=buf_out)
        out["out"] = grads["out"] / cap_divisor(m_out, cap)[..., None]
    return out, bufs


MAX_CALL_COUNTS = 1 << 25  # steps x rows above this: touches are counted per update instead


def call_touches(cfg: Config, tables: objectives.Tables, batch: Examples, rows: dict) -> Optional[tuple]:
    """The row-update cap's touch counts of every slot of a whole call ``[steps, ...]``, counted at
    once (one scatter-add and one gather per table into ``[steps * V]`` int32, keyed by step and
    row), before the scan: they depend on the ids only.  None where that buffer would be too big."""
    steps = batch.mask.shape[0]
    if steps * max(rows.values()) > MAX_CALL_COUNTS:
        return None
    m = cfg.model
    out_ids, aux = (None, {}) if m.loss == "softmax" else objectives._output_ids(batch.out, tables, m.loss, batch.neg)
    w_in, w_out = touch_weights(batch, batch.mask.shape + (1,) if out_ids is None else out_ids.shape,
                                aux.get("path_mask"), m.model == "skipgram" and cfg.windows)

    def count(ids, w, v):
        at = jnp.arange(steps, dtype=jnp.int32).reshape((steps,) + (1,) * (ids.ndim - 1)) * v + ids
        w = jnp.broadcast_to(w, ids.shape).astype(jnp.int32)
        got = jnp.zeros((steps * v,), jnp.int32).at[at.reshape(-1)].add(w.reshape(-1))[at]
        return jnp.where(w > 0, got, 0).astype(jnp.float32)
    m_in = count(batch.inp, w_in, rows["emb_in"])
    return m_in, None if out_ids is None else count(out_ids, w_out, rows["emb_out"])


# a TPU's compiler sorts the ids of a scatter of more slots than about this in the scatter itself
# (libtpu 0.0.42: 9,000 and more, not 8,256; benchmarks/results/accelerator_compile_after)
SORTED_SCATTER_SLOTS = 8192
# on a mesh every scatter's ids are sorted: compiled for 8 TPU v5e chips, skip-gram/NS with its
# 7,296-slot input scatter unsorted staged the whole output table through on-chip memory every
# micro-step, and with both sorted did not (benchmarks/results/accelerator_compile_after)
MESH_SORTED_SCATTER_SLOTS = 0
# a skip-gram micro-step of more pairs than this computes its input update behind an optimization
# barrier, before either scatter: compiled for an H200 (jaxlib 0.10.2), from 32768 pairs (48,320 slots;
# NS and HS alike) XLA:GPU otherwise scatters the output rows first and copies both whole tables every
# micro-step to keep the old rows the input update reads; at 16384 (24,160) and below it does not, nor
# does CBOW at 16384 windows, and there the barrier costs a kernel and up to a third more bytes
# (benchmarks/results/accelerator_compile_after/README.md)
BARRIER_SLOTS = 1 << 15


def call_orders(cfg: Config, tables: objectives.Tables, batch: Examples, min_slots: Optional[int] = None,
                local=None) -> dict:
    """For each table whose scatter has more than ``min_slots`` (:data:`SORTED_SCATTER_SLOTS`) slots a micro-step,
    its ids for the whole call ``[steps, ...]`` in ascending order, with the permutation that
    sorts them: ``{'in'|'out': (sorted ids [steps, n], order [steps, n])}``, the slots that update
    nothing (:func:`drop_padding`) last as :data:`DROP`.  One batched sort per call, before the
    scan (the ids do not depend on the tables), so that a micro-step's scatters can say their ids
    are sorted: a TPU otherwise sorts a large scatter's ids in every micro-step.  ``local(k, ids)``
    (row-sharded tables): the ids into this device's shard that are sorted, the rows it does not
    own mapped past its end, which its scatter drops.  Smaller
    scatters stay as they are: sorting their updates would cost a gather for no sort saved."""
    m = cfg.model
    out_ids, aux = objectives._output_ids(batch.out, tables, m.loss, batch.neg)
    ids = drop_padding({"in": batch.inp, "out": out_ids}, batch, aux,
                       m.model == "skipgram" and cfg.windows)
    steps = batch.mask.shape[0]

    def sort(i):
        flat = i.reshape(steps, -1).astype(jnp.int32)
        iota = jax.lax.broadcasted_iota(jnp.int32, flat.shape, 1)
        return jax.lax.sort((flat, iota), dimension=1, num_keys=1)
    min_slots = SORTED_SCATTER_SLOTS if min_slots is None else min_slots
    if local is not None:
        ids = {k: local(k, v) for k, v in ids.items()}
    return {k: sort(v) for k, v in ids.items() if v.size // steps > min_slots}


def apply_updates(params: dict, upd: dict, ids: dict, orders: Optional[dict] = None) -> dict:
    """Scatter-add the row updates ``upd['in'|'out']`` into the tables at ``ids`` (in place: the
    tables are donated; ids out of range, :data:`DROP`, are skipped); ``ids['out']`` None: a
    dense output update (the full softmax).  ``orders`` (one micro-step's :func:`call_orders`):
    the updates are taken in their ids' sorted order and the scatters told the ids are sorted."""
    def add(table, k):
        if orders is None or k not in orders:
            return table.at[ids[k]].add(upd[k], mode="drop")
        sorted_ids, order = orders[k]
        rows = upd[k].reshape(-1, upd[k].shape[-1])[order]
        return table.at[sorted_ids].add(rows, mode="drop", indices_are_sorted=True)
    emb_in = add(params["emb_in"], "in")
    if ids["out"] is None:
        emb_out = params["emb_out"] + upd["out"]
    else:
        emb_out = add(params["emb_out"], "out")
    return {"emb_in": emb_in, "emb_out": emb_out}


def make_update(cfg: Config, tables: objectives.Tables, schedule: optax.Schedule, *, coll=None,
                data_shards: int = 1):
    """One SGD update on one micro-batch.

    ``(params, opt_state, step, key, mb, bufs) -> (params, opt_state, stats, bufs)``: ``mb`` is
    :class:`~w2vjax.batches.Pairs`, ``Windows`` (negative sampling: with the stream's noise
    words in ``mb.neg``) or ``TokenRows`` (examples made here, :func:`w2vjax.windows.device_examples`);
    ``bufs`` the all-zero count buffers of :func:`count_buffers` (None: made here); ``stats`` the
    micro-batch's ``loss_sum`` and ``examples``.  ``coll`` (:class:`w2vjax.engines.mesh.Collectives`):
    ``mb`` is this device's slice, and the collectives give every device the whole micro-batch's
    updates, applied in the same order as on one device.
    """
    m = cfg.model
    chunk = softmax_chunk(cfg, tables.noise_accept.shape[0])
    loss_fn = functools.partial(objectives.example_loss, model=m.model, loss=m.loss, cbow_mean=m.cbow_mean,
                                exact_grad=m.cbow_exact_grad, softmax_chunk=chunk)
    sg_windows = m.model == "skipgram" and cfg.windows

    def core(params, key, mb, bufs=None, touches=None, orders=None, whole=None):
        if isinstance(mb, TokenRows):  # device windows: this micro-step's examples, from its token rows
            mb = device_examples(cfg, tables, key, mb)
        if m.loss in SAMPLED and mb.neg is None:
            raise ValueError("negative sampling takes the noise words from the batch (batches.Pairs/Windows.neg)")
        lookup = coll.lookup(params) if coll is not None else None
        rows_, ids, aux = objectives.gather(params, mb, tables, m.loss, None, m.negative, neg=mb.neg, lookup=lookup)

        def total(r):
            per = loss_fn(r, mb, aux)
            return per.sum(), per
        grads, per = jax.grad(total, has_aux=True)(rows_)
        bias_grad = grads.pop("bias", None)
        if coll is not None and coll.n > 1 and whole is not None:  # the whole micro-batch's examples known
            per, grads = coll.whole_updates(per, grads)
            mb = whole if whole.words is not None else whole._replace(words=mb.words)
            out_ids, aux = objectives._output_ids(mb.out, tables, m.loss, mb.neg)
            ids = {"in": mb.inp, "out": out_ids}
        elif coll is not None and coll.n > 1:  # from here on every device works on the whole micro-batch
            per, grads, bias_grad, ids, aux, mb = coll.whole_batch(per, grads, bias_grad, ids, aux, mb)
        ids = drop_padding(ids, mb, aux, sg_windows)
        if cfg.row_cap > 0:
            if bias_grad is not None:  # full softmax: touches = target count + sum_e y_ej
                count = jnp.zeros_like(bias_grad).at[mb.out].add(mb.mask)
                aux = dict(aux, touch=bias_grad + 2.0 * count)
            if bufs is None and touches is None:
                bufs = count_buffers(params, coll.rows if coll is not None else None)
            grads, bufs = cap_row_updates(grads, ids, aux, mb, bufs, cfg.row_cap, sg_windows, touches)
        lr = rate(mb.words)
        sgd = optax.sgd(lr)  # the injected optimizer's inner transformation at this step's rate
        upd, _ = sgd.update(grads, sgd.init(grads))
        if not cfg.windows and ids["in"].size > BARRIER_SLOTS:  # both tables' updates made before either scatter
            upd = {**upd, "in": jax.lax.optimization_barrier(upd["in"])}
        params = coll.apply(params, upd, ids, orders) if coll is not None else apply_updates(params, upd, ids, orders)
        stats = {"loss_sum": loss_sums(per)}
        if coll is not None:  # mb is the whole micro-batch here, the call's batch one device's slice
            stats.update(examples=mb.mask.sum(), lr=lr)
        return params, stats, bufs

    def rate(words):  # the learning rate of a micro-batch that starts after ``words`` raw words
        return schedule(global_words(words, data_shards))

    def update(params, opt_state, step, key, mb, bufs=None, touches=None):
        params, stats, bufs = core(params, key, mb, bufs, touches)
        stats = {"examples": mb.mask.sum(), **stats, "loss_sum": stats["loss_sum"].sum()}
        lr = stats.pop("lr") if "lr" in stats else rate(mb.words)
        return params, after_updates(opt_state, 1, lr), stats, bufs

    update.core, update.rate = core, rate  # for make_run's scan: no optimizer state per micro-step
    return update


LOSS_SUM_CHUNK = 8192  # a micro-step sums its examples' losses in chunks of at most this many


def loss_sums(per: jax.Array) -> jax.Array:
    """A micro-step's loss, summed in a few equal chunks (``[k]``; the call sums them after its
    scan): XLA:GPU reduces more than about 8192 numbers to one in two kernels, a few chunks in one."""
    n = per.size
    k = -(-n // LOSS_SUM_CHUNK)
    while k <= 64 and n % k:
        k += 1
    return per.reshape(k, -1).sum(-1) if k <= 64 else per.sum()[None]


def device_examples(cfg: Config, tables: objectives.Tables, key: jax.Array, rows: TokenRows):
    """The examples of token rows (:func:`w2vjax.windows.device_examples`), for one micro-step or,
    with a leading ``[steps]`` axis, a whole call; they depend on the seed and the rows only."""
    def one(mb):
        return windows.device_examples(mb, jax.random.fold_in(key, DATA_KEY), tables, window=cfg.data.window,
                                       windows=cfg.windows,
                                       negative=cfg.model.negative if cfg.model.loss in SAMPLED else 0)
    return jax.vmap(one)(rows) if rows.row.ndim == 2 else one(rows)


MAX_CALL_EXAMPLE_BYTES = 1 << 28  # a mesh's whole call of examples above this: gathered per micro-step


def whole_call(coll, batch: Examples) -> Optional[Examples]:
    """On a mesh (``coll``, more than one device), the whole micro-batches' examples of a call
    ``[steps, n * b, ...]`` from this device's ``[steps, b, ...]``, in one all-gather before the
    scan (they do not depend on the tables), so that each micro-step gathers only its updates
    and its touch counts and scatter orders are made once per call; None on one device or
    when they would take more than :data:`MAX_CALL_EXAMPLE_BYTES`."""
    if coll is None or coll.n == 1:
        return None
    ids = batch if batch.words.ndim > 1 else batch._replace(words=None)  # per-example counts: the rates'
    size = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(ids)) * coll.n
    return coll.whole_call(ids) if size <= MAX_CALL_EXAMPLE_BYTES else None


def make_run(cfg: Config, tables: objectives.Tables, schedule: optax.Schedule, *, coll=None,
             data_shards: int = 1, sort_ids: bool = False):
    """A whole call: ``(params, opt_state, step, key, batch) -> (params, opt_state, step, metrics)``,
    :func:`make_update` scanned over the batch's leading ``[steps]`` axis.  Token rows become
    examples for the whole call first, outside the scan: they do not depend on the tables, and
    inside it they cost a dozen small kernels per update on a GPU; so do the row cap's touch
    counts (:func:`call_touches`) and, with ``sort_ids`` (the TPU default), the order of each
    micro-step's scatter ids (:func:`call_orders`); on a mesh from the whole micro-batches'
    examples, gathered once per call (:func:`whole_call`)."""
    update = make_update(cfg, tables, schedule, coll=coll, data_shards=data_shards)

    def micro(carry, xs):
        params, key, bufs = carry
        mb, whole, touches, orders = xs
        params, stats, bufs = update.core(params, key, mb, bufs, touches, orders, whole)
        return (params, key, bufs), stats

    def run(params, opt_state, step, key, batch):
        touches = bufs = orders = None
        device_made = isinstance(batch, TokenRows)
        if device_made:  # an accelerator's call: examples made up front
            batch = device_examples(cfg, tables, key, batch)
        # the examples whose ids a micro-step scatters: this device's, or on a mesh the whole
        # micro-batches', gathered once per call (None: gathered with the updates, per micro-step)
        whole = whole_call(coll, batch) if (device_made or sort_ids) and cfg.model.loss != "softmax" else None
        scattered = batch if coll is None or coll.n == 1 else whole
        if device_made and cfg.row_cap > 0 and scattered is not None:
            touches = call_touches(cfg, tables, scattered, coll.rows if coll is not None else
                                   {k: v.shape[0] for k, v in params.items()})
        if sort_ids and scattered is not None:
            orders = call_orders(cfg, tables, scattered, None if coll is None else MESH_SORTED_SCATTER_SLOTS,
                                 coll.local_ids(params) if coll is not None and coll.shard_tables else None)
        if cfg.row_cap > 0 and touches is None:
            bufs = count_buffers(params, coll.rows if coll is not None else None)
        (params, key, _), stats = jax.lax.scan(micro, (params, key, bufs), (batch, whole, touches, orders))
        steps = batch.mask.shape[0]
        # on one device the examples and the last rate depend on the batch only: counted once,
        # not per micro-step (on a mesh the batch is this device's slice: counted in the scan)
        if coll is None:
            metrics = {"loss_sum": stats["loss_sum"].sum(), "examples": batch.mask.sum(),
                       "lr": update.rate(batch.words[-1])}
        else:
            metrics = {"loss_sum": stats["loss_sum"].sum(), "examples": stats["examples"].sum(),
                       "lr": stats["lr"][-1]}
        return params, after_updates(opt_state, steps, metrics["lr"]), step + steps, metrics

    return run
