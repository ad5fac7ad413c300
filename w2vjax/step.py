"""Train state and the jitted call.

A call runs ``steps_per_call`` updates of the chosen engine (:mod:`w2vjax.engines`) on one
batch with leading axes ``[steps_per_call, batch]``; the state is donated, so the tables are
updated in place, and metrics stay on the device until the caller logs.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import engines, objectives
from .config import Config
from .engines.xla import make_optimizer, make_schedule
from .vocab import Vocab, alias_table


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrainState:
    """A pytree (every field is data), as ``flax.struct.dataclass`` made it without importing flax."""
    step: jax.Array  # int32 number of updates done
    params: dict  # {'emb_in': [V, D], 'emb_out': [V or V-1, D]}
    opt_state: Any
    key: jax.Array  # base key for per-step randomness (fold_in(step))

    def replace(self, **changes) -> "TrainState":
        return dataclasses.replace(self, **changes)


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
                             jnp.asarray(vocab.keep_prob(cfg.data.sample), jnp.float32),
                             jnp.asarray(np.log(vocab.noise_probs(cfg.data.noise_exponent)), jnp.float32))


def init_state(cfg: Config, vocab_size: int, layout=None) -> TrainState:
    """``emb_in ~ U[-S/D, S/D]`` (``S = --init-scale``: 1 as gensim 4 and fastText, 0.5 as
    word2vec.c), ``emb_out = 0``.

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
        half = cfg.train.init_scale / d
        emb_in = jax.random.uniform(init_key, (rows_in, d), jnp.float32, -half, half)
        params = {"emb_in": emb_in, "emb_out": jnp.zeros((rows_out, d), jnp.float32)}
        opt_state = make_optimizer(cfg).init(params)
        return TrainState(jnp.zeros((), jnp.int32), params, opt_state, step_key)

    if layout is None or layout.plain:  # one jitted program, not a dozen eager ops compiled one by one
        return jax.jit(lambda: make(vocab_size, out_rows))()
    from jax.sharding import PartitionSpec as P
    shapes = jax.eval_shape(lambda: make(layout.padded["emb_in"], layout.padded["emb_out"]))
    rep = layout.sharding(P())
    shardings = jax.tree.map(lambda _: rep, shapes)
    shardings = shardings.replace(params={k: layout.sharding(layout.table_spec) for k in shapes.params})
    return jax.jit(lambda: make(layout.padded["emb_in"], layout.padded["emb_out"]), out_shardings=shardings)()


def set_input_rows(state: TrainState, rows, values) -> TrainState:
    """``state`` with input-table rows ``rows`` ``[K]`` set to ``values`` ``[K, D]`` (a warm
    start), in one jitted program that keeps every array's sharding; ``state`` is donated."""
    shardings = jax.tree.map(lambda x: x.sharding, state)

    @functools.partial(jax.jit, donate_argnums=0, out_shardings=shardings)
    def put(s: TrainState, r, v) -> TrainState:
        return s.replace(params={**s.params, "emb_in": s.params["emb_in"].at[r].set(v)})

    return put(state, jnp.asarray(rows, jnp.int32), jnp.asarray(values, jnp.float32))


def state_tree(state: TrainState) -> dict:
    """The state as a plain tree of arrays (the PRNG key as its raw data): what a checkpoint holds."""
    return {"step": state.step, "params": state.params, "opt_state": state.opt_state,
            "key": jax.random.key_data(state.key)}


def abstract_state_tree(cfg: Config, vocab_size: int) -> dict:
    """Shapes and dtypes of :func:`state_tree` of an unpadded state, computing nothing."""
    return jax.eval_shape(lambda: state_tree(init_state(cfg, vocab_size)))


def make_train_step(cfg: Config, tables: objectives.Tables, total_words: int, layout=None,
                    engine: engines.Engine = engines.Engine()):
    """Jitted ``(state, batch) -> (state, metrics)`` running ``engine`` (default: the XLA
    reference, or the mesh engine when ``layout`` spans several devices); ``state`` is donated.
    ``metrics`` holds device scalars (loss sum, examples, last learning rate)."""
    run = engines.make_run(engine, cfg, tables, make_schedule(cfg, total_words), layout)
    traces = [0]  # times the step was traced (= compiled for new shapes); 1 for a whole run

    @functools.partial(jax.jit, donate_argnums=0)
    def train_step(state: TrainState, batch):
        traces[0] += 1  # runs at trace time only
        params, opt_state, step, metrics = run(state.params, state.opt_state, state.step, state.key, batch)
        return TrainState(step, params, opt_state, state.key), metrics

    train_step.traces = lambda: traces[0]
    return train_step
