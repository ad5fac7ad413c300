"""Skip-gram and CBOW: what the input vector is and what is predicted.

This is the one place where a model x objective pair is put together:
:func:`gather` picks the rows of the two tables an example touches, and
:func:`example_loss` turns those rows into the per-example loss using
:mod:`w2vjax.losses`.  Gradients are taken with respect to the gathered rows
only; the engines (:mod:`w2vjax.engines`) scatter the updates back.

* skip-gram (word2vec.c's direction): the input vector is the *context* word's
  row of ``emb_in``; the *center* word is predicted.  Examples are either
  (context, center) pairs or center windows (``inp`` ``[B, 2W]`` with a mask):
  in a window (used with ``shared_negatives``) every context is its own input
  vector and the center's output rows (the center and one set of noise words) are
  gathered once and broadcast over the contexts: one set of negatives per center,
  as BlazingText does, instead of word2vec.c's one set per pair.
* CBOW: the input vector is the mean (or sum) of the context words' rows; the
  center word is predicted.  word2vec.c and gensim do not apply the exact
  gradient to the context rows: with the mean they add the full ``dL/dh`` to
  every context row (the exact gradient is ``dL/dh / C``); with the sum they add
  ``dL/dh / C`` (the exact one is ``dL/dh``).  ``exact_grad=False`` (default)
  reproduces their update, ``True`` gives Rong's exact gradient.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import losses
from .batches import Examples, Windows
from .config import SAMPLED


class Tables(NamedTuple):
    """Per-run constant arrays the objectives need (on the device)."""
    noise_accept: jax.Array  # [V] float32 alias-table acceptance
    noise_alias: jax.Array  # [V] int32 alias-table fallback ids
    codes: jax.Array  # [V, L] Huffman branch bits (HS), or [V, 1] dummy
    points: jax.Array  # [V, L] inner-node ids (HS), or [V, 1] dummy
    path_mask: jax.Array  # [V, L] (HS), or [V, 1] dummy
    keep_prob: jax.Array | None = None  # [V] float32 subsampling keep probabilities (device windows)
    noise_logq: jax.Array | None = None  # [V] float32 log q(w) of the noise table (NCE, sampled softmax)


def cbow_hidden(ctx_rows: jax.Array, ctx_mask: jax.Array, mean: bool = True,
                exact_grad: bool = False) -> jax.Array:
    """CBOW input vector ``h`` from context rows ``[B, C, D]`` and mask ``[B, C]``.

    Forward: ``h = sum_c mask_c v_c`` divided by ``C = sum_c mask_c`` when ``mean``.
    Backward: each context row receives ``g * dL/dh`` with ``g`` as described in
    the module docstring.
    """
    # a product and a sum, not an einsum: the einsum's gradient is a [B, D, C] product transposed
    # to [B, C, D], which XLA:GPU materialises for the input scatter; this one it fuses into it
    s = (ctx_rows * ctx_mask[..., None]).sum(-2)
    count = jnp.maximum(ctx_mask.sum(-1, keepdims=True), 1.0)
    h = s / count if mean else s
    g = (1.0 / count) if (mean == exact_grad) else jnp.ones_like(count)
    return g * s + jax.lax.stop_gradient(h - g * s)


def hidden(model: str, in_rows: jax.Array, batch: Examples, mean: bool = True,
           exact_grad: bool = False) -> jax.Array:
    if model == "skipgram":
        return in_rows
    return cbow_hidden(in_rows, batch.inp_mask, mean, exact_grad)


def sample_negatives(key: jax.Array, tables: Tables, shape: tuple[int, ...]) -> jax.Array:
    """Noise words ``[*shape]`` drawn exactly from the alias table (O(1) per draw)."""
    k1, k2 = jax.random.split(key)
    v = tables.noise_accept.shape[0]
    i = jax.random.randint(k1, shape, 0, v, dtype=jnp.int32)
    u = jax.random.uniform(k2, shape, jnp.float32)
    return jnp.where(u < tables.noise_accept[i], i, tables.noise_alias[i])


def gather(params: dict, batch: Examples, tables: Tables, loss: str, key: jax.Array | None,
           negative: int, *, neg: jax.Array | None = None, lookup=None):
    """Rows an update touches, the ids they came from, and auxiliary inputs.

    Returns ``(rows, ids, aux)``: ``rows = {'in': ..., 'out': ...}`` (for the full
    softmax ``rows['out']`` is the whole output table, ``ids['out']`` is None and
    ``rows['bias']`` a zero logit bias whose gradient counts each row's touches).
    ``neg``: the noise words ``[B, negative]`` if already drawn (else drawn from ``key``);
    ``lookup(table, ids)``: how rows are read (default ``params[table][ids]``; the
    row-sharded tables of :mod:`w2vjax.engines.mesh` read them with collectives).
    """
    take = lookup or (lambda name, i: params[name][i])
    inp, out = batch.inp, batch.out
    rows = {"in": take("emb_in", inp)}
    ids = {"in": inp}
    if loss == "softmax":
        rows["out"] = params["emb_out"]
        rows["bias"] = jnp.zeros(params["emb_out"].shape[:1], params["emb_out"].dtype)
        ids["out"] = None
        return rows, ids, {}
    if loss in SAMPLED and neg is None:
        neg = sample_negatives(key, tables, out.shape + (negative,))
    out_ids, aux = _output_ids(out, tables, loss, neg)
    rows["out"] = take("emb_out", out_ids)
    ids["out"] = out_ids
    return rows, ids, aux


def _output_ids(out: jax.Array, tables: Tables, loss: str, neg: jax.Array | None):
    """The output rows an example of negative sampling, NCE or sampled softmax ([true word, noise
    words]) or hierarchical softmax (the inner nodes of the word's Huffman path) touches, and their
    auxiliary inputs (NCE and sampled softmax: ``log_kq``, the rows' ``log(k q(w))``)."""
    if loss in SAMPLED:
        ids = jnp.concatenate([out[..., None], neg], axis=-1)
        aux = {} if loss == "nce" else {"neg_mask": (neg != out[..., None]).astype(jnp.float32)}
        if loss != "ns":  # sampled softmax corrects the samples only (see losses.sampled_softmax)
            kq_ids = ids if loss == "nce" else neg
            aux["log_kq"] = tables.noise_logq[kq_ids] + jnp.log(jnp.float32(neg.shape[-1]))
        return ids, aux
    return tables.points[out], {"codes": tables.codes[out],
                                "path_mask": tables.path_mask[out].astype(jnp.float32)}


def _sign_weight(aux: dict, loss: str, dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
    """Negative sampling or hierarchical softmax as the signs and weights of
    :func:`losses.logistic_rows` (sign ``1 - 2 code`` along a Huffman path)."""
    if loss == "ns":
        return _ns_sign_weight(aux["neg_mask"])
    return 1.0 - 2.0 * aux["codes"].astype(dtype), aux["path_mask"]


def example_loss(rows: dict, batch: Examples, aux: dict, model: str, loss: str, *,
                 cbow_mean: bool = True, exact_grad: bool = False,
                 softmax_chunk: int = 0) -> jax.Array:
    """Per-example loss ``[B]`` (zero where ``batch.mask`` is 0)."""
    if model == "skipgram" and isinstance(batch, Windows):  # center windows [B, 2W, D]
        return _skipgram_window_loss(rows, batch, aux, loss)
    h = hidden(model, rows["in"], batch, cbow_mean, exact_grad)
    if loss in ("ns", "hs"):  # = losses.negative_sampling / hierarchical_softmax (tested)
        per = losses.logistic_rows(h, rows["out"], *_sign_weight(aux, loss, h.dtype))
    elif loss == "nce":
        per = losses.nce(h, rows["out"], aux["log_kq"])
    elif loss == "sampled-softmax":
        per = losses.sampled_softmax(h, rows["out"], aux["log_kq"], aux["neg_mask"])
    else:
        per = losses.full_softmax(h, rows["out"], batch.out, softmax_chunk, rows.get("bias"))
    return per * batch.mask


def kernel_inputs(batch: Examples, model: str, *, cbow_mean: bool = True,
                  exact_grad: bool = False) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The input side of an example for the fused CPU kernel: ``(in_ids, in_hw, in_gw)`` with
    ``h = sum_c in_hw_c emb_in[in_ids_c]`` and the input row ``c`` receiving ``in_gw_c * dL/dh``
    (CBOW's convention, see :func:`cbow_hidden`).  Skip-gram (context, center) pairs and CBOW
    windows; leading axes ``[..., B]``."""
    inp, out = batch.inp, batch.out
    if model == "skipgram":
        if isinstance(batch, Windows):
            raise ValueError("the kernel takes skip-gram (context, center) pairs, not center windows")
        in_ids = inp[..., None]
        in_hw = in_gw = jnp.ones(in_ids.shape, jnp.float32)
        return in_ids, in_hw, in_gw
    ctx = batch.inp_mask.astype(jnp.float32)
    count = jnp.maximum(ctx.sum(-1, keepdims=True), 1.0)
    in_hw = ctx / count if cbow_mean else ctx
    in_gw = ctx / count if cbow_mean == exact_grad else ctx
    return inp, in_hw, in_gw


def logistic_terms(batch: Examples, tables: Tables, model: str, loss: str, *, cbow_mean: bool = True,
                   exact_grad: bool = False) -> tuple[jax.Array, ...]:
    """An example of negative sampling, NCE, sampled softmax or hierarchical softmax as the rows and weights of
    :func:`losses.logistic_rows`, for the fused CPU kernel (:mod:`w2vjax.kernel`), which takes
    no gradient: ``(in_ids, in_hw, in_gw, out_ids, sign, weight, offset)``, the input side as
    :func:`kernel_inputs`, and the loss ``logistic_rows(h, emb_out[out_ids], sign, weight)``
    (``batch.mask`` folded into ``weight``), with the noise words in ``batch.neg`` (the
    host stream's).  ``offset`` is None but for NCE: ``log(k q(w))`` of each slot, subtracted from
    its logit (:func:`losses.nce` is the logistic loss of the shifted logits, label 1 for the true
    word and 0 for every noise word, none dropped); sampled softmax: signs +1, the samples'
    ``log(k q(w))`` (the true word's 0) and weight 0 for an accidental hit, the kernel's softmax
    entry normalising over the slots (:func:`losses.sampled_softmax`)."""
    in_ids, in_hw, in_gw = kernel_inputs(batch, model, cbow_mean=cbow_mean, exact_grad=exact_grad)
    if loss not in ("ns", "hs", "nce", "sampled-softmax"):
        raise ValueError("the kernel is for negative sampling, NCE, sampled softmax and hierarchical softmax")
    out_ids, aux = _output_ids(batch.out, tables, loss, batch.neg)
    if loss == "sampled-softmax":
        mask = aux["neg_mask"]
        weight = jnp.concatenate([jnp.ones_like(mask[..., :1]), mask], axis=-1)
        offset = jnp.concatenate([jnp.zeros_like(aux["log_kq"][..., :1]), aux["log_kq"]], axis=-1)
        return (in_ids, in_hw, in_gw, out_ids, jnp.ones(out_ids.shape, jnp.float32),
                weight * batch.mask[..., None], offset)
    if loss == "nce":
        sign, weight = _ns_sign_weight(jnp.ones(batch.neg.shape, jnp.float32))
    else:
        sign, weight = _sign_weight(aux, loss)
    return (in_ids, in_hw, in_gw, out_ids, jnp.broadcast_to(sign, out_ids.shape), weight * batch.mask[..., None],
            aux.get("log_kq"))


def huffman_paths(tables: Tables) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Hierarchical softmax's paths as the kernel looks them up (:func:`w2vjax.kernel.path_update`):
    ``(points [V, L], signs [V, L], lens [V])``, the signs ``1 - 2 code`` of
    :func:`_sign_weight`, a path the first ``lens[w]`` entries of its padded row."""
    lens = np.asarray(tables.path_mask).sum(-1).astype(np.int32)
    if not np.array_equal(np.asarray(tables.path_mask) > 0, np.arange(tables.path_mask.shape[-1]) < lens[:, None]):
        raise ValueError("the Huffman paths are not padded at their ends")
    signs = _sign_weight({"codes": tables.codes, "path_mask": tables.path_mask}, "hs")[0]
    return tables.points, signs, jnp.asarray(lens)


def _skipgram_window_loss(rows: dict, batch: Windows, aux: dict, loss: str) -> jax.Array:
    """Skip-gram over center windows with shared negatives: the sum over contexts ``c``
    of the negative-sampling loss of (input ``v_c``, center, the center's noise words)."""
    if loss != "ns":
        raise ValueError("skip-gram center windows are used with negative sampling only")
    h = rows["in"]  # [B, C, D]
    out = rows["out"][:, None]  # [B, 1, 1 + K, D], broadcast over the C contexts
    sign, weight = _ns_sign_weight(aux["neg_mask"])
    per = losses.logistic_rows(h, out, sign, weight[:, None])
    return (per * batch.inp_mask).sum(-1) * batch.mask


def _ns_sign_weight(neg_mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Negative sampling as :func:`losses.logistic_rows`: the rows are [positive, K negatives],
    signs ``[+1, -1, ...]``, weights ``[1, neg_mask]``."""
    sign = jnp.where(jnp.arange(neg_mask.shape[-1] + 1) == 0, 1.0, -1.0)
    return sign, jnp.concatenate([jnp.ones_like(neg_mask[..., :1]), neg_mask], axis=-1)
