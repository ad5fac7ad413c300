"""The jitted update = word2vec.c's SGD update, through optax and the scatter-add."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from w2vjax import objectives, step as step_lib
from w2vjax.batches import Pairs, Windows
from w2vjax.config import make_config
from w2vjax.engines import xla
from w2vjax.vocab import Vocab

COUNTS = np.array([50, 30, 20, 12, 9, 7, 5, 5, 4, 3, 2, 1], np.int64)
VOCAB = Vocab(tuple(f"w{i}" for i in range(len(COUNTS))), COUNTS)


def sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _batch(model, rng, b, v, window=2, negative=3):
    neg = jnp.asarray(rng.integers(0, v, (b, negative)), jnp.int32) if negative else None
    mask = jnp.asarray([1.0] * (b - 1) + [0.0])
    if model == "skipgram":
        return Pairs(jnp.asarray(rng.integers(0, v, b), jnp.int32), jnp.asarray(rng.integers(0, v, b), jnp.int32),
                     mask, jnp.float32(37.0), neg)
    ctx = (rng.random((b, 2 * window)) < 0.7).astype(np.float32)
    ctx[:, 0] = 1
    return Windows(jnp.asarray(rng.integers(0, v, (b, 2 * window)), jnp.int32), jnp.asarray(ctx),
                   jnp.asarray(rng.integers(0, v, b), jnp.int32), mask, jnp.float32(37.0), neg)


@pytest.mark.parametrize("model,exact", [("skipgram", False), ("cbow", False), ("cbow", True)])
@pytest.mark.parametrize("loss", ["ns", "hs", "softmax"])
def test_one_update_equals_word2vec_c(model, exact, loss):
    """(``exact``: --cbow-exact-grad, Rong's gradient of the mean: each context row gets neu1e / C.)"""
    cfg = make_config(model=model, loss=loss, dim=6, window=2, negative=3, lr=0.3, cbow_exact_grad=exact)
    tables = step_lib.make_tables(VOCAB, cfg)
    total_words = 1000
    schedule = xla.make_schedule(cfg, total_words)
    update = xla.make_update(cfg, tables, schedule)
    state = step_lib.init_state(cfg, len(VOCAB))
    rng = np.random.default_rng(0)
    params = {"emb_in": state.params["emb_in"],
              "emb_out": jnp.asarray(rng.normal(0, 0.3, state.params["emb_out"].shape), jnp.float32)}
    mb = _batch(model, rng, 5, len(VOCAB))
    step = jnp.int32(3)
    new, _, _, _ = jax.jit(update)(params, state.opt_state, step, state.key, mb)

    # Closed form, example by example, all from the same old parameters (one batched step).
    lr = 0.3 + (0.3e-4 - 0.3) * 37.0 / total_words
    w_in = np.asarray(params["emb_in"], np.float64)
    w_out = np.asarray(params["emb_out"], np.float64)
    d_in, d_out = np.zeros_like(w_in), np.zeros_like(w_out)
    _, ids, aux = objectives.gather(params, mb, tables, loss, None, 3, neg=mb.neg)
    for e in range(5):
        if not mb.mask[e]:
            continue
        if model == "skipgram":
            ctx = [int(mb.inp[e])]
            h = w_in[ctx[0]]
        else:
            ctx = [int(i) for i, m in zip(mb.inp[e], mb.inp_mask[e]) if m]
            h = w_in[ctx].mean(0)
        target = int(mb.out[e])
        if loss == "ns":
            nodes = [int(i) for i in ids["out"][e]]
            labels = [1.0] + [0.0] * (len(nodes) - 1)
            use = [1.0] + list(np.asarray(aux["neg_mask"][e]))
        elif loss == "hs":
            hf = VOCAB.huffman()
            n = hf.lengths[target]
            nodes = list(hf.points[target][:n])
            labels = list(1.0 - hf.codes[target][:n])
            use = [1.0] * n
        else:
            nodes = list(range(len(VOCAB)))
            u = w_out @ h
            y = np.exp(u - u.max()); y /= y.sum()
        neu1e = np.zeros_like(h)
        if loss == "softmax":
            g = y.copy(); g[target] -= 1
            neu1e = g @ w_out
            d_out -= lr * np.outer(g, h)
        else:
            for node, t, m in zip(nodes, labels, use):
                g = (sig(w_out[node] @ h) - t) * m
                neu1e += g * w_out[node]
                d_out[node] -= lr * g * h
        for c in ctx:  # word2vec.c: every context row gets the full neu1e, also for the CBOW mean
            d_in[c] -= lr * neu1e / (len(ctx) if exact else 1)
    np.testing.assert_allclose(new["emb_in"], w_in + d_in, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new["emb_out"], w_out + d_out, rtol=1e-5, atol=1e-6)


def test_init_and_schedule_follow_word2vec_c():
    cfg = make_config(model="skipgram", dim=40, lr=0.025)
    state = step_lib.init_state(cfg, 1000)
    w = np.asarray(state.params["emb_in"])  # gensim's and fastText's U[-1/D, 1/D]
    assert w.min() >= -1 / 40 and w.max() <= 1 / 40 and w.std() == pytest.approx(1 / 40 / 3 ** 0.5, rel=0.02)
    assert not np.any(np.asarray(state.params["emb_out"]))
    half = np.asarray(step_lib.init_state(make_config(model="skipgram", dim=40, init_scale=0.5), 1000).params["emb_in"])
    np.testing.assert_allclose(half, w / 2, rtol=1e-6, atol=1e-9)  # word2vec.c's U[-0.5/D, 0.5/D], same draws
    sched = xla.make_schedule(cfg, 10_000)
    assert float(sched(0)) == pytest.approx(0.025)
    assert float(sched(10_000)) == pytest.approx(0.025e-4)
    assert float(sched(20_000)) == pytest.approx(0.025e-4)
    # word2vec.c: alpha = alpha0 * (1 - words / (total + 1)): linear, same slope within 1e-4 relative
    assert float(sched(2_500)) == pytest.approx(0.025 * (1 - 2_500 / 10_001), rel=2e-4)


def test_scan_of_updates_equals_sequential_updates():
    cfg = make_config(model="skipgram", loss="ns", dim=8, negative=2, batch_size=4, steps_per_call=3)
    tables = step_lib.make_tables(VOCAB, cfg)
    train_step = step_lib.make_train_step(cfg, tables, 500)
    update = jax.jit(xla.make_update(cfg, tables, xla.make_schedule(cfg, 500)))
    rng = np.random.default_rng(1)
    mbs = [_batch("skipgram", rng, 4, len(VOCAB), negative=2) for _ in range(3)]
    batch = jax.tree.map(lambda *x: jnp.stack(x), *mbs)
    s0 = step_lib.init_state(cfg, len(VOCAB))
    params, opt, key = s0.params, s0.opt_state, s0.key
    for i, mb in enumerate(mbs):
        params, opt, _, _ = update(params, opt, jnp.int32(i), key, mb)
    params = jax.device_get(params)
    s1, metrics = train_step(step_lib.init_state(cfg, len(VOCAB)), batch)
    assert int(s1.step) == 3
    for k in params:
        np.testing.assert_allclose(s1.params[k], params[k], rtol=1e-6, atol=1e-7)
    assert float(metrics["examples"]) == 9.0
    # the call settles the optimizer state once, as 3 updates leave it (count, last rate)
    assert int(s1.opt_state.count) == int(opt.count) == 3
    lr = float(opt.hyperparams["learning_rate"])
    assert float(s1.opt_state.hyperparams["learning_rate"]) == lr == float(metrics["lr"]) < 0.025


def test_full_softmax_is_chunked_for_large_vocabularies():
    small = make_config(loss="softmax", batch_size=256)
    assert xla.softmax_chunk(small, 10_000) == 0
    assert xla.softmax_chunk(small, 1_000_000) == (1 << 24) // 256
    assert xla.softmax_chunk(make_config(loss="softmax", softmax_chunk=100), 10) == 100


def test_shared_negatives_window_equals_its_pairs_with_the_same_negatives():
    """A skip-gram center window with one set of negatives = the sum of its (context, center)
    pair losses, each using that same set (so the gradient is the per-pair closed form summed)."""
    cfg = make_config(model="skipgram", loss="ns", dim=6, window=2, negative=3, shared_negatives=True)
    assert cfg.windows and cfg.batch_size == 48
    tables = step_lib.make_tables(VOCAB, cfg)
    rng = np.random.default_rng(3)
    params = {"emb_in": jnp.asarray(rng.normal(0, 0.3, (12, 6)), jnp.float32),
              "emb_out": jnp.asarray(rng.normal(0, 0.3, (12, 6)), jnp.float32)}
    mb = _batch("cbow", rng, 4, 12)  # window layout: inp [B, 2W] + inp_mask, out [B]
    key = jax.random.key(5)
    rows, ids, aux = objectives.gather(params, mb, tables, "ns", key, 3, neg=mb.neg)
    window = objectives.example_loss(rows, mb, aux, "skipgram", "ns")
    w_in, w_out = np.asarray(params["emb_in"], np.float64), np.asarray(params["emb_out"], np.float64)
    for e in range(4):
        expect = 0.0
        for c, m in zip(np.asarray(mb.inp[e]), np.asarray(mb.inp_mask[e])):
            if not m:
                continue
            out = np.asarray(ids["out"][e])
            pos = np.log(sig(w_in[c] @ w_out[out[0]]))
            neg = sum(np.log(sig(-w_in[c] @ w_out[n])) * k for n, k in zip(out[1:], np.asarray(aux["neg_mask"][e])))
            expect -= pos + neg
        assert float(window[e]) == pytest.approx(expect * float(mb.mask[e]), rel=1e-5, abs=1e-6)


def test_row_update_cap_scales_only_rows_touched_more_than_cap_times():
    ids = {"in": jnp.asarray([0, 1, 1, 1, 2], jnp.int32), "out": jnp.asarray([[3, 3], [3, 4], [3, 3], [4, 4], [5, 3]])}
    mb = Pairs(ids["in"], ids["out"][:, 0], jnp.asarray([1.0, 1.0, 1.0, 1.0, 0.0]), jnp.float32(0))
    grads = {"in": jnp.ones((5, 2)), "out": jnp.ones((5, 2, 2))}
    bufs = {"emb_in": jnp.zeros(6), "emb_out": jnp.zeros(6)}
    capped, bufs = xla.cap_row_updates(grads, ids, {}, mb, bufs, cap=2.0)
    # row 1 is touched 3 times (scale 2/3); rows 0 and 2 (masked example) at most once
    np.testing.assert_allclose(capped["in"][:, 0], [1, 2 / 3, 2 / 3, 2 / 3, 1])
    # output row 3 is touched 5 times by unmasked examples (scale 2/5), row 4 three times (2/3)
    np.testing.assert_allclose(capped["out"][:4, :, 0], [[0.4, 0.4], [0.4, 2 / 3], [0.4, 0.4], [2 / 3, 2 / 3]])
    assert not np.any(bufs["emb_in"]) and not np.any(bufs["emb_out"])  # buffers handed back all-zero


def test_padding_slots_are_dropped_from_the_scatters():
    """A masked example, an empty context slot and a padded Huffman path end update nothing: their
    ids become DROP, which apply_updates skips (the row the padding points at stays as it was)."""
    d = xla.DROP
    mb = Windows(jnp.asarray([[1, 2, 0], [3, 0, 0], [4, 5, 6]]),
                 jnp.asarray([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 1.0]]), jnp.asarray([1, 2, 3]),
                 jnp.asarray([1.0, 1.0, 0.0]), jnp.float32(0))
    ids = {"in": mb.inp, "out": jnp.asarray([[7, 8, 0], [7, 0, 0], [7, 8, 9]])}
    aux = {"path_mask": jnp.asarray([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])}
    got = xla.drop_padding(ids, mb, aux)
    np.testing.assert_array_equal(got["in"], [[1, 2, d], [3, d, d], [d, d, d]])
    np.testing.assert_array_equal(got["out"], [[7, 8, d], [7, d, d], [d, d, d]])
    params = {"emb_in": jnp.zeros((10, 2)), "emb_out": jnp.zeros((10, 2))}
    upd = {"in": jnp.ones((3, 3, 2)), "out": jnp.ones((3, 3, 2))}
    new = xla.apply_updates(params, upd, got)
    np.testing.assert_array_equal(new["emb_in"][:, 0], [0, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(new["emb_out"][:, 0], [0, 0, 0, 0, 0, 0, 0, 2, 1, 0])
    # skip-gram pairs: a masked pair drops its input and all of its output rows
    pairs = xla.drop_padding({"in": jnp.asarray([4, 5]), "out": jnp.asarray([[1, 2], [3, 4]])},
                             Pairs(jnp.asarray([4, 5]), jnp.asarray([1, 3]), jnp.asarray([0.0, 1.0]), jnp.float32(0)), {})
    np.testing.assert_array_equal(pairs["in"], [d, 5])
    np.testing.assert_array_equal(pairs["out"], [[d, d], [3, 4]])


def test_default_row_cap_grows_with_the_batch_and_an_explicit_one_is_kept():
    caps = [make_config(batch_size=b).row_cap for b in (64, 256, 4096, 16384, 65536)]
    np.testing.assert_allclose(caps, [16, 16, 16 * 16 ** (1 / 3), 64, 16 * 256 ** (1 / 3)])
    assert make_config(batch_size=16384, row_update_cap=16).row_cap == 16
    assert make_config(row_update_cap=0).row_cap == 0
    assert make_config(model="skipgram").for_platform("tpu").row_cap == pytest.approx(16 * 16 ** (1 / 3))
    assert make_config(model="skipgram").for_platform("gpu").row_cap == pytest.approx(64)
    # skip-gram center windows (48 on CPU, ~6 pairs each) scale from their own CPU batch
    shared = make_config(model="skipgram", shared_negatives=True)
    assert shared.row_cap == 16 and shared.for_platform("gpu").row_cap == pytest.approx(16 * 16 ** (1 / 3))
    # a work dir written when the cap's default was a plain 16 has the same identity at batch 256
    assert make_config(row_update_cap=16.0).identity() == make_config().identity()
    assert make_config(batch_size=4096, row_update_cap=16.0).identity() != make_config(batch_size=4096).identity()


def test_accelerators_default_to_16x_larger_batches():
    cfg = make_config(model="skipgram", loss="ns")
    assert cfg.for_platform("cpu").batch_size == 256
    assert cfg.for_platform("tpu").batch_size == 4096
    assert cfg.for_platform("gpu").batch_size == 16384  # skip-gram/NS pairs on a GPU: GPU_SKIPGRAM_NS_BATCH
    for loss in ("hs", "nce", "sampled-softmax"):
        assert make_config(model="skipgram", loss=loss).for_platform("gpu").batch_size == 4096
    assert make_config(shared_negatives=True, model="skipgram").for_platform("gpu").batch_size == 768
    assert make_config(batch_size=512).for_platform("gpu").batch_size == 512  # an explicit size is kept
    assert make_config(model="cbow").for_platform("gpu").batch_size == 1024  # CBOW: 4096 windows lost quality
    assert cfg.for_platform("gpu").validate().identity()["train"]["batch_size"] == 16384


@pytest.mark.parametrize("model,loss", [("skipgram", "ns"), ("cbow", "ns"), ("skipgram", "hs"), ("cbow", "hs")])
def test_a_calls_touch_counts_made_up_front_equal_each_updates(model, loss):
    """call_touches (a whole call's row-cap counts, before the scan: the accelerator path) gives
    every live slot the count the per-update [V] buffers give it, and 0 to dead slots."""
    cfg = make_config(model=model, loss=loss, dim=4, window=2, negative=3)
    tables = step_lib.make_tables(VOCAB, cfg)
    rng = np.random.default_rng(7)
    mbs = [_batch(model, rng, 6, len(VOCAB), negative=3 if loss == "ns" else 0) for _ in range(3)]
    batch = jax.tree.map(lambda *x: jnp.stack(x), *mbs)
    rows = {"emb_in": len(VOCAB), "emb_out": len(VOCAB) - (loss == "hs")}
    m_in, m_out = xla.call_touches(cfg, tables, batch, rows)
    params = {"emb_in": jnp.zeros((rows["emb_in"], 1)), "emb_out": jnp.zeros((rows["emb_out"], 1))}
    for i, mb in enumerate(mbs):
        _, ids, aux = objectives.gather(params, mb, tables, loss, None, 3, neg=mb.neg)
        ids = xla.drop_padding(ids, mb, aux)
        w_in, w_out = xla.touch_weights(mb, ids["out"].shape, aux.get("path_mask"))
        want_in, _ = xla._multiplicity(ids["in"], w_in, jnp.zeros(rows["emb_in"], jnp.int32))
        want_out, _ = xla._multiplicity(ids["out"], w_out, jnp.zeros(rows["emb_out"], jnp.int32))
        np.testing.assert_array_equal(m_in[i], want_in)
        np.testing.assert_array_equal(m_out[i], want_out)
        assert (np.asarray(want_out) > 1).any()


def _call(model, loss, *, seed, steps, **settings):
    """A small call for make_run: ``(cfg, tables, batch [steps, 7 examples], state, random tables)``."""
    cfg = make_config(model=model, loss=loss, dim=6, window=2, negative=5, batch_size=7, steps_per_call=steps,
                      **settings)
    tables = step_lib.make_tables(VOCAB, cfg)
    rng = np.random.default_rng(seed)
    mbs = [_batch(model, rng, 7, len(VOCAB), negative=5 if loss == "ns" else 0) for _ in range(steps)]
    batch = jax.tree.map(lambda *x: jnp.stack(x), *mbs)
    s0 = step_lib.init_state(cfg, len(VOCAB))
    params = {k: jnp.asarray(rng.normal(0, 0.3, s0.params[k].shape), jnp.float32) for k in ("emb_in", "emb_out")}
    return cfg, tables, batch, s0, params


@pytest.mark.parametrize("model,loss", [("skipgram", "ns"), ("cbow", "ns"), ("skipgram", "hs"), ("cbow", "hs")])
def test_scatters_on_ids_sorted_once_per_call_give_the_same_update(model, loss, monkeypatch):
    """sort_ids (the TPU default, engines.choose): each micro-step's large scatters' ids sorted up
    front for the whole call (xla.call_orders), the updates taken in that order, the scatters told
    so; the same tables as the plain call, to float tolerance (a row's updates add in another
    order).  Scatters of at most SORTED_SCATTER_SLOTS slots are left as they are."""
    cfg, tables, batch, s0, params = _call(model, loss, seed=3, steps=4, row_update_cap=2.0)
    assert xla.call_orders(cfg, tables, batch) == {}
    slots = {"in": batch.inp[0].size, "out": 7 * (6 if loss == "ns" else tables.points.shape[1])}
    monkeypatch.setattr(xla, "SORTED_SCATTER_SLOTS", min(slots.values()))  # the larger one only
    assert list(xla.call_orders(cfg, tables, batch)) == [max(slots, key=slots.get)]
    monkeypatch.setattr(xla, "SORTED_SCATTER_SLOTS", 0)
    orders = xla.call_orders(cfg, tables, batch)
    assert sorted(orders) == ["in", "out"]
    for sorted_ids, order in orders.values():  # ascending, DROP last, a permutation of each step's slots
        assert (np.diff(np.asarray(sorted_ids), axis=1) >= 0).all() and (np.asarray(sorted_ids) == xla.DROP).any()
        np.testing.assert_array_equal(np.sort(np.asarray(order), axis=1), np.broadcast_to(np.arange(order.shape[1]), order.shape))
    got = {}
    for sort in (False, True):
        run = xla.make_run(cfg, tables, xla.make_schedule(cfg, 500), sort_ids=sort)
        fn = jax.jit(run)
        got[sort] = fn(params, s0.opt_state, s0.step, s0.key, batch)
        if sort:
            assert "indices_are_sorted = true" in fn.lower(params, s0.opt_state, s0.step, s0.key, batch).as_text()
    for k in params:
        assert not np.allclose(got[True][0][k], params[k])
        np.testing.assert_allclose(got[True][0][k], got[False][0][k], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[True][3]["loss_sum"], got[False][3]["loss_sum"], rtol=1e-5)


def test_the_xla_and_mesh_engines_sort_scatter_ids_on_a_tpu_only():
    from w2vjax import engines
    assert engines.choose(make_config(model="skipgram"), "tpu")[1].sort_ids
    assert not engines.choose(make_config(model="skipgram"), "gpu")[1].sort_ids
    assert not engines.choose(make_config(model="skipgram", cpu_kernel=False), "cpu")[1].sort_ids
    assert engines.choose(make_config(model="skipgram"), "tpu", devices=4)[1].sort_ids  # the mesh engine too


@pytest.mark.parametrize("model,loss", [("skipgram", "ns"), ("skipgram", "hs"), ("cbow", "ns")])
def test_large_skipgram_micro_steps_make_the_input_update_behind_a_barrier(model, loss, monkeypatch):
    """Above BARRIER_SLOTS pairs a skip-gram micro-step's input update sits behind an optimization
    barrier (XLA:GPU otherwise copies both tables a micro-step there); CBOW never; either way the
    tables come out bitwise the same."""
    cfg, tables, batch, s0, params = _call(model, loss, seed=5, steps=3)
    got, barriers, default = {}, {}, xla.BARRIER_SLOTS
    for slots in (default, 6):  # the default, then a threshold these 7 pairs exceed
        monkeypatch.setattr(xla, "BARRIER_SLOTS", slots)
        fn = jax.jit(xla.make_run(cfg, tables, xla.make_schedule(cfg, 500)))
        got[slots] = fn(params, s0.opt_state, s0.step, s0.key, batch)
        barriers[slots] = "optimization_barrier" in fn.lower(params, s0.opt_state, s0.step, s0.key, batch).as_text()
    assert barriers == {default: False, 6: model == "skipgram"}
    for k in params:
        assert not np.array_equal(got[6][0][k], params[k])
        np.testing.assert_array_equal(got[6][0][k], got[default][0][k])


def test_a_micro_steps_loss_is_summed_in_a_few_chunks():
    """loss_sums: at most LOSS_SUM_CHUNK numbers a chunk (XLA:GPU sums more in two kernels), the
    chunks adding up to the plain sum; an awkward length falls back to one sum."""
    for n, k in [(6040, 1), (24160, 4), (8192, 1), (8200, 2), (97, 1)]:
        per = jnp.asarray(np.random.default_rng(n).random(n), jnp.float32)
        got = xla.loss_sums(per)
        assert got.shape == (k,) and n // k <= xla.LOSS_SUM_CHUNK
        np.testing.assert_allclose(got.sum(), per.sum(), rtol=1e-5)
    assert xla.loss_sums(jnp.ones(8209 * 3)).shape == (1,)  # 8209 is prime: no chunks of <= 8192 divide it
