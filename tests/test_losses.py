"""jax.grad of every model x objective equals the closed-form word2vec gradients (Rong 2014)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from w2vjax.batches import Pairs, Windows
from w2vjax import losses, objectives
from w2vjax.vocab import huffman_tree

jax.config.update("jax_enable_x64", False)
RTOL = ATOL = 1e-6


def sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _rows(rng, *shape):
    return jnp.asarray(rng.normal(0, 0.5, shape).astype(np.float32))


def _hidden_np(model, in_rows, ctx_mask, mean):
    if model == "skipgram":
        return np.asarray(in_rows, np.float64)
    s = np.einsum("bcd,bc->bd", np.asarray(in_rows, np.float64), ctx_mask)
    c = np.maximum(ctx_mask.sum(1, keepdims=True), 1)
    return s / c if mean else s


def _in_grad_np(model, eh, ctx_mask, mean, exact):
    """Update direction each input row gets from dL/dh = EH (Rong eq. 23 / word2vec.c)."""
    if model == "skipgram":
        return eh
    c = np.maximum(ctx_mask.sum(1, keepdims=True), 1)
    scale = (1.0 / c) if (mean == exact) else np.ones_like(c)  # exact mean: EH/C; word2vec.c mean: EH
    return (eh * scale)[:, None, :] * ctx_mask[..., None]


def _setup(model, rng, b=6, c=4, d=8):
    if model == "skipgram":
        in_rows = _rows(rng, b, d)
        ctx_mask = None
        batch = Pairs(jnp.zeros(b, jnp.int32), jnp.zeros(b, jnp.int32), jnp.ones(b), jnp.float32(0))
    else:
        in_rows = _rows(rng, b, c, d)
        ctx_mask = (rng.random((b, c)) < 0.7).astype(np.float32)
        ctx_mask[:, 0] = 1
        batch = Windows(jnp.zeros(ctx_mask.shape, jnp.int32), jnp.asarray(ctx_mask), jnp.zeros(b, jnp.int32),
                        jnp.ones(b), jnp.float32(0))
    return in_rows, ctx_mask, batch


CASES = [(m, mean, exact) for m in ("skipgram", "cbow") for mean, exact in
         ([(True, False)] if m == "skipgram" else [(True, False), (True, True), (False, False), (False, True)])]


@pytest.mark.parametrize("model,mean,exact", CASES)
def test_negative_sampling_grad_matches_closed_form(model, mean, exact):
    rng = np.random.default_rng(0)
    b, k, d = 6, 5, 8
    in_rows, ctx_mask, batch = _setup(model, rng, b, 4, d)
    out = _rows(rng, b, 1 + k, d)
    neg_mask = (rng.random((b, k)) < 0.8).astype(np.float32)
    aux = {"neg_mask": jnp.asarray(neg_mask)}

    def total(r):
        return objectives.example_loss(r, batch, aux, model, "ns", cbow_mean=mean, exact_grad=exact).sum()

    g = jax.grad(total)({"in": in_rows, "out": out})
    h = _hidden_np(model, in_rows, ctx_mask, mean)
    o = np.asarray(out, np.float64)
    t = np.zeros((b, 1 + k)); t[:, 0] = 1
    m = np.concatenate([np.ones((b, 1)), neg_mask], 1)
    err = (sig(np.einsum("bd,bkd->bk", h, o)) - t) * m  # sigma(v'.h) - t, Rong eq. 59
    np.testing.assert_allclose(g["out"], err[..., None] * h[:, None, :], rtol=RTOL, atol=ATOL)  # eq. 59
    eh = np.einsum("bk,bkd->bd", err, o)  # eq. 61
    np.testing.assert_allclose(g["in"], _in_grad_np(model, eh, ctx_mask, mean, exact), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("model,mean,exact", CASES)
def test_hierarchical_softmax_grad_matches_closed_form(model, mean, exact):
    rng = np.random.default_rng(1)
    b, l, d = 6, 7, 8
    in_rows, ctx_mask, batch = _setup(model, rng, b, 4, d)
    nodes = _rows(rng, b, l, d)
    codes = rng.integers(0, 2, (b, l))
    path_mask = (np.arange(l)[None] < rng.integers(1, l + 1, (b, 1))).astype(np.float32)
    aux = {"codes": jnp.asarray(codes), "path_mask": jnp.asarray(path_mask)}

    def total(r):
        return objectives.example_loss(r, batch, aux, model, "hs", cbow_mean=mean, exact_grad=exact).sum()

    g = jax.grad(total)({"in": in_rows, "out": nodes})
    h = _hidden_np(model, in_rows, ctx_mask, mean)
    o = np.asarray(nodes, np.float64)
    err = (sig(np.einsum("bd,bld->bl", h, o)) - (1 - codes)) * path_mask  # word2vec.c: g = 1 - code - f
    np.testing.assert_allclose(g["out"], err[..., None] * h[:, None, :], rtol=RTOL, atol=ATOL)  # Rong eq. 49
    eh = np.einsum("bl,bld->bd", err, o)  # Rong eq. 51
    np.testing.assert_allclose(g["in"], _in_grad_np(model, eh, ctx_mask, mean, exact), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("chunk", [0, 7])
@pytest.mark.parametrize("model,mean,exact", CASES)
def test_full_softmax_grad_matches_closed_form(model, mean, exact, chunk):
    rng = np.random.default_rng(2)
    b, v, d = 6, 23, 8
    in_rows, ctx_mask, batch = _setup(model, rng, b, 4, d)
    table = _rows(rng, v, d)
    target = rng.integers(0, v, b)
    batch = batch._replace(out=jnp.asarray(target))

    def total(r):
        return objectives.example_loss(r, batch, {}, model, "softmax", cbow_mean=mean, exact_grad=exact,
                                       softmax_chunk=chunk).sum()

    g = jax.grad(total)({"in": in_rows, "out": table})
    h = _hidden_np(model, in_rows, ctx_mask, mean)
    w = np.asarray(table, np.float64)
    u = h @ w.T
    y = np.exp(u - u.max(1, keepdims=True)); y /= y.sum(1, keepdims=True)
    err = y.copy(); err[np.arange(b), target] -= 1  # e_j = y_j - t_j, Rong eq. 8
    np.testing.assert_allclose(g["out"], err.T @ h, rtol=1e-5, atol=ATOL)  # eq. 11, summed over examples
    np.testing.assert_allclose(g["in"], _in_grad_np(model, err @ w, ctx_mask, mean, exact),
                               rtol=1e-5, atol=ATOL)  # eq. 23


def test_chunked_softmax_equals_dense():
    rng = np.random.default_rng(3)
    h, table = _rows(rng, 5, 16), _rows(rng, 1001, 16)
    target = jnp.asarray(rng.integers(0, 1001, 5))
    dense = losses.full_softmax(h, table, target)
    for chunk in (1, 64, 1000, 4096):
        np.testing.assert_allclose(losses.full_softmax(h, table, target, chunk), dense, rtol=1e-5)
    gd = jax.grad(lambda t: losses.full_softmax(h, t, target).sum())(table)
    gc = jax.grad(lambda t: losses.full_softmax(h, t, target, 64).sum())(table)
    np.testing.assert_allclose(gc, gd, rtol=1e-5, atol=1e-7)


def test_hierarchical_softmax_sums_to_one_over_vocabulary():
    rng = np.random.default_rng(4)
    counts = np.sort(rng.integers(1, 1000, 50))[::-1]
    hf = huffman_tree(counts)
    v, d = len(counts), 6
    inner = _rows(rng, v - 1, d)
    h = _rows(rng, d)
    hb = jnp.broadcast_to(h, (v, d))
    loss = losses.hierarchical_softmax(hb, inner[hf.points], jnp.asarray(hf.codes),
                                       jnp.asarray(hf.mask, jnp.float32))
    np.testing.assert_allclose(np.exp(-np.asarray(loss, np.float64)).sum(), 1.0, rtol=1e-5)


def test_negative_sampling_value_matches_formula():
    rng = np.random.default_rng(5)
    h, pos, neg = _rows(rng, 3, 4), _rows(rng, 3, 4), _rows(rng, 3, 2, 4)
    expect = (-np.log(sig(np.einsum("bd,bd->b", h, pos)))
              - np.log(sig(-np.einsum("bd,bkd->bk", h, neg))).sum(1))
    np.testing.assert_allclose(losses.negative_sampling(h, pos, neg), expect, rtol=1e-5)


def test_logistic_rows_is_negative_sampling_and_hierarchical_softmax():
    """The trainer's one kernel for both (no slicing of the gathered rows) = their definitions."""
    rng = np.random.default_rng(4)
    h, rows = _rows(rng, 6, 8), _rows(rng, 6, 5, 8)
    neg_mask = jnp.asarray((rng.random((6, 4)) < 0.8).astype(np.float32))
    sign = jnp.asarray([1.0, -1, -1, -1, -1])
    weight = jnp.concatenate([jnp.ones((6, 1)), neg_mask], axis=1)
    np.testing.assert_allclose(losses.logistic_rows(h, rows, sign, weight),
                               losses.negative_sampling(h, rows[:, 0], rows[:, 1:], neg_mask), rtol=1e-6)
    codes = jnp.asarray(rng.integers(0, 2, (6, 5)))
    path = jnp.asarray((rng.random((6, 5)) < 0.7).astype(np.float32))
    np.testing.assert_allclose(losses.logistic_rows(h, rows, 1.0 - 2.0 * codes, path),
                               losses.hierarchical_softmax(h, rows, codes, path), rtol=1e-6)


def _offset_case(model, seed, loss):
    rng = np.random.default_rng(seed)
    b, k, d = 6, 5, 8
    in_rows, ctx_mask, batch = _setup(model, rng, b, 4, d)
    out = _rows(rng, b, 1 + k, d)
    log_kq = rng.normal(0, 1, (b, 1 + k)).astype(np.float32)
    aux = {"log_kq": jnp.asarray(log_kq)}
    hit = np.ones((b, k), np.float32)
    if loss == "sampled-softmax":  # the true word's logit is not corrected
        hit = (rng.random((b, k)) < 0.8).astype(np.float32)
        aux = {"neg_mask": jnp.asarray(hit), "log_kq": jnp.asarray(log_kq[:, 1:])}
        log_kq[:, 0] = 0
    return in_rows, ctx_mask, batch, out, log_kq, hit, aux


@pytest.mark.parametrize("loss", ["nce", "sampled-softmax"])
@pytest.mark.parametrize("model,mean,exact", CASES)
def test_nce_and_sampled_softmax_grads_match_closed_form(model, mean, exact, loss):
    """NCE: (sigma(u) - t) with u = v'.h - log(k q); sampled softmax: (softmax(u) - t) over the
    true word and the kept samples (accidental hits get no gradient)."""
    in_rows, ctx_mask, batch, out, log_kq, hit, aux = _offset_case(model, 2, loss)

    def total(r):
        return objectives.example_loss(r, batch, aux, model, loss, cbow_mean=mean, exact_grad=exact).sum()

    g = jax.grad(total)({"in": in_rows, "out": out})
    h = _hidden_np(model, in_rows, ctx_mask, mean)
    o = np.asarray(out, np.float64)
    u = np.einsum("bd,bkd->bk", h, o) - log_kq
    t = np.zeros_like(u); t[:, 0] = 1
    if loss == "nce":
        err = sig(u) - t
    else:
        keep = np.concatenate([np.ones((len(u), 1)), hit], 1)
        e = np.exp(u - u.max(1, keepdims=True)) * keep
        err = e / e.sum(1, keepdims=True) - t
    np.testing.assert_allclose(g["out"], err[..., None] * h[:, None, :], rtol=RTOL, atol=ATOL)
    eh = np.einsum("bk,bkd->bd", err, o)
    np.testing.assert_allclose(g["in"], _in_grad_np(model, eh, ctx_mask, mean, exact), rtol=RTOL, atol=ATOL)


def test_nce_without_offset_is_negative_sampling():
    rng = np.random.default_rng(6)
    h, rows = _rows(rng, 4, 6), _rows(rng, 4, 4, 6)
    np.testing.assert_allclose(losses.nce(h, rows, jnp.zeros((4, 4))),
                               losses.negative_sampling(h, rows[:, 0], rows[:, 1:]), rtol=1e-6)


def _sampled_softmax_expected_grad(k, draws=3000, v=6, d=3, seed=0):
    """The mean over ``draws`` sample sets of sampled softmax's gradient w.r.t. ``h`` and the
    output table, next to the full softmax's, on a tiny vocabulary with a skewed q."""
    rng = np.random.default_rng(seed)
    table = _rows(rng, v, d) * 2
    h = _rows(rng, d) * 2
    q = np.arange(1, v + 1, dtype=np.float64) ** 0.75
    q /= q.sum()
    target = 2
    samples = jnp.asarray(rng.choice(v, size=(draws, k), p=q).astype(np.int32))
    logq = jnp.asarray(np.log(q), jnp.float32)

    def one(tab, hh, s):
        ids = jnp.concatenate([jnp.array([target]), s])
        return losses.sampled_softmax(hh, tab[ids], logq[s] + np.log(k), (s != target).astype(jnp.float32))

    g_tab, g_h = jax.vmap(jax.grad(one, argnums=(0, 1)), in_axes=(None, None, 0))(table, h, samples)
    f_tab, f_h = jax.grad(lambda tab, hh: losses.full_softmax(hh, tab, jnp.int32(target)), argnums=(0, 1))(table, h)
    got = np.concatenate([np.ravel(g_tab.mean(0)), np.ravel(g_h.mean(0))])
    full = np.concatenate([np.ravel(f_tab), np.ravel(f_h)])
    return np.linalg.norm(got - full) / np.linalg.norm(full)


def test_sampled_softmax_expected_gradient_approaches_full_softmax():
    """Sampled softmax is biased for small k; with the log Q correction the bias vanishes as k
    grows (Bengio and Senecal 2008): the relative error of the mean gradient falls below 1%."""
    small, large = _sampled_softmax_expected_grad(1), _sampled_softmax_expected_grad(200)
    assert large < 0.01, large
    assert large < small / 3, (small, large)
