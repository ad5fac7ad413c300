"""Vocabulary and everything derived from word counts (NumPy only).

A :class:`Vocab` holds words sorted by descending count (ties broken by first
occurrence in the corpus, as gensim does) and derives:

* ``keep_prob(sample)``: word2vec.c's subsampling keep-probability
  ``min(1, (sqrt(f / (t N)) + 1) * t N / f)`` with ``f`` the word's count,
  ``N`` the number of in-vocabulary tokens and ``t`` the ``sample`` threshold.
  (This is the formula of word2vec.c and gensim, not the paper's
  ``1 - sqrt(t / freq)``.)
* ``noise_probs(exponent)``: the negative-sampling noise ``count**exponent``
  normalised (0.75 in word2vec.c), and an alias table to draw from it in O(1).
* ``huffman()``: word2vec.c's Huffman tree (``CreateBinaryTree``): for every
  word the inner-node ids on its path from the root (``points``) and the branch
  bits (``codes``), padded to the longest code with a mask.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import NamedTuple

import numpy as np


class VocabError(ValueError):
    pass


_DIGITS = re.compile(r"[0-9]+")  # str.isdigit also takes '²', which int() refuses


class Huffman(NamedTuple):
    codes: np.ndarray  # [V, L] uint8 branch bits, root first
    points: np.ndarray  # [V, L] int32 inner-node ids (0 .. V-2), root first
    mask: np.ndarray  # [V, L] bool, True on the first code_len entries
    lengths: np.ndarray  # [V] int32 code lengths


@dataclasses.dataclass(frozen=True)
class Vocab:
    words: tuple[str, ...]
    counts: np.ndarray  # [V] int64, non-increasing

    def __post_init__(self):
        if len(self.words) != len(self.counts):
            raise VocabError("words and counts differ in length")

    def __len__(self) -> int:
        return len(self.words)

    @property
    def total(self) -> int:
        """N: the number of in-vocabulary tokens of the corpus."""
        return int(self.counts.sum())

    @property
    def index(self) -> dict[str, int]:
        cached = self.__dict__.get("_index")
        if cached is None:
            cached = {w: i for i, w in enumerate(self.words)}
            object.__setattr__(self, "_index", cached)
        return cached

    # ----------------------------------------------------------------- derived
    def keep_prob(self, sample: float) -> np.ndarray:
        """[V] float32 probability that subsampling keeps each occurrence of a word."""
        if sample <= 0:
            return np.ones(len(self), np.float32)
        f = self.counts.astype(np.float64)
        tn = sample * self.total
        p = (np.sqrt(f / tn) + 1.0) * tn / f
        return np.minimum(p, 1.0).astype(np.float32)

    def keep_rate(self, sample: float) -> float:
        """The expected share of raw words subsampling keeps (effective / raw words)."""
        return float((self.counts * self.keep_prob(sample)).sum() / self.total)

    def noise_probs(self, exponent: float = 0.75) -> np.ndarray:
        """[V] float64 noise distribution ``count**exponent / sum``; computed from the counts
        scaled by the largest when the powers overflow (large exponents), which gives the
        same distribution instead of NaN."""
        counts = self.counts.astype(np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            w = counts ** exponent
            total = w.sum()
        if not np.isfinite(total) or total <= 0:
            w = (counts / counts.max()) ** exponent
            total = w.sum()
        return w / total

    def huffman(self) -> Huffman:
        return huffman_tree(self.counts)

    # -------------------------------------------------------------------- I/O
    def save(self, path: str | os.PathLike) -> None:
        """word2vec.c's ``-save-vocab`` format: one ``word count`` per line."""
        from .export import atomic_write
        atomic_write(path, (f"{w} {c}\n" for w, c in zip(self.words, self.counts.tolist())))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocab":
        """Read :meth:`save`'s format (word2vec.c's ``-save-vocab``, which ``-read-vocab`` reads):
        one ``word count`` a line, split as prepare splits the corpus (on ASCII whitespace bytes
        only, not NBSP).  A missing file, a line that is not ``word count``, a count that is not a
        non-negative integer, a word given twice (blank lines are skipped) or no words at all raise :class:`VocabError`
        naming the file and line.  The order is kept (:func:`build_vocab` sorts by count)."""
        words, counts, seen = [], [], {}
        if os.path.exists(path) and not os.path.isfile(path):  # a FIFO would block, /dev/zero never end
            raise VocabError(f"vocabulary file {os.fspath(path)!r} is not a regular file; give a file's path")
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            raise VocabError(f"vocabulary file {os.fspath(path)!r} does not exist") from None
        except OSError as e:
            raise VocabError(f"cannot read vocabulary file {os.fspath(path)!r}: {e.strerror or e}") from None
        with f:
            for n, raw in enumerate(f, 1):
                try:
                    parts = [p.decode("utf-8") for p in raw.split()]
                except UnicodeDecodeError:
                    raise VocabError(f"{path}:{n}: not UTF-8 text") from None
                if not parts:  # a blank line (a trailing one, say) holds no entry
                    continue
                if len(parts) != 2 or not _DIGITS.fullmatch(parts[1]):
                    raise VocabError(f"{path}:{n}: expected 'word count' (a non-negative integer count), "
                                     f"got {raw.strip().decode('utf-8', 'replace')[:80]!r}")
                if parts[0] in seen:
                    raise VocabError(f"{path}:{n}: {parts[0]!r} is already on line {seen[parts[0]]}")
                seen[parts[0]] = n
                words.append(parts[0])
                counts.append(int(parts[1]))
        if not words:
            raise VocabError(f"vocabulary file {os.fspath(path)!r} holds no words")
        return cls(tuple(words), np.asarray(counts, np.int64))


def build_vocab(words, counts, min_count: int = 5, max_vocab: int | None = None):
    """Sort ``(word, count)`` by count (stable: ties keep the given order), drop
    words below ``min_count``, keep at most ``max_vocab``.

    Returns ``(vocab, old_to_new)`` where ``old_to_new`` maps each input index to
    its vocabulary id or -1 if dropped.
    """
    counts = np.asarray(counts, np.int64)
    order = np.argsort(-counts, kind="stable")
    order = order[counts[order] >= min_count]
    if max_vocab is not None:
        order = order[:max_vocab]
    old_to_new = np.full(len(counts), -1, np.int64)
    old_to_new[order] = np.arange(len(order))
    vocab = Vocab(tuple(words[i] for i in order.tolist()), counts[order])
    return vocab, old_to_new


def huffman_tree(counts: np.ndarray) -> Huffman:
    """word2vec.c's ``CreateBinaryTree`` for counts sorted in non-increasing order.

    Two pointers walk the sorted leaves (from the rarest) and the created inner
    nodes (in creation order); each step merges the two smallest, the second
    one getting branch bit 1.  Inner node ``V + a`` is created at step ``a`` and
    has id ``a`` in ``points``; the root is id ``V - 2``.
    """
    counts = np.asarray(counts, np.int64)
    v = len(counts)
    if v < 2:
        raise VocabError("hierarchical softmax needs at least 2 words in the vocabulary")
    if np.any(np.diff(counts) > 0):
        raise VocabError("huffman_tree needs counts sorted in non-increasing order")
    count = np.concatenate([counts, np.full(v, np.iinfo(np.int64).max // 4)]).tolist()
    parent = [0] * (2 * v)
    binary = [0] * (2 * v)
    pos1, pos2 = v - 1, v
    for a in range(v - 1):
        mins = []
        for _ in range(2):
            if pos1 >= 0 and count[pos1] < count[pos2]:
                mins.append(pos1)
                pos1 -= 1
            else:
                mins.append(pos2)
                pos2 += 1
        count[v + a] = count[mins[0]] + count[mins[1]]
        parent[mins[0]] = parent[mins[1]] = v + a
        binary[mins[1]] = 1
    parent_a = np.asarray(parent, np.int64)
    binary_a = np.asarray(binary, np.uint8)
    root = 2 * v - 2
    # Walk every leaf up to the root at once; record (bit, parent) leaf-first.
    node = np.arange(v)
    bits, ups = [], []
    alive = np.ones(v, bool)
    while alive.any():
        bits.append(np.where(alive, binary_a[node], 0))
        up = parent_a[node]
        ups.append(np.where(alive, up, -1))
        node = np.where(alive, up, node)
        alive = alive & (node != root)
    lengths = np.sum(np.stack([u >= 0 for u in ups]), axis=0).astype(np.int32)
    lmax = int(lengths.max())
    bits_a = np.stack(bits, 1)[:, :lmax]  # leaf-first
    ups_a = np.stack(ups, 1)[:, :lmax]
    codes = np.zeros((v, lmax), np.uint8)
    points = np.zeros((v, lmax), np.int32)
    mask = np.arange(lmax)[None, :] < lengths[:, None]
    # Reverse each row's valid prefix so the root comes first.
    j = np.arange(lmax)[None, :]
    src = np.where(mask, lengths[:, None] - 1 - j, 0)
    rows = np.arange(v)[:, None]
    codes[mask] = bits_a[rows, src][mask]
    points[mask] = (ups_a[rows, src] - v)[mask]
    return Huffman(codes, points, mask, lengths)


def alias_table(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vose's alias method: ``(accept [V] float32, alias [V] int32)``.

    Drawing ``i ~ U{0..V-1}``, ``u ~ U[0,1)`` and returning ``i if u < accept[i]
    else alias[i]`` samples exactly from ``probs`` (up to float32 rounding of
    ``accept``): see :func:`alias_probs`, which inverts the table.
    """
    p = np.asarray(probs, np.float64)
    v = len(p)
    scaled = p * v / p.sum()
    accept = np.ones(v, np.float64)
    alias = np.arange(v, dtype=np.int64)
    small = list(np.flatnonzero(scaled < 1.0)[::-1])
    large = list(np.flatnonzero(scaled >= 1.0)[::-1])
    scaled = scaled.tolist()
    while small and large:
        s = small.pop()
        g = large.pop()
        accept[s] = scaled[s]
        alias[s] = g
        scaled[g] = scaled[g] + scaled[s] - 1.0
        (small if scaled[g] < 1.0 else large).append(g)
    return accept.astype(np.float32), alias.astype(np.int32)


def alias_probs(accept: np.ndarray, alias: np.ndarray) -> np.ndarray:
    """The exact distribution an alias table samples from."""
    v = len(accept)
    acc = accept.astype(np.float64)
    p = acc / v
    np.add.at(p, alias, (1.0 - acc) / v)
    return p
