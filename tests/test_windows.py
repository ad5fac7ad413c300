"""Device windows: the host sends rows of token ids, the step makes the examples (w2vjax.windows)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from w2vjax import make_config, step as step_lib
from w2vjax.config import ConfigError
from w2vjax.objectives import Tables
from w2vjax.prepare import prepare
from w2vjax.stream import Position, StreamSpec, block_examples
from w2vjax.batches import TokenRows
from w2vjax.windows import TokenSpec, TokenStream, device_examples, pair_slots, row_shape


def _tables(v, keep=1.0):
    probs = np.full(v, 1.0 / v)
    from w2vjax.vocab import alias_table
    accept, alias = alias_table(probs)
    dummy = jnp.zeros((v, 1), jnp.int32)
    return Tables(jnp.asarray(accept), jnp.asarray(alias), dummy, dummy, dummy.astype(bool),
                  jnp.full((v,), keep, jnp.float32))


def _examples(tokens, starts, rows, tables, window, windows=False, negative=0, key=0):
    mb = TokenRows(jnp.asarray(tokens, jnp.int32), jnp.asarray(starts), jnp.asarray(rows, jnp.int32), jnp.float32(0))
    fn = jax.jit(lambda mb: device_examples(mb, jax.random.key(key), tables, window=window, windows=windows,
                                            negative=negative))
    return {k: np.asarray(v) for k, v in fn(mb)._asdict().items() if v is not None}


def _pairs(ex):
    m = ex["mask"] > 0
    return ex["inp"][m], ex["out"][m]


def test_window_one_without_subsampling_gives_exactly_the_host_streams_pairs_within_rows():
    # b is always 1 at window 1 and sample 0 keeps every token: nothing random is left, so the
    # device's pairs must be the host stream's (word2vec.c's), less those crossing a row edge
    t, r = 64, 3
    tokens = np.arange(t * r)  # ids are positions
    sentences = np.array([0, 40, 100, 101, 170, t * r])  # a one-word sentence too
    starts = np.zeros(t * r, bool)
    starts[sentences[:-1]] = True
    ex = _examples(tokens.reshape(r, t), starts.reshape(r, t), np.arange(r), _tables(t * r), window=1)
    got = sorted((int(a), int(b)) for a, b in zip(*_pairs(ex)))
    spec = StreamSpec("skipgram", 1, 8, 1, 1, 0)
    host = block_examples(tokens, sentences, np.ones(t * r, np.float32), spec, 0, 0, 0, t * r)
    same_row = host["inp"] // t == host["out"] // t
    want = sorted(zip(host["inp"][same_row].tolist(), host["out"][same_row].tolist()))
    assert got == want
    assert len(want) == 2 * (t * r - 5) - 2 * (r - 1)  # neighbours within the 5 sentences, less 2 row edges
    assert (100, 101) not in got and (101, 100) not in got and (63, 64) not in got


def _distances(ex, t, window):
    """Per center position: the set of signed distances of its contexts (ids are positions)."""
    inp, out = _pairs(ex)
    by = {}
    for c, o in zip(inp.tolist(), out.tolist()):
        by.setdefault(o, set()).add(c - o)
    return by


def test_dynamic_window_is_symmetric_and_uniform_in_one_to_window():
    t, w = 1024, 5
    tokens = np.arange(t)[None]  # ids are positions
    starts = np.zeros((1, t), bool)
    starts[0, 0] = True
    ex = _examples(tokens, starts, [7], _tables(t), window=w)
    by = _distances(ex, t, w)
    reach = []
    for center, ds in by.items():
        if w <= center < t - w:  # interior: both sides complete
            left = {-d for d in ds if d < 0}
            right = {d for d in ds if d > 0}
            assert left == right == set(range(1, max(right) + 1)), (center, ds)
            reach.append(max(right))
    counts = np.bincount(reach, minlength=w + 1)[1:]
    assert len(reach) > 1000 - 20
    # b uniform in 1..5: each value about 1/5 of the centers (binomial sd ~ 13 of ~203)
    assert np.all(np.abs(counts / len(reach) - 1 / w) < 0.06), counts


def test_subsampling_rate_sentences_and_padding():
    t, w = 1000, 3
    tokens = np.arange(t)
    tokens[900:] = -1  # past the end of the epoch
    starts = np.zeros(t, bool)
    starts[[0, 300, 301, 650]] = True
    ex = _examples(tokens[None], starts[None], [3], _tables(t, keep=0.4), window=w, windows=True)
    centers = ex["out"][ex["mask"] > 0]
    # CBOW windows: centers are kept tokens; every kept token with a kept neighbour in its
    # sentence is a center, so nearly 40 % of the 900 real tokens (binomial sd ~15)
    assert 0.4 * 900 - 60 < len(centers) < 0.4 * 900 + 20
    assert centers.max() < 900
    sent = np.searchsorted([0, 300, 301, 650], np.arange(t), "right")
    for c, ctx, m in zip(ex["out"], ex["inp"], ex["inp_mask"]):
        for x in ctx[m > 0]:
            assert sent[x] == sent[c] and x != c
    assert 300 not in set(centers.tolist())  # the one-word sentence [300, 301) has no context
    # contexts are the kept neighbours, in kept order: at most w kept words away on each side
    kept = np.unique(np.concatenate([centers, ex["inp"][ex["inp_mask"] > 0]]))
    rank = {x: i for i, x in enumerate(kept)}
    for c, ctx, m in zip(ex["out"][ex["mask"] > 0], ex["inp"][ex["mask"] > 0], ex["inp_mask"][ex["mask"] > 0]):
        assert all(0 < abs(rank[x] - rank[c]) <= w for x in ctx[m > 0])


def test_a_rows_examples_depend_only_on_its_number():
    rng = np.random.default_rng(1)
    t, v = 128, 300
    tokens = rng.integers(0, v, size=(3, t))
    starts = np.zeros((3, t), bool)
    starts[:, 0] = True
    tables = _tables(v, keep=0.7)
    together = _examples(tokens, starts, [10, 11, 12], tables, window=5, negative=5)
    alone = _examples(tokens[1:2], starts[1:2], [11], tables, window=5, negative=5)
    n = pair_slots(t, 5)
    assert together["inp"].shape == (3 * n,)
    for k in ("inp", "out", "mask", "neg"):
        np.testing.assert_array_equal(together[k][n:2 * n], alone[k])
    other = _examples(tokens[1:2], starts[1:2], [12], tables, window=5, negative=5)
    assert not np.array_equal(other["mask"], alone["mask"])
    assert together["neg"].shape == (3 * n, 5) and together["neg"].max() < v
    dead = np.asarray(together["mask"]) == 0  # padding slots name row 0: no random row read
    assert dead.any() and (np.asarray(together["neg"])[dead] == 0).all()
    assert len(np.unique(np.asarray(together["neg"])[~dead])) > v // 2


def test_pairs_are_packed_to_the_front_of_fewer_slots(monkeypatch):
    assert pair_slots(1024, 5) == 6688 and pair_slots(64, 5) == 520  # vs 2W T = 10240, 640
    assert pair_slots(100, 1) == 200  # window 1: every token has at most 2 pairs
    t, w = 1024, 5
    tokens = np.arange(t)[None]
    starts = np.zeros((1, t), bool)
    starts[0, 0] = True
    ex = _examples(tokens, starts, [3], _tables(t), window=w)
    m = ex["mask"]
    assert m.shape == (6688,) and m[:int(m.sum())].all() and not m[int(m.sum()):].any()  # a prefix
    assert abs(m.sum() - (w + 1) * t) < 6 * np.sqrt(t * 8)  # every token kept: (W + 1) pairs each
    # in (center, offset) order
    assert (np.diff(ex["out"][m > 0]) >= 0).all()
    # a row with more pairs than slots keeps the first centers' pairs
    import w2vjax.windows as windows_mod
    monkeypatch.setattr(windows_mod, "pair_slots", lambda t, w: 24)
    few = _examples(tokens, starts, [3], _tables(t), window=w)
    assert few["mask"].all()
    np.testing.assert_array_equal(few["inp"], ex["inp"][:24])
    np.testing.assert_array_equal(few["out"], ex["out"][:24])


def test_row_shape():
    assert row_shape(256, 4.5) == (1, 64)
    assert row_shape(4096, 4.5) == (1, 912)
    assert row_shape(21000, 6.0, 4) == row_shape(21000, 6.0, 1) == (4, 880)  # already a multiple
    assert row_shape(4096, 0.75) == (6, 912)  # as few rows as hold them, as short as can be
    rows, length = row_shape(4096, 4.5, 8)
    assert rows == 8 and rows * length >= 4096 / 4.5


def test_token_stream_covers_every_token_once_per_epoch_and_resumes(head_corpus, tmp_path):
    corpus = prepare(head_corpus(20_000), str(tmp_path), max_sentence_length=700)
    n = corpus.num_words
    spec = TokenSpec(row_tokens=100, rows=3, steps_per_call=2, epochs=2)
    stream = TokenStream(corpus, spec)
    items = list(stream())
    tokens = np.concatenate([b.tokens.reshape(-1, 100) for b, _, _ in items])
    rows = np.concatenate([b.row.reshape(-1) for b, _, _ in items])
    per_epoch = -(-n // 100)
    real = rows < 2 * per_epoch
    np.testing.assert_array_equal(rows[real], np.arange(2 * per_epoch))
    ids = np.asarray(corpus.ids)
    for e in range(2):
        flat = tokens[e * per_epoch:(e + 1) * per_epoch].reshape(-1)
        np.testing.assert_array_equal(flat[:n], ids)
        assert (flat[n:] == -1).all()
    assert (tokens[~real] == -1).all()
    # sentence starts flagged where the corpus's sentences start (700-word chunks here)
    starts = np.concatenate([b.starts.reshape(-1, 100) for b, _, _ in items])[:per_epoch].reshape(-1)
    np.testing.assert_array_equal(np.flatnonzero(starts), corpus.sentences[:-1])
    # words done before each micro-step, and after each call
    words = np.concatenate([b.words for b, _, _ in items])
    firsts = rows[::3]
    np.testing.assert_array_equal(words, [stream.words_before(int(r)) for r in firsts])
    assert items[-1][2] == stream.total_words == 2 * n
    # resuming at any yielded position gives the same batches after it
    for i in (1, len(items) // 2):
        again = list(itertools.islice(stream(items[i - 1][1]), 2))
        for (a, pa, wa), (b, pb, wb) in zip(again, items[i:i + 2]):
            assert pa == pb and wa == wb
            for x, y in zip(a, b):
                np.testing.assert_array_equal(x, y)
    assert items[-1][1] == Position(2, 0, 0)


def test_device_windows_settings_that_cannot_work_are_refused():
    with pytest.raises(ConfigError, match="--cpu-kernel"):
        make_config(device_windows=True, cpu_kernel=True)
    with pytest.raises(ConfigError, match="--data-shards"):
        make_config(device_windows=True, data_shards=2)


def test_tables_carry_the_keep_probabilities(head_corpus, tmp_path):
    corpus = prepare(head_corpus(20_000), str(tmp_path))
    cfg = make_config(sample=1e-3)
    tables = step_lib.make_tables(corpus.vocab, cfg)
    np.testing.assert_array_equal(np.asarray(tables.keep_prob), corpus.vocab.keep_prob(1e-3))
