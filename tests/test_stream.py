import numpy as np
import pytest

from w2vjax.prepare import Corpus
from w2vjax.stream import Position, Prefetcher, Streamer, StreamSpec
from w2vjax.vocab import Vocab, alias_table


def _corpus(n=3000, sentence=500):
    """Token i has id i: a pair's ids give the distance between its words."""
    vocab = Vocab(tuple(map(str, range(n))), np.ones(n, np.int64))
    sentences = np.unique(np.concatenate([np.arange(0, n, sentence), [n]])).astype(np.int64)
    return Corpus(vocab, np.arange(n, dtype=np.uint32), sentences, "synthetic")


def _all(streamer, start=Position()):
    """The stream's items with each batch as a dict of its arrays."""
    return [({k: v for k, v in b._asdict().items() if v is not None}, p, w) for b, p, w in streamer(start)]


@pytest.mark.parametrize("model,negative", [("skipgram", 0), ("cbow", 0), ("skipgram", 3), ("cbow", 2)])
def test_stream_is_a_pure_function_of_seed_and_position(model, negative):
    c = _corpus()
    spec = StreamSpec(model, 4, 32, 5, 2, seed=3, block_words=700, negative=negative)
    keep = np.full(len(c.vocab), 0.8, np.float32)
    noise = alias_table(c.vocab.noise_probs(0.75)) if negative else None
    a, b = _all(Streamer(c, keep, spec, noise=noise)), _all(Streamer(c, keep, spec, noise=noise))
    if negative:  # each example carries its noise words; drawing them leaves the examples as they were
        assert a[0][0]["neg"].shape == (5, 32, negative)
        plain = _all(Streamer(c, keep, spec._replace(negative=0)))
        for (x, _, _), (y, _, _) in zip(a, plain):
            assert set(x) == set(y) | {"neg"}
            for k in y:
                np.testing.assert_array_equal(x[k], y[k])
    assert len(a) == len(b) > 5
    for (x, px, wx), (y, py, wy) in zip(a, b):
        assert px == py and wx == wy
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
    other = _all(Streamer(c, keep, spec._replace(seed=4), noise=noise))
    assert not np.array_equal(a[0][0]["out"], other[0][0]["out"])
    # resuming from any saved position yields exactly the rest of the stream
    for i in (1, 4, len(a) - 2):
        rest = _all(Streamer(c, keep, spec, noise=noise), a[i][1])
        assert len(rest) == len(a) - i - 1
        for (x, _, _), (y, _, _) in zip(a[i + 1:], rest):
            for k in x:
                np.testing.assert_array_equal(x[k], y[k])
    # fixed shapes, so the jitted step never recompiles
    assert len({tuple((k, v.shape) for k, v in sorted(x.items())) for x, _, _ in a}) == 1
    assert a[-1][2] == 2 * 3000


def test_skipgram_covers_every_in_window_pair_at_the_expected_rate():
    c = _corpus(n=4000, sentence=400)
    w, epochs = 4, 60
    spec = StreamSpec("skipgram", w, 256, 8, epochs, seed=0, block_words=1000)
    counts = np.zeros(2 * w + 1)
    crossed = 0
    for b, _, _ in Streamer(c, np.ones(4000, np.float32), spec)():
        m = b.mask.astype(bool)
        d = b.inp[m].astype(np.int64) - b.out[m]  # context - center
        assert np.all((np.abs(d) >= 1) & (np.abs(d) <= w))
        crossed += np.sum(b.inp[m] // 400 != b.out[m] // 400)
        counts += np.bincount(d + w, minlength=2 * w + 1)
    assert crossed == 0  # windows never cross a sentence boundary
    # each ordered pair at distance d (inside a sentence) appears with P(b >= d) = (W - d + 1) / W
    for d in range(1, w + 1):
        pairs = (400 - d) * 10 * epochs  # per direction
        for sign in (-1, 1):
            rate = counts[w + sign * d] / pairs
            assert rate == pytest.approx((w - d + 1) / w, abs=0.01), (d, sign, rate)


def test_cbow_windows_and_subsampling_rate():
    n = 20000
    c = _corpus(n=n, sentence=1000)
    keep = np.where(np.arange(n) % 2 == 0, 0.3, 1.0).astype(np.float32)
    spec = StreamSpec("cbow", 3, 128, 4, 5, seed=1, block_words=3000)
    targets = []
    for b, _, _ in Streamer(c, keep, spec)():
        m = b.mask.astype(bool)
        ctx, cm, out = b.inp[m], b.inp_mask[m].astype(bool), b.out[m]
        assert np.all(cm.sum(1) >= 1)
        dist = np.abs(ctx.astype(np.int64) - out[:, None])
        assert np.all(dist[cm] >= 1)
        assert np.all(ctx[cm] // 1000 == np.repeat(out, cm.sum(1)) // 1000)
        targets.append(out)
    t = np.concatenate(targets)
    even = np.sum(t % 2 == 0) / (5 * n / 2)
    odd = np.sum(t % 2 == 1) / (5 * n / 2)
    assert even == pytest.approx(0.3, abs=0.02) and odd == pytest.approx(1.0, abs=0.02)


def test_prefetcher_propagates_errors_and_stops():
    def gen():
        yield ({"x": 1}, 0, 0)
        raise RuntimeError("boom")
    p = Prefetcher(gen(), 2)
    it = iter(p)
    assert next(it)[0] == {"x": 1}
    with pytest.raises(RuntimeError, match="boom"):
        next(it)
    p.close()
