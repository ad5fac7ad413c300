"""The word2vec objectives as pure functions of gathered rows.

Notation follows Rong, "word2vec Parameter Learning Explained": ``h`` is the
hidden (input) vector, ``v'_j`` an output vector, ``sigma`` the logistic
function.  Every function takes leading batch axes ``...`` (written ``B``
below) and returns the per-example loss ``[B]``; the caller sums (word2vec.c
applies one SGD step per example, so the batch loss is the sum, not the mean).

Closed-form gradients (what ``jax.grad`` of these must equal, checked in
``tests/test_losses.py``):

* negative sampling: ``dL/dv'_j = (sigma(v'_j . h) - t_j) h`` and
  ``dL/dh = sum_j (sigma(v'_j . h) - t_j) v'_j`` with ``t = 1`` for the positive
  and ``0`` for the negatives (Rong eq. 56-61);
* hierarchical softmax: the same with ``v'_j`` the inner nodes on the word's
  Huffman path and ``t_j = 1 - code_j`` (word2vec.c's convention; Rong eq. 41-51);
* full softmax: ``dL/dv'_j = (y_j - t_j) h`` for every ``j`` and
  ``dL/dh = sum_j (y_j - t_j) v'_j`` with ``y = softmax(W' h)`` (Rong eq. 8-16);
* NCE: negative sampling's with the offset logit ``u_j = v'_j . h - log(k q(w_j))``:
  ``dL/dv'_j = (sigma(u_j) - t_j) h``, ``dL/dh = sum_j (sigma(u_j) - t_j) v'_j``;
* sampled softmax: the full softmax's restricted to the true word and the k samples, with
  ``y`` the softmax over them of the logits, the samples' corrected by ``-log(k q(w_j))``
  (accidental hits excluded):
  ``dL/dv'_j = (y_j - t_j) h``, ``dL/dh = sum_j (y_j - t_j) v'_j``.

Example::

    >>> import jax.numpy as jnp
    >>> h = jnp.ones((2, 4)); pos = jnp.zeros((2, 4)); neg = jnp.zeros((2, 3, 4))
    >>> negative_sampling(h, pos, neg).round(4)   # 4 * log 2 for each example
    Array([2.7726, 2.7726], dtype=float32)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def negative_sampling(h: jax.Array, pos: jax.Array, neg: jax.Array,
                      neg_mask: jax.Array | None = None) -> jax.Array:
    """Negative-sampling loss (Mikolov et al. 2013b, eq. 4), per example.

    ``L = -log sigma(v'_pos . h) - sum_k mask_k log sigma(-v'_neg_k . h)``

    Args:
      h: ``[B, D]`` input vectors.
      pos: ``[B, D]`` output vector of the true word.
      neg: ``[B, K, D]`` output vectors of the K noise words.
      neg_mask: optional ``[B, K]``; 0 drops a negative (word2vec.c skips a noise
        word that equals the true word).
    Returns:
      ``[B]`` loss.
    """
    pos_logit = jnp.einsum("...d,...d->...", h, pos)
    neg_logit = jnp.einsum("...d,...kd->...k", h, neg)
    neg_term = jax.nn.log_sigmoid(-neg_logit)
    if neg_mask is not None:
        neg_term = neg_term * neg_mask
    return -jax.nn.log_sigmoid(pos_logit) - neg_term.sum(-1)


def logistic_rows(h: jax.Array, rows: jax.Array, sign: jax.Array, weight: jax.Array) -> jax.Array:
    """``-sum_j weight_j log sigma(sign_j v'_j . h)`` per example: the shape both negative
    sampling (rows = [positive, negatives], sign = [+1, -1, ...]) and hierarchical softmax
    (rows = the path's inner nodes, sign = 1 - 2 code) take.  One product ``[B, J]`` of the
    rows as they were gathered, no slicing: the form the trainer uses (the two functions
    around it are the readable definitions; tests check they agree)."""
    logit = jnp.einsum("...d,...jd->...j", h, rows)
    return -(jax.nn.log_sigmoid(sign * logit) * weight).sum(-1)


def hierarchical_softmax(h: jax.Array, nodes: jax.Array, codes: jax.Array,
                         path_mask: jax.Array) -> jax.Array:
    """Hierarchical-softmax loss over a word's Huffman path, per example.

    ``p(w | h) = prod_j sigma((1 - 2 code_j) v'_{n_j} . h)`` over the inner nodes
    ``n_j`` from the root to ``w`` (Rong eq. 37, with word2vec.c's sign
    convention: bit 0 means "go where sigma(v'.h) is the probability"), so

    ``L = -sum_j mask_j log sigma((1 - 2 code_j) v'_{n_j} . h)``.

    Args:
      h: ``[B, D]`` input vectors.
      nodes: ``[B, L, D]`` inner-node output vectors along the path (padded).
      codes: ``[B, L]`` branch bits (0/1).
      path_mask: ``[B, L]`` 1 on the real path entries, 0 on padding.
    Returns:
      ``[B]`` loss.
    """
    logit = jnp.einsum("...d,...ld->...l", h, nodes)
    sign = 1.0 - 2.0 * codes.astype(h.dtype)
    return -(jax.nn.log_sigmoid(sign * logit) * path_mask).sum(-1)


def full_softmax(h: jax.Array, table: jax.Array, target: jax.Array, chunk: int = 0,
                 bias: jax.Array | None = None) -> jax.Array:
    """Full softmax cross-entropy over the whole vocabulary, per example.

    ``L = log sum_j exp(v'_j . h) - v'_target . h`` (Rong eq. 7).

    Args:
      h: ``[B, D]`` input vectors.
      table: ``[V, D]`` all output vectors.
      target: ``[B]`` int ids of the true words.
      chunk: 0 computes the ``[B, V]`` logits at once; ``c > 0`` computes the
        log-sum-exp over vocabulary chunks of ``c`` rows with a running maximum,
        rematerialising each chunk in the backward pass, so memory is
        ``O(B * c)`` instead of ``O(B * V)`` for any vocabulary that fits.
      bias: optional ``[V]`` added to every logit (word2vec has none; the
        trainer passes zeros and reads ``dL/dbias_j = sum_e (y_ej - t_ej)``).
    Returns:
      ``[B]`` loss.
    """
    v, d = table.shape
    if bias is None:
        bias = jnp.zeros((v,), h.dtype)
    true_logit = jnp.einsum("...d,...d->...", h, table[target]) + bias[target]
    if chunk <= 0 or chunk >= v:
        return jax.nn.logsumexp(h @ table.T + bias, axis=-1) - true_logit
    n = -(-v // chunk)
    padded = jnp.concatenate([table, jnp.zeros((n * chunk - v, d), table.dtype)])
    bias_p = jnp.concatenate([bias, jnp.zeros((n * chunk - v,), bias.dtype)]).reshape(n, chunk)
    valid = (jnp.arange(n * chunk) < v).reshape(n, chunk)

    @jax.checkpoint
    def body(carry, xs):
        m, s = carry
        rows, b, ok = xs
        logits = jnp.where(ok, h @ rows.T + b, -jnp.inf)
        m_new = jnp.maximum(m, logits.max(-1))
        s = s * jnp.exp(m - m_new) + jnp.exp(logits - m_new[..., None]).sum(-1)
        return (m_new, s), None

    init = (jnp.full(h.shape[:-1], -jnp.inf, h.dtype), jnp.zeros(h.shape[:-1], h.dtype))
    (m, s), _ = jax.lax.scan(body, init, (padded.reshape(n, chunk, d), bias_p, valid))
    return m + jnp.log(s) - true_logit


def nce(h: jax.Array, rows: jax.Array, log_kq: jax.Array) -> jax.Array:
    """Noise-contrastive estimation (Gutmann and Hyvarinen 2010; Mnih and Teh 2012), per example.

    The model's unnormalised score ``s(w, h) = v'_w . h`` with the normalising constant fixed at
    1 (``log Z = 0``, as Mnih and Teh did: the model learns to be self-normalised), k noise words
    drawn from ``q`` (the unigram^exponent noise table).  The posterior that ``w`` came from the
    data is ``sigma(u_w)`` with ``u_w = s(w, h) - log(k q(w))``, so

    ``L = -log sigma(u_true) - sum_j log sigma(-u_j)``

    Negative sampling is this with ``log(k q) = 0``.  A noise word equal to the true word is
    kept (it is a draw from q like any other: NCE's estimator counts it as noise).
    Gradient: ``dL/du_j = sigma(u_j) - t_j`` (``t`` 1 for the true word, 0 for noise), so
    ``dL/dv'_j = (sigma(u_j) - t_j) h`` and ``dL/dh = sum_j (sigma(u_j) - t_j) v'_j``.

    Args:
      h: ``[B, D]`` input vectors.
      rows: ``[B, 1 + K, D]`` output vectors, the true word's first, then the K noise words'.
      log_kq: ``[B, 1 + K]`` ``log(k q(w))`` of each row's word.
    Returns:
      ``[B]`` loss.

    >>> import jax.numpy as jnp
    >>> nce(jnp.ones((1, 2)), jnp.zeros((1, 3, 2)), jnp.zeros((1, 3))).round(4)  # 3 log 2
    Array([2.0794], dtype=float32)
    """
    u = jnp.einsum("...d,...jd->...j", h, rows) - log_kq
    sign = jnp.where(jnp.arange(rows.shape[-2]) == 0, 1.0, -1.0)
    return -jax.nn.log_sigmoid(sign * u).sum(-1)


def sampled_softmax(h: jax.Array, rows: jax.Array, log_kq: jax.Array,
                    hit_mask: jax.Array | None = None) -> jax.Array:
    """Sampled softmax (Jean et al. 2015; TensorFlow's ``sampled_softmax_loss``), per example.

    The softmax cross-entropy over the true word and k words drawn from ``q`` with replacement,
    each sample's logit corrected by the log of its expected count among the draws,
    ``u_j = v'_j . h - log(k q(w_j))``, and samples equal to the true word (accidental hits)
    removed; the true word is in the set once for certain (expected count 1), so its logit
    ``u_0 = v'_true . h`` is not corrected:

    ``L = -u_0 + log(exp(u_0) + sum_j hit_mask_j exp(u_j))``

    The sum over the kept samples estimates ``sum_{w != true} exp(v'_w . h)`` without bias, so
    the normaliser tends to the full softmax's and the expected gradient approaches the full
    softmax's as k grows (``tests/test_losses.py`` checks it).  (Correcting the true word's logit
    too, as TensorFlow's ``sampled_softmax_loss`` does, while removing the hits leaves the
    normaliser short of the true word's own term, a bias that does not vanish with k.)
    ``k q(w)`` is the expected count of ``w`` in k draws *with* replacement, which is how the
    noise words are drawn here; sampling without replacement would need ``1 - (1 - q)^k``
    instead and is not offered.
    Gradient: with ``y = softmax(u)`` over the kept rows, ``dL/du_j = y_j - t_j``, so
    ``dL/dv'_j = (y_j - t_j) h`` and ``dL/dh = sum_j (y_j - t_j) v'_j`` (0 for removed hits).

    Args:
      h: ``[B, D]`` input vectors.
      rows: ``[B, 1 + K, D]`` output vectors, the true word's first, then the K samples'.
      log_kq: ``[B, K]`` ``log(k q(w))`` of each sample.
      hit_mask: optional ``[B, K]``; 0 removes a sample (one equal to the true word).
    Returns:
      ``[B]`` loss.

    >>> import jax.numpy as jnp
    >>> sampled_softmax(jnp.ones((1, 2)), jnp.zeros((1, 3, 2)), jnp.zeros((1, 2))).round(4)  # log 3
    Array([1.0986], dtype=float32)
    """
    offset = jnp.concatenate([jnp.zeros_like(log_kq[..., :1]), log_kq], axis=-1)
    u = jnp.einsum("...d,...jd->...j", h, rows) - offset
    if hit_mask is not None:
        keep = jnp.concatenate([jnp.ones_like(hit_mask[..., :1]), hit_mask], axis=-1)
        u = jnp.where(keep > 0, u, -jnp.inf)
    return jax.nn.logsumexp(u, axis=-1) - u[..., 0]
