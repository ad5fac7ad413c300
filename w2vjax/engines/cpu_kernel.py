"""The fused CPU engine: negative sampling, NCE, sampled softmax and hierarchical softmax as one C++ loop per call,
called from XLA through the FFI (``w2vjax/kernels/logistic_update.cc``, shipped with the package).

XLA:CPU materialises the reference step's gathered rows and reads each three times; the kernel
reads a row once to compute and once to update, skips padded slots, and counts the row-update
cap's touches itself.  On one thread it computes the XLA engine's update (the same batch
semantics, learning rate and row-update cap, up to float rounding: ``tests/test_kernel.py``) and
the same vectors on every run.  Several threads run Hogwild: each takes the next micro-batch of
the call not yet taken and reads and writes the shared tables without locks, as word2vec.c's
and gensim's threads do; the vectors then depend on the threads' timing.

The kernel is compiled on first use with the system's C++ compiler (``$CXX``, else ``g++``)
against the XLA FFI headers jaxlib ships, into a cache directory keyed by the source, the
compiler flags, jaxlib's version and the CPU (``$W2VJAX_CACHE``, else ``~/.cache/w2vjax``).
Without a compiler, :func:`available` says why and :func:`w2vjax.engines.choose` keeps the
XLA engine.
"""

from __future__ import annotations

import ctypes
import os
import functools
from pathlib import Path
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import native, objectives
from ..config import Config
from . import xla

SOURCE = native.KERNELS / "logistic_update.cc"
TARGET = "w2vjax_logistic_update"
PATH_TARGET = "w2vjax_path_update"
OFFSET_TARGET = "w2vjax_offset_update"
SOFTMAX_TARGET = "w2vjax_softmax_update"
FLAGS = ("-O3", "-march=native", "-std=c++20", "-shared", "-fPIC", "-fopenmp-simd", "-pthread", "-w")


@functools.lru_cache(maxsize=None)
def _build() -> tuple[Optional[Path], str]:
    """``(path of the built library, '')`` or ``(None, why not)``."""
    import jaxlib
    return native.build(SOURCE, (*FLAGS, "-isystem", jax.ffi.include_dir()), (jaxlib.__version__,))


@functools.lru_cache(maxsize=None)
def _register() -> str:
    lib, why = _build()
    if lib is None:
        return why
    try:
        handle = ctypes.cdll.LoadLibrary(str(lib))
        jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(handle.W2vLogisticUpdate), platform="cpu")
        jax.ffi.register_ffi_target(PATH_TARGET, jax.ffi.pycapsule(handle.W2vPathUpdate), platform="cpu")
        jax.ffi.register_ffi_target(OFFSET_TARGET, jax.ffi.pycapsule(handle.W2vOffsetUpdate), platform="cpu")
        jax.ffi.register_ffi_target(SOFTMAX_TARGET, jax.ffi.pycapsule(handle.W2vSoftmaxUpdate), platform="cpu")
    except (OSError, AttributeError, ValueError) as e:
        return f"loading {lib.name} failed: {e}"
    return ""


def available() -> tuple[bool, str]:
    """Whether the kernel is built and registered (building it on first call), and if not, why."""
    why = _register()
    return not why, why


def default_threads() -> int:
    """Threads for the kernel: the cores this process may use (they run Hogwild)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def logistic_update(emb_in, emb_out, in_ids, in_hw, in_coef, out_ids, sign, weight, out_coef,
                    threads: int, cap: float = 0.0, offset=None, softmax: bool = False):
    """``steps`` micro-batches of logistic-row updates, applied in place (donate the tables),
    on ``threads`` Hogwild threads; ``cap`` > 0: the row-update cap (a slot's update is
    divided by ``max(1, touches / cap)``, ``touches`` = the slots of its row in its micro-batch
    with a nonzero coefficient).

    ``in_*``: ``[S, B, C]`` (input row ids, forward weights ``h = sum_c hw_c u_c``, update
    coefficients), ``out_ids``, ``sign``, ``weight``, ``out_coef``: ``[S, B, J]``.  Ids out of
    range and zero weights / coefficients are skipped.  ``offset`` ``[S, B, J]`` (NCE's
    ``log(k q(w))``): each slot's logit is ``v_j . h - offset_j``.  ``softmax``: sampled softmax
    instead of the logistic loss (slot 0 the true word, signs +1, a removed hit weight 0, ``offset``
    required; :func:`w2vjax.losses.sampled_softmax`).  Returns ``(emb_in, emb_out, loss [S, B])``.
    """
    out_args = (out_ids.astype(jnp.int32), sign, weight, out_coef)
    if softmax:
        return _call(SOFTMAX_TARGET, emb_in, emb_out, in_ids, in_hw, in_coef, out_args + (offset,), threads, cap)
    if offset is not None:  # NCE: the logit of slot j is v_j . h - offset_j
        return _call(OFFSET_TARGET, emb_in, emb_out, in_ids, in_hw, in_coef, out_args + (offset,), threads, cap)
    return _call(TARGET, emb_in, emb_out, in_ids, in_hw, in_coef, out_args, threads, cap)


def _call(target, emb_in, emb_out, in_ids, in_hw, in_coef, out_args, threads, cap):
    """Either entry of the kernel: the tables (updated in place) and the input side, then the
    entry's own output-slot arguments; returns ``(emb_in, emb_out, loss [S, B])``."""
    s, b = in_ids.shape[:2]
    call = jax.ffi.ffi_call(
        target,
        (jax.ShapeDtypeStruct(emb_in.shape, jnp.float32), jax.ShapeDtypeStruct(emb_out.shape, jnp.float32),
         jax.ShapeDtypeStruct((s, b), jnp.float32)),
        input_output_aliases={0: 0, 1: 1})
    return call(emb_in, emb_out, in_ids.astype(jnp.int32), in_hw, in_coef, *out_args, threads=np.int64(threads),
                hogwild=np.int64(1), cap=np.float32(cap))


def path_update(emb_in, emb_out, in_ids, in_hw, in_coef, word, weight, out_coef, points, signs, lens,
                threads: int, cap: float = 0.0):
    """:func:`logistic_update` for hierarchical softmax, the output slots looked up in the kernel:
    example ``(s, b)``'s slots are the first ``lens[w]`` nodes of word ``w = word[s, b]``'s Huffman
    path, rows ``points[w, k]``, signs ``signs[w, k]``, each with the example's ``weight`` and
    ``out_coef`` (``[S, B]``).  The same update as :func:`logistic_update` of the gathered paths
    (``out_ids = points[word]``, weights and coefficients zero past ``lens``), without the
    caller writing four ``[S, B, L]`` arrays per call."""
    return _call(PATH_TARGET, emb_in, emb_out, in_ids, in_hw, in_coef,
                 (word.astype(jnp.int32), weight, out_coef, points.astype(jnp.int32), signs, lens.astype(jnp.int32)),
                 threads, cap)


def make_run(cfg: Config, tables: objectives.Tables, schedule: optax.Schedule, threads: int,
             data_shards: int = 1):
    """A whole call's micro-batches through the kernel:
    ``(params, opt_state, step, key, batch) -> (params, opt_state, step, metrics)``, the update of
    :func:`w2vjax.engines.xla.make_run` (optax's SGD step ``-lr * grad``, the row-update cap with
    the kernel's own touch counts), the per-micro-batch learning rates and example weights
    computed here in XLA.  ``batch``: :class:`~w2vjax.batches.Pairs` (skip-gram) or ``Windows``
    (CBOW), with the host stream's noise words for negative sampling."""
    ok, why = available()
    if not ok:
        raise RuntimeError(f"the CPU kernel is not available: {why}")
    m = cfg.model
    paths = objectives.huffman_paths(tables) if m.loss == "hs" else None

    def run(params, opt_state, step, key, batch):
        del key  # the host stream drew the noise words
        lr = jax.vmap(lambda w: schedule(xla.global_words(w, data_shards)))(batch.words)[:, None, None]
        tables_in = (params["emb_in"], params["emb_out"])
        in_ids, in_hw, in_gw = objectives.kernel_inputs(batch, m.model, cbow_mean=m.cbow_mean,
                                                        exact_grad=m.cbow_exact_grad)
        in_coef = lr * in_gw * batch.mask[..., None]
        # a slot with a nonzero coefficient touches its row: the kernel counts the touches
        if paths is not None:  # the kernel looks the Huffman paths up itself
            mask = batch.mask.astype(jnp.float32)
            emb_in, emb_out, loss = path_update(*tables_in, in_ids, in_hw, in_coef, batch.out, mask,
                                                lr[..., 0] * mask, *paths, threads, cap=cfg.row_cap)
        else:
            *_, out_ids, sign, weight, offset = objectives.logistic_terms(batch, tables, m.model, m.loss,
                                                                          cbow_mean=m.cbow_mean)
            _, w_out = xla.touch_weights(batch, out_ids.shape)
            emb_in, emb_out, loss = logistic_update(*tables_in, in_ids, in_hw, in_coef, out_ids, sign,
                                                    weight, lr * w_out, threads, cap=cfg.row_cap, offset=offset,
                                                    softmax=m.loss == "sampled-softmax")
        opt_state = xla.after_updates(opt_state, in_ids.shape[0], lr[-1, 0, 0])
        metrics = {"loss_sum": loss.sum(), "examples": batch.mask.sum(), "lr": lr[-1, 0, 0]}
        return {"emb_in": emb_in, "emb_out": emb_out}, opt_state, step + in_ids.shape[0], metrics

    return run
