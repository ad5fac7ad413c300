"""The fused Pallas GPU update (w2vjax.engines.pallas_gpu) in interpret mode on CPU: against the
XLA engine where no row repeats (then Hogwild = batch semantics), and against the
sequential-by-program emulation where rows repeat across programs (never within one program's
slot: interpret mode's atomic_add keeps the last write of a repeated index)."""

import numpy as np
import jax
import jax.numpy as jnp
import pytest

from w2vjax import objectives
from w2vjax.batches import Pairs, Windows
from w2vjax.config import make_config
from w2vjax.engines import pallas_gpu as pg
from w2vjax.engines import xla

V, D, K, BLOCK = 97, 12, 3, 4  # D = 8 + 4: two column chunks


def _tables(v):
    z = jnp.zeros((v,), jnp.float32)
    d = jnp.zeros((v, 1), jnp.int32)
    return objectives.Tables(z + 1.0, jnp.arange(v, dtype=jnp.int32), d, d, d.astype(bool), z + 1.0)


def _xla_update(ei, eo, inp, out, neg, mask, cap, lr=0.05, dim=D):
    cfg = make_config(model="skipgram", loss="ns", dim=dim, negative=neg.shape[1], row_update_cap=cap, lr=lr,
                      cpu_kernel=False)
    sched = xla.make_schedule(cfg, 1000)
    update = xla.make_update(cfg, _tables(ei.shape[0]), sched)
    params = {"emb_in": jnp.asarray(ei), "emb_out": jnp.asarray(eo)}
    opt = xla.make_optimizer(cfg).init(params)
    mb = Pairs(jnp.asarray(inp, jnp.int32), jnp.asarray(out, jnp.int32), jnp.asarray(mask, jnp.float32),
               jnp.asarray(0, jnp.int32), jnp.asarray(neg, jnp.int32))
    p, _, stats, _ = update(params, opt, jnp.asarray(0), jax.random.key(0), mb)
    return np.asarray(p["emb_in"]), np.asarray(p["emb_out"]), float(stats["loss_sum"]), float(sched(0))


def _tables_np(seed=0, v=V, d=D):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(v, d)).astype(np.float32) * 0.3, rng.normal(size=(v, d)).astype(np.float32) * 0.3)


def _ns_ref_args(out, neg):
    b = out.shape[0]
    oid = np.concatenate([out[:, None], neg], 1)
    sign = np.where(np.arange(neg.shape[1] + 1) == 0, 1.0, -1.0)[None].repeat(b, 0)
    weight = np.concatenate([np.ones((b, 1)), neg != out[:, None]], 1)
    return oid, sign, weight


def _run(ei, eo, inp, out, neg, mask, lr, cap, **kw):
    a, b, loss = pg.ns_update(jnp.asarray(ei), jnp.asarray(eo), jnp.asarray(inp, jnp.int32),
                              jnp.asarray(out, jnp.int32), jnp.asarray(neg, jnp.int32),
                              jnp.asarray(mask, jnp.float32), lr, cap, block=BLOCK, interpret=True, **kw)
    return np.asarray(a), np.asarray(b), np.asarray(loss)


def test_column_chunks_are_the_binary_decomposition():
    assert pg.column_chunks(100) == ((0, 64), (64, 32), (96, 4))
    assert pg.column_chunks(128) == ((0, 128),)
    assert pg.column_chunks(12) == ((0, 8), (8, 4))


@pytest.mark.parametrize("count_mode", ["kernel", "xla"])
def test_distinct_rows_equal_the_xla_engine(count_mode):
    """No row shared by two slots of the micro-batch (in either table): Hogwild reads no row another
    program wrote, so the kernel is the XLA engine's batch update; one masked example."""
    rng = np.random.default_rng(1)
    b = 8
    ei, eo = _tables_np(1)
    inp = rng.permutation(V)[:b]
    oid = rng.permutation(V)[:b * (K + 1)].reshape(b, K + 1)
    out, neg = oid[:, 0], oid[:, 1:]
    mask = np.ones(b, np.float32)
    mask[5] = 0.0
    ref_in, ref_out, ref_loss, lr = _xla_update(ei, eo, inp, out, neg, mask, cap=2.0)
    a, o, loss = _run(ei, eo, inp, out, neg, mask, lr, 2.0, count_mode=count_mode)
    np.testing.assert_allclose(a, ref_in, atol=1e-5)
    np.testing.assert_allclose(o, ref_out, atol=1e-5)
    assert abs(loss.sum() - ref_loss) < 1e-5
    assert loss[5] == 0.0 and np.abs(a - ei).max() > 1e-3


@pytest.mark.parametrize("count_mode", ["kernel", "xla"])
def test_rows_repeated_across_programs_follow_the_sequential_emulation_and_the_cap_binds(count_mode):
    """Each program's slots name distinct rows, but programs share rows (each of the 3 programs
    repeats the first one's ids, in a shuffled order): the kernel reads what earlier programs wrote,
    as reference_update emulates; every row is touched 3 times, so cap 2 divides its updates by 1.5.
    The batch update (the XLA engine) differs from it."""
    rng = np.random.default_rng(2)
    ei, eo = _tables_np(2)
    base_in = rng.permutation(V)[:BLOCK]
    base_out = rng.permutation(V)[:BLOCK * (K + 1)].reshape(BLOCK, K + 1)
    perms = [np.arange(BLOCK)] + [rng.permutation(BLOCK) for _ in range(2)]
    inp = np.concatenate([base_in[p] for p in perms])
    oid = np.concatenate([base_out[p] for p in perms])
    out, neg = oid[:, 0], oid[:, 1:]
    mask = np.ones(inp.shape[0], np.float32)
    lr = 0.5  # large, so that reading the updated rows makes a visible difference
    for cap in (2.0, 0.0):
        a, o, loss = _run(ei, eo, inp, out, neg, mask, lr, cap, count_mode=count_mode)
        ra, ro, rl = pg.reference_update(ei, eo, inp, *_ns_ref_args(out, neg), mask, lr, cap, BLOCK)
        np.testing.assert_allclose(a, ra, atol=1e-5)
        np.testing.assert_allclose(o, ro, atol=1e-5)
        np.testing.assert_allclose(loss, rl, atol=1e-5)
    capped = pg.reference_update(ei, eo, inp, *_ns_ref_args(out, neg), mask, lr, 2.0, BLOCK)[0]
    assert np.abs(capped - a).max() > 1e-3  # the cap changed the update
    xin, _, _, _ = _xla_update(ei, eo, inp, out, neg, mask, cap=2.0, lr=lr)
    assert np.abs(xin - capped).max() > 1e-4  # Hogwild is not the batch update once rows repeat


def test_count_buffers_come_back_zero_and_int32_is_refused_for_kernel_counts():
    rng = np.random.default_rng(3)
    ei, eo = _tables_np(3)
    inp = rng.permutation(V)[:8]
    oid = rng.permutation(V)[:8 * (K + 1)].reshape(8, K + 1)
    counts = pg.count_buffers(V, V)
    *_, counts = pg.ns_update(jnp.asarray(ei), jnp.asarray(eo), jnp.asarray(inp), jnp.asarray(oid[:, 0]),
                              jnp.asarray(oid[:, 1:]), jnp.ones(8), 0.1, 2.0, counts=counts, block=BLOCK,
                              interpret=True, return_counts=True)
    assert counts[0].dtype == jnp.float32 and not np.asarray(counts[0]).any() and not np.asarray(counts[1]).any()
    with pytest.raises(ValueError, match="float32"):
        pg.ns_update(jnp.asarray(ei), jnp.asarray(eo), jnp.asarray(inp), jnp.asarray(oid[:, 0]),
                     jnp.asarray(oid[:, 1:]), jnp.ones(8), 0.1, 2.0, counts=pg.count_buffers(V, V, "xla"),
                     block=BLOCK, interpret=True)
    with pytest.raises(ValueError, match="multiple of block"):
        pg.ns_update(jnp.asarray(ei), jnp.asarray(eo), jnp.asarray(inp[:6]), jnp.asarray(oid[:6, 0]),
                     jnp.asarray(oid[:6, 1:]), jnp.ones(6), 0.1, 0.0, block=BLOCK, interpret=True)


def _hs_problem(seed, b, L=3):
    """A hand-made path table whose nodes are distinct across a micro-batch of ``b`` centers (not a
    Huffman tree): ``(rng, ei, eo, out, points, codes, pmask)``."""
    rng = np.random.default_rng(seed)
    ei, eo = _tables_np(seed)
    out = rng.permutation(32)[:b]
    points = (np.arange(V)[:, None] * L + np.arange(L)[None]) % V
    codes = rng.integers(0, 2, size=(V, L))
    return rng, ei, eo, out, points, codes, np.ones((V, L), bool)


def _hs_tables(points, codes, pmask):
    z = jnp.zeros((V,), jnp.float32)
    return objectives.Tables(z + 1.0, jnp.arange(V, dtype=jnp.int32), jnp.asarray(codes, jnp.int32),
                             jnp.asarray(points, jnp.int32), jnp.asarray(pmask), z + 1.0)


def test_hierarchical_softmax_with_distinct_path_nodes_equals_the_xla_engine():
    """hs_update against the XLA engine's skip-gram/HS update, the paths' nodes made distinct
    across the micro-batch (a hand-made path table, not a Huffman tree); one path padded."""
    b = 8
    rng, ei, eo, out, points, codes, pmask = _hs_problem(4, b)
    pmask[out[2], 2] = False
    inp = rng.permutation(V)[:b]
    mask = np.ones(b, np.float32)
    cfg = make_config(model="skipgram", loss="hs", dim=D, row_update_cap=2.0, lr=0.05, cpu_kernel=False)
    sched = xla.make_schedule(cfg, 1000)
    update = xla.make_update(cfg, _hs_tables(points, codes, pmask), sched)
    params = {"emb_in": jnp.asarray(ei), "emb_out": jnp.asarray(eo)}
    mb = Pairs(jnp.asarray(inp, jnp.int32), jnp.asarray(out, jnp.int32), jnp.asarray(mask), jnp.asarray(0))
    p, _, stats, _ = update(params, xla.make_optimizer(cfg).init(params), jnp.asarray(0), jax.random.key(0), mb)
    a, o, loss = pg.hs_update(jnp.asarray(ei), jnp.asarray(eo), jnp.asarray(inp, jnp.int32), jnp.asarray(out, jnp.int32),
                              jnp.asarray(mask), float(sched(0)), 2.0, jnp.asarray(points), jnp.asarray(codes),
                              jnp.asarray(pmask), block=BLOCK, interpret=True)
    np.testing.assert_allclose(np.asarray(a), np.asarray(p["emb_in"]), atol=1e-5)
    np.testing.assert_allclose(np.asarray(o), np.asarray(p["emb_out"]), atol=1e-5)
    assert abs(float(loss.sum()) - float(stats["loss_sum"])) < 1e-5
    assert np.array_equal(np.asarray(o)[points[out[2], 2]], eo[points[out[2], 2]])  # the padded slot: untouched


C = 4  # CBOW context slots


def _cbow_batch(rng, b, ei_rows=V):
    """CBOW windows whose input ids are all distinct (a permutation), some context slots dead."""
    inp = rng.permutation(ei_rows)[:b * C].reshape(b, C)
    ctx = (rng.random((b, C)) < 0.75).astype(np.float32)
    ctx[0] = 0.0  # a window with no live context: h = 0, its rows untouched
    ctx[1] = 1.0
    return inp, ctx


def _xla_cbow(ei, eo, inp, ctx, out, neg, mask, cap, lr=0.05, cbow_mean=True, exact_grad=False, loss="ns",
              tables=None):
    cfg = make_config(model="cbow", loss=loss, dim=D, negative=K, row_update_cap=cap, lr=lr, cpu_kernel=False,
                      cbow_mean=cbow_mean, cbow_exact_grad=exact_grad)
    sched = xla.make_schedule(cfg, 1000)
    update = xla.make_update(cfg, tables if tables is not None else _tables(ei.shape[0]), sched)
    params = {"emb_in": jnp.asarray(ei), "emb_out": jnp.asarray(eo)}
    mb = Windows(jnp.asarray(inp, jnp.int32), jnp.asarray(ctx), jnp.asarray(out, jnp.int32),
                 jnp.asarray(mask, jnp.float32), jnp.asarray(0, jnp.int32),
                 None if neg is None else jnp.asarray(neg, jnp.int32))
    p, _, stats, _ = update(params, xla.make_optimizer(cfg).init(params), jnp.asarray(0), jax.random.key(0), mb)
    return np.asarray(p["emb_in"]), np.asarray(p["emb_out"]), float(stats["loss_sum"]), float(sched(0))


@pytest.mark.parametrize("cbow_mean,exact_grad,count_mode", [(True, False, "kernel"), (True, True, "xla"),
                                                             (False, False, "kernel")])
def test_cbow_windows_with_distinct_rows_equal_the_xla_engine(cbow_mean, exact_grad, count_mode):
    """CBOW/NS windows, every row distinct in each table: the kernel's h (the context rows' mean
    or sum) and its gradient rule (word2vec.c's whole dL/dh to every context row, or the exact
    1/C) are the XLA engine's; dead context slots and a masked window change nothing."""
    rng = np.random.default_rng(5)
    b = 8
    ei, eo = _tables_np(5)
    inp, ctx = _cbow_batch(rng, b)
    oid = rng.permutation(V)[:b * (K + 1)].reshape(b, K + 1)
    out, neg = oid[:, 0], oid[:, 1:]
    mask = np.ones(b, np.float32)
    mask[6] = 0.0
    ref_in, ref_out, ref_loss, lr = _xla_cbow(ei, eo, inp, ctx, out, neg, mask, 2.0, cbow_mean=cbow_mean,
                                              exact_grad=exact_grad)
    a, o, loss = pg.ns_update(jnp.asarray(ei), jnp.asarray(eo), jnp.asarray(inp, jnp.int32),
                              jnp.asarray(out, jnp.int32), jnp.asarray(neg, jnp.int32), jnp.asarray(mask), lr, 2.0,
                              ctx_mask=jnp.asarray(ctx), cbow_mean=cbow_mean, exact_grad=exact_grad, block=BLOCK,
                              interpret=True, count_mode=count_mode)
    np.testing.assert_allclose(np.asarray(a), ref_in, atol=1e-5)
    np.testing.assert_allclose(np.asarray(o), ref_out, atol=1e-5)
    assert abs(float(loss.sum()) - ref_loss) < 1e-5
    live = (ctx * mask[:, None]) > 0
    assert np.array_equal(np.asarray(a)[inp[~live]], ei[inp[~live]])  # dead slots and the masked window
    assert np.abs(np.asarray(a)[inp[live]] - ei[inp[live]]).max() > 1e-4


def test_cbow_hierarchical_softmax_with_distinct_path_nodes_equals_the_xla_engine():
    b = 8
    rng, ei, eo, out, points, codes, pmask = _hs_problem(6, b)
    pmask[out[3], 1:] = False
    tables = _hs_tables(points, codes, pmask)
    inp, ctx = _cbow_batch(rng, b)
    mask = np.ones(b, np.float32)
    ref_in, ref_out, ref_loss, lr = _xla_cbow(ei, eo, inp, ctx, out, None, mask, 2.0, loss="hs", tables=tables)
    a, o, loss = pg.hs_update(jnp.asarray(ei), jnp.asarray(eo), jnp.asarray(inp, jnp.int32),
                              jnp.asarray(out, jnp.int32), jnp.asarray(mask), lr, 2.0, jnp.asarray(points),
                              jnp.asarray(codes), jnp.asarray(pmask), ctx_mask=jnp.asarray(ctx), block=BLOCK,
                              interpret=True)
    np.testing.assert_allclose(np.asarray(a), ref_in, atol=1e-5)
    np.testing.assert_allclose(np.asarray(o), ref_out, atol=1e-5)
    assert abs(float(loss.sum()) - ref_loss) < 1e-5


def test_cbow_rows_repeated_across_programs_follow_the_sequential_emulation():
    """CBOW windows repeated by 3 programs (shuffled): Hogwild reads what earlier programs wrote, as
    reference_update emulates for windows; each live row is touched 3 times, so cap 2 binds."""
    rng = np.random.default_rng(7)
    ei, eo = _tables_np(7)
    base_in, base_ctx = _cbow_batch(rng, BLOCK)
    base_out = rng.permutation(V)[:BLOCK * (K + 1)].reshape(BLOCK, K + 1)
    perms = [np.arange(BLOCK)] + [rng.permutation(BLOCK) for _ in range(2)]
    inp, ctx, oid = (np.concatenate([x[p] for p in perms]) for x in (base_in, base_ctx, base_out))
    out, neg = oid[:, 0], oid[:, 1:]
    mask = np.ones(inp.shape[0], np.float32)
    lr = 0.5
    a = _ns_against_reference(ei, eo, inp, out, neg, mask, lr, (2.0, 0.0), BLOCK, ctx, block=BLOCK, interpret=True)
    capped = pg.reference_update(ei, eo, inp, *_ns_ref_args(out, neg), mask, lr, 2.0, BLOCK, ctx_mask=ctx)[0]
    assert np.abs(capped - a).max() > 1e-3


def _ns_against_reference(ei, eo, inp, out, neg, mask, lr, caps, ref_block, ctx=None, atol=1e-5, **kw):
    """ns_update(**kw) equals reference_update with programs of ``ref_block`` examples at each cap;
    returns the last input table."""
    for cap in caps:
        a, o, loss = pg.ns_update(jnp.asarray(ei), jnp.asarray(eo), jnp.asarray(inp, jnp.int32),
                                  jnp.asarray(out, jnp.int32), jnp.asarray(neg, jnp.int32),
                                  jnp.asarray(mask, jnp.float32), lr, cap,
                                  ctx_mask=None if ctx is None else jnp.asarray(ctx), **kw)
        ra, ro, rl = pg.reference_update(ei, eo, inp, *_ns_ref_args(out, neg), mask, lr, cap, ref_block, ctx_mask=ctx)
        np.testing.assert_allclose(np.asarray(a), ra, atol=atol)
        np.testing.assert_allclose(np.asarray(o), ro, atol=atol)
        np.testing.assert_allclose(np.asarray(loss), rl, atol=1e-5)
    return np.asarray(a)


def test_a_noise_word_equal_to_its_center_counts_as_a_touch_as_in_the_xla_engine():
    """Every example's first noise word is its center: that slot weighs 0 but touches the row, so
    each center row is touched twice and cap 1 halves its update, as the XLA engine does."""
    rng = np.random.default_rng(8)
    b = 8
    ei, eo = _tables_np(8)
    inp = rng.permutation(V)[:b]
    oid = rng.permutation(V)[:b * K].reshape(b, K)
    out, neg = oid[:, 0], oid.copy()
    neg[:, 0] = out
    mask = np.ones(b, np.float32)
    ref_in, ref_out, ref_loss, lr = _xla_update(ei, eo, inp, out, neg, mask, cap=1.0)
    for kw in ({"interpret": True, "count_mode": "kernel"}, {"interpret": True, "count_mode": "xla"},
               {"emulate": True}):
        a, o, loss = pg.ns_update(jnp.asarray(ei), jnp.asarray(eo), jnp.asarray(inp), jnp.asarray(out),
                                  jnp.asarray(neg), jnp.asarray(mask), lr, 1.0, block=BLOCK, **kw)
        np.testing.assert_allclose(np.asarray(o), ref_out, atol=1e-5)
        np.testing.assert_allclose(np.asarray(a), ref_in, atol=1e-5)
    half = _xla_update(ei, eo, inp, out, neg, mask, cap=0.0)[1]  # no cap: the center's whole update
    assert np.abs(half - ref_out).max() > 1e-4


def _emulated_and_kernel(fn, args, kw):
    e = fn(*args, emulate=True, **kw)
    k = fn(*args, block=BLOCK, interpret=True, **kw)
    return [np.asarray(x) for x in e], [np.asarray(x) for x in k]


def test_the_concurrent_emulation_is_the_kernel_where_no_row_repeats():
    """emulate=True runs the kernel's own body (_update_body) in XLA; with every row distinct the
    order of programs does not matter, so it is the interpret-mode kernel: skip-gram/NS, CBOW/NS
    (mean, dead context slots), skip-gram/HS, with the cap."""
    rng = np.random.default_rng(9)
    b = 8
    ei, eo = _tables_np(9)
    oid = rng.permutation(V)[:b * (K + 1)].reshape(b, K + 1)
    mask = np.ones(b, np.float32)
    mask[3] = 0.0
    j = lambda *xs: [jnp.asarray(x) for x in xs]  # noqa: E731
    cases = [(pg.ns_update, j(ei, eo, rng.permutation(V)[:b], oid[:, 0], oid[:, 1:], mask) + [0.05, 2.0], {})]
    inp, ctx = _cbow_batch(rng, b)
    cases.append((pg.ns_update, j(ei, eo, inp, oid[:, 0], oid[:, 1:], mask) + [0.05, 2.0],
                  {"ctx_mask": jnp.asarray(ctx)}))
    _, ei2, eo2, out, points, codes, pmask = _hs_problem(10, b)
    cases.append((pg.hs_update, j(ei2, eo2, rng.permutation(V)[:b], out, mask) + [0.05, 2.0]
                  + j(points, codes, pmask), {}))
    for fn, args, kw in cases:
        e, k = _emulated_and_kernel(fn, args, kw)
        for x, y in zip(e, k):
            np.testing.assert_allclose(x, y, atol=1e-5)
        assert np.abs(e[0] - np.asarray(args[0])).max() > 1e-4


@pytest.mark.parametrize("cbow", [False, True])
def test_with_repeated_rows_the_emulation_is_every_program_in_step(cbow):
    """Ids drawn from 16 rows (rows repeat within and across programs, noise words hit their
    centers): emulate=True is reference_update with the whole micro-batch as one program (slot j
    reads what slots < j of every example wrote; repeated adds summed), the cap binding or off;
    the sequential order (4 examples a program) differs from it."""
    rng = np.random.default_rng(11)
    b = 16
    ei, eo = _tables_np(11)
    oid = rng.integers(0, 16, size=(b, K + 1))
    out, neg = oid[:, 0], oid[:, 1:]
    mask = np.ones(b, np.float32)
    mask[2] = 0.0
    inp, ctx = (rng.integers(0, 16, size=(b, C)), (rng.random((b, C)) < 0.75).astype(np.float32)) if cbow else \
        (rng.integers(0, 16, size=b), None)
    lr = 0.5
    a = _ns_against_reference(ei, eo, inp, out, neg, mask, lr, (3.0, 0.0), b, ctx, atol=1e-4, emulate=True)
    seq = pg.reference_update(ei, eo, inp, *_ns_ref_args(out, neg), mask, lr, 0.0, BLOCK, ctx_mask=ctx)[0]
    assert np.abs(seq - a).max() > 1e-3
