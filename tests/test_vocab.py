import heapq

import jax
import numpy as np
import pytest

from w2vjax import objectives
from w2vjax.stream import draw_noise
from w2vjax.vocab import Vocab, alias_probs, alias_table, build_vocab, huffman_tree


def test_huffman_hand_traced_word2vec_c_example():
    # counts [4, 3, 2, 1], traced by hand through word2vec.c's CreateBinaryTree
    hf = huffman_tree(np.array([4, 3, 2, 1]))
    assert hf.lengths.tolist() == [1, 2, 3, 3]
    assert hf.codes[0, :1].tolist() == [0]
    assert hf.codes[1, :2].tolist() == [1, 1]
    assert hf.codes[2, :3].tolist() == [1, 0, 1]
    assert hf.codes[3, :3].tolist() == [1, 0, 0]
    assert hf.points[2, :3].tolist() == [2, 1, 0]  # root (V-2) first
    assert hf.points[0, 0] == 2


def _optimal_cost(counts):
    heap = list(map(int, counts))
    heapq.heapify(heap)
    cost = 0
    while len(heap) > 1:
        a, b = heapq.heappop(heap), heapq.heappop(heap)
        cost += a + b
        heapq.heappush(heap, a + b)
    return cost


@pytest.mark.parametrize("seed", range(4))
def test_huffman_is_prefix_free_and_optimal(seed):
    rng = np.random.default_rng(seed)
    counts = np.sort(rng.zipf(1.3, 300).clip(1, 10**6))[::-1]
    hf = huffman_tree(counts)
    codes = ["".join(map(str, hf.codes[i, : hf.lengths[i]])) for i in range(len(counts))]
    assert len(set(codes)) == len(codes)
    srt = sorted(codes)
    assert not any(b.startswith(a) for a, b in zip(srt, srt[1:]))  # prefix-free
    assert int((hf.lengths * counts).sum()) == _optimal_cost(counts)  # a Huffman code
    assert np.all(hf.points[hf.mask] >= 0) and np.all(hf.points[hf.mask] <= len(counts) - 2)
    assert np.all(hf.points[:, 0] == len(counts) - 2)
    # rarer words never get shorter codes
    assert np.all(np.diff(hf.lengths) >= 0)


def test_huffman_lengths_match_gensim():
    pytest.importorskip("gensim")
    from gensim.models import Word2Vec
    rng = np.random.default_rng(7)
    counts = np.sort(rng.zipf(1.5, 200).clip(1, 10**5) * 7 + np.arange(200))[::-1]  # distinct
    words = [f"w{i}" for i in range(200)]
    m = Word2Vec(vector_size=4, min_count=1, hs=1, negative=0)
    m.build_vocab_from_freq(dict(zip(words, counts.tolist())))
    glen = np.array([len(m.wv.get_vecattr(w, "code")) for w in words])
    hf = huffman_tree(counts)
    assert int((glen * counts).sum()) == int((hf.lengths * counts).sum())


def test_subsampling_keep_probability_is_word2vec_c_formula():
    counts = np.array([10_000, 1_000, 100, 10, 5], np.int64)
    v = Vocab(tuple("abcde"), counts)
    t, n = 1e-3, counts.sum()
    expect = np.minimum((np.sqrt(counts / (t * n)) + 1) * (t * n) / counts, 1.0)
    np.testing.assert_allclose(v.keep_prob(t), expect, rtol=1e-6)
    assert np.all(v.keep_prob(0) == 1)


def test_noise_distribution_and_alias_sampler():
    counts = np.array([900, 400, 100, 25, 9, 5, 5, 1], np.int64)
    v = Vocab(tuple("abcdefgh"), counts)
    for e in (0.0, 0.5, 0.75, 1.0):
        p = v.noise_probs(e)
        np.testing.assert_allclose(p, counts ** e / (counts ** e).sum(), rtol=1e-12)
        accept, alias = alias_table(p)
        np.testing.assert_allclose(alias_probs(accept, alias), p, atol=1e-7)
    # draws on the device follow the distribution (chi-square, 8 categories, 200k draws)
    p = v.noise_probs(0.75)
    accept, alias = alias_table(p)
    tables = objectives.Tables(jax.numpy.asarray(accept), jax.numpy.asarray(alias), None, None, None)
    draws = np.asarray(objectives.sample_negatives(jax.random.key(0), tables, (200_000,)))
    freq = np.bincount(draws, minlength=8)
    chi2 = ((freq - 200_000 * p) ** 2 / (200_000 * p)).sum()
    assert chi2 < 24.3  # p = 0.001 for 7 degrees of freedom
    # and so do the stream's draws on the host (w2vjax.stream.draw_noise), the ones training uses
    draws = draw_noise(np.random.default_rng(0), (accept, alias), (400, 500)).ravel()
    freq = np.bincount(draws, minlength=8)
    chi2 = ((freq - 200_000 * p) ** 2 / (200_000 * p)).sum()
    assert chi2 < 24.3


def test_build_vocab_orders_by_count_with_first_occurrence_ties():
    words = ["x", "y", "z", "w", "q"]
    counts = [3, 7, 3, 1, 7]
    v, old_to_new = build_vocab(words, counts, min_count=2)
    assert v.words == ("y", "q", "x", "z")
    assert old_to_new.tolist() == [2, 0, 3, -1, 1]
    v2, _ = build_vocab(words, counts, min_count=1, max_vocab=2)
    assert v2.words == ("y", "q")


def test_vocab_save_load_roundtrip(tmp_path):
    v = Vocab(("the", "of", "é"), np.array([5, 3, 2]))
    v.save(tmp_path / "vocab.txt")
    w = Vocab.load(tmp_path / "vocab.txt")
    assert w.words == v.words and w.counts.tolist() == [5, 3, 2]
