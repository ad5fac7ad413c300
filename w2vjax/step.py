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


def make_update(cfg: Config, tables: objectives.Tables, schedule: optax.Schedule):
    """One SGD update on one micro-batch: ``(params, opt_state, step, key, mb) -> (..., loss_sum)``."""
    m = cfg.model
    tx = make_optimizer(cfg)
    loss_fn = functools.partial(objectives.example_loss, model=m.model, loss=m.loss,
                                cbow_mean=m.cbow_mean, softmax_chunk=cfg.train.softmax_chunk)

    def update(params, opt_state, step, key, mb):
        rows, ids, aux = objectives.gather(params, mb, tables, m.loss, jax.random.fold_in(key, step),
                                           m.negative)
        def total(r):
            per = loss_fn(r, mb, aux)
            return per.sum(), per.sum()
        grads, loss_sum = jax.grad(total, has_aux=True)(rows)
        hyper = dict(opt_state.hyperparams, learning_rate=schedule(mb["words"]))
        opt_state = opt_state._replace(hyperparams=hyper)
        upd, opt_state = tx.update(grads, opt_state)
        emb_in = params["emb_in"].at[ids["in"]].add(upd["in"], mode="promise_in_bounds")
        if ids["out"] is None:
            emb_out = params["emb_out"] + upd["out"]
        else:
            emb_out = params["emb_out"].at[ids["out"]].add(upd["out"], mode="promise_in_bounds")
        return {"emb_in": emb_in, "emb_out": emb_out}, opt_state, loss_sum

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
        params, opt_state, step, key = carry
        params, opt_state, loss_sum = update(params, opt_state, step, key, mb)
        return (params, opt_state, step + 1, key), loss_sum

    @functools.partial(jax.jit, donate_argnums=0)
    def train_step(state: TrainState, batch: dict):
        carry = (state.params, state.opt_state, state.step, state.key)
        (params, opt_state, step, key), loss_sums = jax.lax.scan(micro, carry, batch)
        metrics = {"loss_sum": loss_sums.sum(), "examples": batch["mask"].sum(),
                   "lr": opt_state.hyperparams["learning_rate"]}
        return TrainState(step, params, opt_state, key), metrics

    return train_step
