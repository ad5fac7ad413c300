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
"""

from __future__ import annotations

import functools
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import objectives
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
                             jnp.asarray(points, jnp.int32), jnp.asarray(mask))


def make_optimizer(cfg: Config) -> optax.GradientTransformation:
    return optax.inject_hyperparams(optax.sgd)(learning_rate=cfg.lr)


def make_schedule(cfg: Config, total_words: int) -> optax.Schedule:
    return optax.linear_schedule(cfg.lr, cfg.lr * cfg.train.min_lr_ratio, max(int(total_words), 1))


def init_state(cfg: Config, vocab_size: int) -> TrainState:
    """word2vec.c's initialisation: ``emb_in ~ U[-0.5/D, 0.5/D]``, ``emb_out = 0``."""
    d = cfg.model.dim
    root = jax.random.key(cfg.train.seed)
    init_key, step_key = jax.random.split(root)
    emb_in = jax.random.uniform(init_key, (vocab_size, d), jnp.float32, -0.5 / d, 0.5 / d)
    out_rows = vocab_size - 1 if cfg.model.loss == "hs" else vocab_size
    params = {"emb_in": emb_in, "emb_out": jnp.zeros((out_rows, d), jnp.float32)}
    opt_state = make_optimizer(cfg).init(params)
    return TrainState(jnp.zeros((), jnp.int32), params, opt_state, step_key)


def _multiplicity(ids: jax.Array, weights: jax.Array, zeros: jax.Array) -> tuple[jax.Array, jax.Array]:
    """How many (weighted) times each id's row is touched in this update, gathered back to ``ids``.

    ``zeros`` is an all-zero ``[rows]`` buffer; it is returned all-zero again (only the
    touched entries are reset), so a scan can carry it instead of filling ``[V]`` every update.
    """
    flat = ids.reshape(-1)
    counts = zeros.at[flat].add(jnp.broadcast_to(weights, ids.shape).reshape(-1), mode="promise_in_bounds")
    return counts[ids], counts.at[flat].set(0.0, mode="promise_in_bounds")


def count_buffers(params: dict) -> dict:
    return {k: jnp.zeros(v.shape[:1], jnp.float32) for k, v in params.items()}


def cap_row_updates(grads: dict, ids: dict, aux: dict, mb: dict, bufs: dict, cap: float):
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
    """
    mask = mb["mask"]
    w_in = mask if mb["inp"].ndim == 1 else mask[:, None] * mb["inp_mask"]
    m_in, buf_in = _multiplicity(ids["in"], w_in, bufs["emb_in"])
    out = {"in": grads["in"] / jnp.maximum(1.0, m_in / cap)[..., None]}
    if ids["out"] is None:
        out["out"] = grads["out"] / jnp.maximum(1.0, aux["touch"] / cap)[:, None]
        return out, dict(bufs, emb_in=buf_in)
    if "contexts" in aux:  # skip-gram window: one touch per context
        mask = mask * aux["contexts"]
    w_out = mask[:, None] * aux.get("path_mask", jnp.ones(ids["out"].shape, jnp.float32))
    m_out, buf_out = _multiplicity(ids["out"], w_out, bufs["emb_out"])
    out["out"] = grads["out"] / jnp.maximum(1.0, m_out / cap)[..., None]
    return out, {"emb_in": buf_in, "emb_out": buf_out}


MAX_SOFTMAX_LOGITS = 1 << 24  # [batch, V] logits above this many floats are computed in chunks


def softmax_chunk(cfg: Config, vocab_size: int) -> int:
    """Vocabulary chunk for the full softmax: 0 (dense) while ``[batch, V]`` stays small."""
    if cfg.train.softmax_chunk:
        return cfg.train.softmax_chunk
    if cfg.batch_size * vocab_size <= MAX_SOFTMAX_LOGITS:
        return 0
    return max(256, MAX_SOFTMAX_LOGITS // cfg.batch_size)


def make_update(cfg: Config, tables: objectives.Tables, schedule: optax.Schedule):
    """One SGD update on one micro-batch.

    ``(params, opt_state, step, key, mb, bufs) -> (params, opt_state, loss_sum, bufs)``, where
    ``bufs`` are the all-zero count buffers of :func:`count_buffers` (None: made here).
    """
    m = cfg.model
    tx = make_optimizer(cfg)
    chunk = softmax_chunk(cfg, tables.noise_accept.shape[0])
    loss_fn = functools.partial(objectives.example_loss, model=m.model, loss=m.loss,
                                cbow_mean=m.cbow_mean, softmax_chunk=chunk)

    def update(params, opt_state, step, key, mb, bufs=None):
        rows, ids, aux = objectives.gather(params, mb, tables, m.loss, jax.random.fold_in(key, step),
                                           m.negative)
        if m.model == "skipgram" and cfg.windows:
            aux["contexts"] = mb["inp_mask"].sum(-1)
        def total(r):
            per = loss_fn(r, mb, aux)
            return per.sum(), per.sum()
        grads, loss_sum = jax.grad(total, has_aux=True)(rows)
        bias_grad = grads.pop("bias", None)
        if cfg.train.row_update_cap > 0:
            if bias_grad is not None:  # full softmax: touches = target count + sum_e y_ej
                count = jnp.zeros_like(bias_grad).at[mb["out"]].add(mb["mask"])
                aux = dict(aux, touch=bias_grad + 2.0 * count)
            if bufs is None:
                bufs = count_buffers(params)
            grads, bufs = cap_row_updates(grads, ids, aux, mb, bufs, cfg.train.row_update_cap)
        hyper = dict(opt_state.hyperparams, learning_rate=schedule(mb["words"]))
        opt_state = opt_state._replace(hyperparams=hyper)
        upd, opt_state = tx.update(grads, opt_state)
        emb_in = params["emb_in"].at[ids["in"]].add(upd["in"], mode="promise_in_bounds")
        if ids["out"] is None:
            emb_out = params["emb_out"] + upd["out"]
        else:
            emb_out = params["emb_out"].at[ids["out"]].add(upd["out"], mode="promise_in_bounds")
        return {"emb_in": emb_in, "emb_out": emb_out}, opt_state, loss_sum, bufs

    return update


def make_train_step(cfg: Config, tables: objectives.Tables, total_words: int):
    """Jitted ``(state, batch) -> (state, metrics)``; ``state`` is donated.

    ``batch`` arrays have leading axes ``[steps_per_call, batch_size]``;
    ``metrics`` holds device scalars (loss sum, examples, last learning rate),
    pulled to the host only when the caller logs.
    """
    schedule = make_schedule(cfg, total_words)
    update = make_update(cfg, tables, schedule)

    def micro(carry, mb):
        params, opt_state, step, key, bufs = carry
        params, opt_state, loss_sum, bufs = update(params, opt_state, step, key, mb, bufs)
        return (params, opt_state, step + 1, key, bufs), loss_sum

    @functools.partial(jax.jit, donate_argnums=0)
    def train_step(state: TrainState, batch: dict):
        bufs = count_buffers(state.params) if cfg.train.row_update_cap > 0 else None
        carry = (state.params, state.opt_state, state.step, state.key, bufs)
        (params, opt_state, step, key, _), loss_sums = jax.lax.scan(micro, carry, batch)
        metrics = {"loss_sum": loss_sums.sum(), "examples": batch["mask"].sum(),
                   "lr": opt_state.hyperparams["learning_rate"]}
        return TrainState(step, params, opt_state, key), metrics

    return train_step
