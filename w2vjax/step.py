"""Train state and the jitted train step.

One call of the step runs ``steps_per_call`` SGD updates (``lax.scan`` over
micro-batches, which amortises dispatch on CPU while keeping updates small, as
word2vec.c's are).  Each update:

1. draws its negatives from ``fold_in(key, step)``;
2. gathers the rows it touches and takes the gradient of the summed
   per-example loss with respect to those rows only (never a dense ``[V, D]``
   gradient; the full softmax is the exception, since every output row has a
   gradient there by definition);
3. runs it through an optax SGD whose learning rate is an optax linear schedule
   of the raw words done (word2vec.c's decay from ``lr`` to ``lr * 1e-4`` over
   ``epochs * train_words``), injected with ``optax.inject_hyperparams``;
4. scatter-adds the updates into the tables, which are donated to the call so
   XLA updates them in place.

On a one-device CPU run with the host stream, negative sampling and hierarchical softmax
replace steps 2-4 by the fused C++ kernel of :mod:`w2vjax.kernel` (:func:`make_kernel_run`):
the same update, with the same learning rates and row-update cap, computed in one loop.
"""

from __future__ import annotations

import functools
from typing import Any, Optional

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import objectives, windows
from .config import Config
from .vocab import Vocab, alias_table


@flax.struct.dataclass
class TrainState:
    step: jax.Array  # int32 number of updates done
    params: dict  # {'emb_in': [V, D], 'emb_out': [V or V-1, D]}
    opt_state: Any
    key: jax.Array  # base key for per-step randomness (fold_in(step))


def make_tables(vocab: Vocab, cfg: Config) -> objectives.Tables:
    accept, alias = alias_table(vocab.noise_probs(cfg.data.noise_exponent))
    v = len(vocab)
    if cfg.model.loss == "hs":
        hf = vocab.huffman()
        codes, points, mask = hf.codes, hf.points, hf.mask
    else:
        codes = points = np.zeros((v, 1), np.int32)
        mask = np.zeros((v, 1), bool)
    return objectives.Tables(jnp.asarray(accept), jnp.asarray(alias), jnp.asarray(codes, jnp.int32),
                             jnp.asarray(points, jnp.int32), jnp.asarray(mask),
                             jnp.asarray(vocab.keep_prob(cfg.data.sample), jnp.float32))


def make_optimizer(cfg: Config) -> optax.GradientTransformation:
    return optax.inject_hyperparams(optax.sgd)(learning_rate=cfg.lr)


def make_schedule(cfg: Config, total_words: int) -> optax.Schedule:
    return optax.linear_schedule(cfg.lr, cfg.lr * cfg.train.min_lr_ratio, max(int(total_words), 1))


def init_state(cfg: Config, vocab_size: int, layout=None) -> TrainState:
    """word2vec.c's initialisation: ``emb_in ~ U[-0.5/D, 0.5/D]``, ``emb_out = 0``.

    With a ``layout`` (:class:`w2vjax.sharding.Layout`) the state is made directly in its
    shardings, each device drawing only its rows (the tables never exist whole on one
    device); the values equal the one-device ones (JAX's partitionable threefry draws by
    element index), plus padding rows that are never touched.
    """
    d = cfg.model.dim
    out_rows = vocab_size - 1 if cfg.model.loss == "hs" else vocab_size

    def make(rows_in, rows_out):
        root = jax.random.key(cfg.train.seed)
        init_key, step_key = jax.random.split(root)
        emb_in = jax.random.uniform(init_key, (rows_in, d), jnp.float32, -0.5 / d, 0.5 / d)
        params = {"emb_in": emb_in, "emb_out": jnp.zeros((rows_out, d), jnp.float32)}
        opt_state = make_optimizer(cfg).init(params)
        return TrainState(jnp.zeros((), jnp.int32), params, opt_state, step_key)

    if layout is None or layout.plain:
        return make(vocab_size, out_rows)
    from jax.sharding import PartitionSpec as P
    shapes = jax.eval_shape(lambda: make(layout.padded["emb_in"], layout.padded["emb_out"]))
    rep = layout.sharding(P())
    shardings = jax.tree.map(lambda _: rep, shapes)
    shardings = shardings.replace(params={k: layout.sharding(layout.table_spec) for k in shapes.params})
    return jax.jit(lambda: make(layout.padded["emb_in"], layout.padded["emb_out"]), out_shardings=shardings)()


def state_tree(state: TrainState) -> dict:
    """The state as a plain tree of arrays (the PRNG key as its raw data): what a checkpoint holds."""
    return {"step": state.step, "params": state.params, "opt_state": state.opt_state,
            "key": jax.random.key_data(state.key)}


def abstract_state_tree(cfg: Config, vocab_size: int) -> dict:
    """Shapes and dtypes of :func:`state_tree` of an unpadded state, computing nothing."""
    return jax.eval_shape(lambda: state_tree(init_state(cfg, vocab_size)))


def _multiplicity(ids: jax.Array, weights: jax.Array, zeros: jax.Array) -> tuple[jax.Array, jax.Array]:
    """How many (weighted) times each id's row is touched in this update, gathered back to ``ids``.

    ``zeros`` is an all-zero ``[rows]`` buffer; it is returned all-zero again (only the
    touched entries are reset), so a scan can carry it instead of filling ``[V]`` every update.
    """
    flat = ids.reshape(-1)
    counts = zeros.at[flat].add(jnp.broadcast_to(weights, ids.shape).reshape(-1), mode="drop")
    return counts.at[ids].get(mode="fill", fill_value=0), counts.at[flat].set(0.0, mode="drop")


def count_buffers(params: dict, rows: Optional[dict] = None) -> dict:
    """All-zero ``[rows]`` count buffers per table: the tables' own rows, or ``rows`` (the global
    row counts, when ``params`` are one device's shard of row-sharded tables)."""
    if rows is None:
        rows = {k: v.shape[0] for k, v in params.items()}
    return {k: jnp.zeros((r,), jnp.float32) for k, r in rows.items()}


def touch_weights(xp, mb: dict, out_shape: tuple, path_mask=None, skipgram_windows: bool = False):
    """How much each id slot counts as a touch of its row: ``(w_in, w_out)``, broadcastable to
    the input and output ids.  ``xp`` is ``jax.numpy`` (the device) or ``numpy`` (the host's
    :class:`HostCounts`): one definition for both, so they count the same touches."""
    mask = mb["mask"]
    is_windows = mb["inp"].ndim == mask.ndim + 1
    w_in = mask[..., None] * mb["inp_mask"] if is_windows else mask
    w_out = mask
    if skipgram_windows:  # skip-gram window: the output rows get one touch per context
        w_out = w_out * mb["inp_mask"].sum(-1)
    w_out = w_out[..., None]
    if path_mask is not None:
        w_out = w_out * path_mask
    return w_in, xp.broadcast_to(w_out, out_shape)


DROP = 2 ** 31 - 1  # the row id of a slot that updates nothing: every scatter skips it


def drop_padding(ids: dict, mb: dict, aux: dict, skipgram_windows: bool = False) -> dict:
    """The ids of the slots that update nothing -> :data:`DROP`, which the scatters skip.

    Padding slots (a masked example, an empty context slot of a window, the padded end of a
    Huffman path) have zero updates, so skipping them changes no value; it saves their
    read-add-write (with device windows over half of a skip-gram micro-step's slots are
    empty; the Huffman paths are padded to the longest code) and, on a GPU, the atomic adds
    that would all pile onto the one row the padding points at.
    """
    out = ids["out"]
    w_in, w_out = touch_weights(jnp, mb, mb["mask"].shape + (1,) if out is None else out.shape,
                                aux.get("path_mask"), skipgram_windows)
    return {"in": jnp.where(jnp.broadcast_to(w_in, ids["in"].shape) > 0, ids["in"], DROP),
            "out": None if out is None else jnp.where(w_out > 0, out, DROP)}


def cap_row_updates(grads: dict, ids: dict, aux: dict, mb: dict, bufs: Optional[dict], cap: float,
                    skipgram_windows: bool = False):
    """Scale the summed update of a row touched ``m`` times by ``1 / max(1, m / cap)``.

    word2vec.c applies the updates of one row one after another, each on the
    row as the last one left it, so they correct each other; a batch sums them
    all, computed from the same old row.  For rows touched a few times (a rare
    word, or the overlap of neighbouring windows) the two agree; for a row
    touched hundreds of times per batch (the Huffman root, frequent noise
    words) the sum overshoots and training diverges.  Capping a row at ``cap``
    summed updates per step is what ``cap`` Hogwild threads of word2vec.c would
    apply at once.  For the full softmax, a row's touches are its count as a
    target plus its expected count ``sum_e y_ej`` (``aux['touch']``).

    The touch counts are ``mb['m_in']`` / ``mb['m_out']`` when the host computed them
    (:class:`HostCounts`, the one-device CPU path); else they are counted here in the all-zero
    ``bufs`` (scatters and a gather over ``[V]`` per table and update).
    """
    if "m_in" in mb:
        m_in, m_out = mb["m_in"], mb["m_out"]
    else:
        out_shape = None if ids["out"] is None else ids["out"].shape
        w_in, w_out = touch_weights(jnp, mb, out_shape or mb["mask"].shape + (1,), aux.get("path_mask"),
                                    skipgram_windows)
        m_in, buf_in = _multiplicity(ids["in"], w_in, bufs["emb_in"])
        bufs = dict(bufs, emb_in=buf_in)
        m_out = None
        if ids["out"] is not None:
            m_out, buf_out = _multiplicity(ids["out"], w_out, bufs["emb_out"])
            bufs = dict(bufs, emb_out=buf_out)
    out = {"in": grads["in"] / cap_divisor(m_in, cap)[..., None]}
    if ids["out"] is None:
        out["out"] = grads["out"] / cap_divisor(aux["touch"], cap)[:, None]
    else:
        out["out"] = grads["out"] / cap_divisor(m_out, cap)[..., None]
    return out, bufs


def cap_divisor(touches: jax.Array, cap: float) -> jax.Array:
    """What the row-update cap divides the update of a slot whose row is touched ``touches``
    times by: ``max(1, touches / cap)``."""
    return jnp.maximum(1.0, touches / cap)


class HostCounts:
    """The row-update cap's touch counts of a whole call's batch, computed with NumPy.

    ``batch -> batch + {'m_in', 'm_out'}``: per micro-batch, how many (weighted) times each
    input and output id slot's row is touched, exactly what :func:`cap_row_updates` counts on
    the device (sums of small integers, exact in float32).  Run in the prefetch thread, it
    takes that bookkeeping off the device (with the host's noise words, the CPU step is 0.63
    instead of 0.91 µs per skip-gram pair: ``benchmarks/results/step_profile.md``).
    For negative sampling (with the noise words in ``batch['neg']``) and hierarchical softmax.
    """

    def __init__(self, cfg: Config, tables: objectives.Tables):
        if cfg.model.loss not in ("ns", "hs"):
            raise ValueError("host touch counts are for negative sampling and hierarchical softmax")
        self.loss = cfg.model.loss
        self.skipgram_windows = cfg.model.model == "skipgram" and cfg.windows
        self.points = np.asarray(tables.points)
        self.path_mask = np.asarray(tables.path_mask, np.float32)

    def __call__(self, batch: dict) -> dict:
        if self.loss == "ns":
            out_ids, path_mask = np.concatenate([batch["out"][..., None], batch["neg"]], axis=-1), None
        else:
            out_ids, path_mask = self.points[batch["out"]], self.path_mask[batch["out"]]
        w_in, w_out = touch_weights(np, batch, out_ids.shape, path_mask, self.skipgram_windows)
        return dict(batch, m_in=step_counts(batch["inp"], w_in), m_out=step_counts(out_ids, w_out))


def step_counts(ids: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """For ids ``[steps, ...]``: the summed ``weights`` of the slots holding the same id in the
    same step, for every slot (0 where the slot's own weight is 0: those slots update nothing).

    One ``np.add.at`` into a zeroed scratch row per step, read back, then the touched entries
    are zeroed again: linear in the slots, whatever the vocabulary (a sort over the whole call
    cost 7x more).  The sums are of small integers, exact in float32 in any order.
    """
    s = ids.shape[0]
    flat = ids.reshape(s, -1)
    w = np.ascontiguousarray(np.broadcast_to(weights, ids.shape), np.float32).reshape(s, -1)
    scratch = np.zeros(int(ids.max(initial=0)) + 1, np.float32)
    out = np.empty(flat.shape, np.float32)
    for i in range(s):
        np.add.at(scratch, flat[i], w[i])
        out[i] = scratch[flat[i]]
        scratch[flat[i]] = 0.0
    out *= w != 0
    return out.reshape(ids.shape)


# device windows draw from fold_in(key, DATA_KEY): never a step's fold_in(key, step), since step < 2**31
DATA_KEY = 0xFFFFFFFF

MAX_SOFTMAX_LOGITS = 1 << 24  # [batch, V] logits above this many floats are computed in chunks


def softmax_chunk(cfg: Config, vocab_size: int) -> int:
    """Vocabulary chunk for the full softmax: 0 (dense) while ``[batch, V]`` stays small."""
    if cfg.train.softmax_chunk:
        return cfg.train.softmax_chunk
    if cfg.batch_size * vocab_size <= MAX_SOFTMAX_LOGITS:
        return 0
    return max(256, MAX_SOFTMAX_LOGITS // cfg.batch_size)


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


def _whole_batch(per, grads, bias_grad, ids, aux, mb, axis: str, n: int):
    """On a mesh: this device's slice of an update (per-example losses, row gradients and their
    ids, auxiliary inputs, the micro-batch) -> the whole micro-batch's, in batch order, in one
    collective; the full softmax's dense output gradient (and bias gradient) is all-reduced."""
    dense_out = ids["out"] is None
    local = {"per": per, "in": grads["in"], "ids_in": ids["in"], "aux": aux,
             "mb": {k: v for k, v in mb.items() if k != "neg" and (k != "words" or v.ndim)}}
    if not dense_out:
        local.update(out=grads["out"], ids_out=ids["out"])
    dense = jnp.concatenate([grads["out"], bias_grad[:, None]], axis=1) if dense_out else None
    got, dense = all_gather_packed(local, axis, n, dense)
    out_grad = dense[:, :-1] if dense_out else got["out"]
    bias_grad = dense[:, -1] if dense_out else bias_grad
    whole_mb = dict(got["mb"], words=mb["words"]) if mb["words"].ndim == 0 else got["mb"]
    return (got["per"], {"in": got["in"], "out": out_grad}, bias_grad,
            {"in": got["ids_in"], "out": None if dense_out else got["ids_out"]}, got["aux"], whole_mb)


def make_update(cfg: Config, tables: objectives.Tables, schedule: optax.Schedule, *,
                axis: Optional[str] = None, num_devices: int = 1, shard_tables: bool = False,
                rows: Optional[dict] = None, data_shards: int = 1):
    """One SGD update on one micro-batch.

    ``(params, opt_state, step, key, mb, bufs) -> (params, opt_state, stats, bufs)``, where
    ``bufs`` are the all-zero count buffers of :func:`count_buffers` (None: made here) and
    ``stats`` the micro-batch's ``loss_sum`` and ``examples``.

    With ``axis`` (inside :func:`jax.shard_map` over ``num_devices`` devices) ``mb`` is this
    device's slice of the micro-batch.  The device draws the global batch's negatives from the
    same key and keeps its slice, takes the gradients of its examples, and all-gathers the
    row updates and their ids, so every device applies the whole batch's updates in the same
    order as one device would (see :mod:`w2vjax.sharding` for the communication).  With
    ``shard_tables`` each device holds ``rows[t] / num_devices`` rows of each table: rows are
    read by an all-gather of the ids, a masked local lookup and a reduce-scatter, and each
    device scatter-adds only the updates of the rows it owns.
    """
    m = cfg.model
    tx = make_optimizer(cfg)
    chunk = softmax_chunk(cfg, tables.noise_accept.shape[0])
    loss_fn = functools.partial(objectives.example_loss, model=m.model, loss=m.loss,
                                cbow_mean=m.cbow_mean, softmax_chunk=chunk)
    n = num_devices if axis else 1
    if shard_tables and m.loss == "softmax":
        raise ValueError("the full softmax reads every output row; it cannot use row-sharded tables")

    def sharded_lookup(params):
        def lookup(name, ids):
            table = params[name]
            local = _owned(table, _all_gather(ids, axis, n), axis)
            got = table.at[local].get(mode="fill", fill_value=0)
            return jax.lax.psum_scatter(got, axis, scatter_dimension=0, tiled=True) if n > 1 else got
        return lookup

    def update(params, opt_state, step, key, mb, bufs=None):
        if "tokens" in mb:  # device windows: the micro-step's examples, made from its rows of tokens
            mb = windows.device_examples(mb, jax.random.fold_in(key, DATA_KEY), tables, window=cfg.data.window,
                                         windows=cfg.windows, negative=m.negative if m.loss == "ns" else 0)
        k = jax.random.fold_in(key, step)
        neg = mb.get("neg")  # the stream's noise words (each example carries its own)
        if m.loss == "ns" and neg is None:  # else the global batch's draws, whatever the number of devices
            b = mb["out"].shape[0]
            neg = objectives.sample_negatives(k, tables, (b * n,) + mb["out"].shape[1:] + (m.negative,))
            if n > 1:
                neg = jax.lax.dynamic_slice_in_dim(neg, jax.lax.axis_index(axis) * b, b)
        lookup = sharded_lookup(params) if shard_tables else None
        rows_, ids, aux = objectives.gather(params, mb, tables, m.loss, k, m.negative, neg=neg, lookup=lookup)
        def total(r):
            per = loss_fn(r, mb, aux)
            return per.sum(), per
        grads, per = jax.grad(total, has_aux=True)(rows_)
        bias_grad = grads.pop("bias", None)
        if n > 1:  # from here on every device works on the whole micro-batch
            per, grads, bias_grad, ids, aux, mb = _whole_batch(per, grads, bias_grad, ids, aux, mb, axis, n)
        loss_sum = per.sum()
        words = global_words(mb["words"], data_shards)
        ids = drop_padding(ids, mb, aux, m.model == "skipgram" and cfg.windows)
        if cfg.row_cap > 0:
            if bias_grad is not None:  # full softmax: touches = target count + sum_e y_ej
                count = jnp.zeros_like(bias_grad).at[mb["out"]].add(mb["mask"])
                aux = dict(aux, touch=bias_grad + 2.0 * count)
            if bufs is None and "m_in" not in mb:
                bufs = count_buffers(params, rows)
            grads, bufs = cap_row_updates(grads, ids, aux, mb, bufs, cfg.row_cap,
                                          m.model == "skipgram" and cfg.windows)
        hyper = dict(opt_state.hyperparams, learning_rate=schedule(words))
        opt_state = opt_state._replace(hyperparams=hyper)
        upd, opt_state = tx.update(grads, opt_state)
        stats = {"loss_sum": loss_sum, "examples": mb["mask"].sum()}
        return apply_updates(params, upd, ids, axis if shard_tables else None), opt_state, stats, bufs

    return update


def apply_updates(params: dict, upd: dict, ids: dict, sharded_axis: Optional[str] = None) -> dict:
    """Scatter-add the row updates ``upd['in'|'out']`` into the tables at ``ids`` (in place: the
    tables are donated; ids out of range, :data:`DROP`, are skipped); ``ids['out']`` None: a
    dense output update (the full softmax).
    ``sharded_axis``: the tables are this device's rows of row-sharded tables, and each device
    adds only the updates of the rows it owns."""
    if sharded_axis is not None:
        return {name: params[name].at[_owned(params[name], ids[k], sharded_axis)].add(upd[k], mode="drop")
                for name, k in (("emb_in", "in"), ("emb_out", "out"))}
    emb_in = params["emb_in"].at[ids["in"]].add(upd["in"], mode="drop")
    if ids["out"] is None:
        emb_out = params["emb_out"] + upd["out"]
    else:
        emb_out = params["emb_out"].at[ids["out"]].add(upd["out"], mode="drop")
    return {"emb_in": emb_in, "emb_out": emb_out}


def global_words(words: jax.Array, data_shards: int) -> jax.Array:
    """Raw words done before a micro-batch: ``words`` is a scalar already, or ``[batch]`` when
    the batch is the concatenation of ``data_shards`` streams, each example carrying its own
    stream's raw words done: then the run's words done is their sum."""
    if words.ndim == 0:
        return words
    return words.reshape(data_shards, -1)[:, 0].sum()


def make_kernel_run(cfg: Config, tables: objectives.Tables, schedule: optax.Schedule, threads: int,
                    data_shards: int = 1, hogwild: bool = False):
    """A whole call's micro-batches through the fused CPU kernel (:mod:`w2vjax.kernel`):
    ``(params, opt_state, step, key, batch) -> (params, opt_state, step, metrics)``, the same
    update as :func:`make_update` scanned over the micro-batches (optax's SGD step
    ``-lr * grad``, the row-update cap with the kernel's own touch counts), with the
    per-micro-batch learning rates and example weights computed here in XLA.
    Negative sampling (noise words from the host stream) and hierarchical softmax, one device.
    ``hogwild`` (with ``threads`` > 1): the threads run their own ranges of the micro-batches
    at the same time, without locks (:func:`w2vjax.kernel.logistic_update`; hierarchical softmax
    through :func:`w2vjax.kernel.path_update`, which looks the Huffman paths up itself)."""
    from . import kernel
    ok, why = kernel.available()
    if not ok:
        raise RuntimeError(f"the CPU kernel is not available: {why}")
    m = cfg.model
    paths = objectives.huffman_paths(tables) if m.loss == "hs" else None

    def run(params, opt_state, step, key, batch):
        del key  # the host stream drew the noise words
        lr = jax.vmap(lambda w: schedule(global_words(w, data_shards)))(batch["words"])[:, None, None]
        # a slot with a nonzero coefficient touches its row: the kernel counts the touches
        # (touch_weights: an output slot's weight is the example's mask, times the path mask)
        tables_in = (params["emb_in"], params["emb_out"])
        in_ids, in_hw, in_gw = objectives.kernel_inputs(batch, m.model, cbow_mean=m.cbow_mean)
        in_coef = lr * in_gw * batch["mask"][..., None]
        if paths is not None:  # the kernel looks the Huffman paths up itself
            mask = batch["mask"].astype(jnp.float32)
            emb_in, emb_out, loss = kernel.path_update(*tables_in, in_ids, in_hw, in_coef, batch["out"], mask,
                                                       lr[..., 0] * mask, *paths, threads, hogwild=hogwild,
                                                       cap=cfg.row_cap)
        else:
            *_, out_ids, sign, weight = objectives.logistic_terms(batch, tables, m.model, m.loss,
                                                                  cbow_mean=m.cbow_mean)
            _, w_out = touch_weights(jnp, batch, out_ids.shape)
            emb_in, emb_out, loss = kernel.logistic_update(*tables_in, in_ids, in_hw, in_coef, out_ids, sign,
                                                           weight, lr * w_out, threads, hogwild=hogwild,
                                                           cap=cfg.row_cap)
        opt_state = opt_state._replace(hyperparams=dict(opt_state.hyperparams, learning_rate=lr[-1, 0, 0]))
        metrics = {"loss_sum": loss.sum(), "examples": batch["mask"].sum(), "lr": lr[-1, 0, 0]}
        return {"emb_in": emb_in, "emb_out": emb_out}, opt_state, step + in_ids.shape[0], metrics

    return run


def make_train_step(cfg: Config, tables: objectives.Tables, total_words: int, layout=None,
                    kernel_threads: int = 0, hogwild: bool = False):
    """Jitted ``(state, batch) -> (state, metrics)``; ``state`` is donated.

    ``batch`` arrays have leading axes ``[steps_per_call, batch_size]``;
    ``metrics`` holds device scalars (loss sum, examples, last learning rate),
    pulled to the host only when the caller logs.  ``layout`` (a
    :class:`w2vjax.sharding.Layout`) spreads the batch over a device mesh; None or a
    one-device layout with replicated tables runs the plain single-device step.
    ``kernel_threads`` > 0: the one-device CPU step runs the fused kernel on that many threads
    (:func:`make_kernel_run`, Hogwild with ``hogwild``; batches carry the host's noise words).
    """
    schedule = make_schedule(cfg, total_words)
    shards = layout.data_shards if layout is not None else 1
    if layout is None or layout.plain:
        update = make_update(cfg, tables, schedule, data_shards=shards)
    else:
        from .sharding import AXIS
        update = make_update(cfg, tables, schedule, axis=AXIS, num_devices=layout.size,
                             shard_tables=layout.shard_tables, rows=layout.rows, data_shards=shards)

    def micro(carry, mb):
        params, opt_state, step, key, bufs = carry
        params, opt_state, stats, bufs = update(params, opt_state, step, key, mb, bufs)
        return (params, opt_state, step + 1, key, bufs), stats

    def run_scan(params, opt_state, step, key, batch):
        bufs = None
        if cfg.row_cap > 0 and "m_in" not in batch:
            bufs = count_buffers(params, None if layout is None else layout.rows)
        (params, opt_state, step, key, _), stats = jax.lax.scan(
            micro, (params, opt_state, step, key, bufs), batch)
        metrics = {k: v.sum() for k, v in stats.items()}
        metrics["lr"] = opt_state.hyperparams["learning_rate"]
        return params, opt_state, step, metrics

    if kernel_threads > 0:
        if not (layout is None or layout.plain):
            raise ValueError("the CPU kernel runs on one device")
        run_scan = make_kernel_run(cfg, tables, schedule, kernel_threads, shards, hogwild)  # noqa: F811

    traces = [0]  # times the step was traced (= compiled for new shapes); 1 for a whole run

    @functools.partial(jax.jit, donate_argnums=0)
    def train_step(state: TrainState, batch: dict):
        traces[0] += 1  # runs at trace time only
        if layout is None or layout.plain:
            params, opt_state, step, metrics = run_scan(state.params, state.opt_state, state.step,
                                                        state.key, batch)
        else:  # everything, collectives included, happens inside shard_map (none left to GSPMD)
            from jax.sharding import PartitionSpec as P
            specs = layout.param_specs()
            body = jax.shard_map(run_scan, mesh=layout.mesh, check_vma=False,
                                 in_specs=(specs, P(), P(), P(), layout.batch_specs(batch)),
                                 out_specs=(specs, P(), P(), P()))
            params, opt_state, step, metrics = body(state.params, state.opt_state, state.step,
                                                    state.key, batch)
        return TrainState(step, params, opt_state, state.key), metrics

    train_step.traces = lambda: traces[0]
    return train_step
