"""Examples made on the device from raw token ids (``--device-windows``).

The host stream (:mod:`w2vjax.stream`) makes every example in NumPy on one host core,
far below what an accelerator consumes (``benchmarks/device_windows.py``).  With device windows the host only
reads token ids, and the jitted step makes the examples itself:

* the host (:class:`TokenStream`) cuts each epoch of the corpus into *rows* of
  ``row_tokens`` consecutive in-vocabulary tokens (the last row of an epoch padded with
  ``-1``) and flags the tokens that start a sentence; a micro-step gets ``rows`` rows;
* the device (:func:`device_examples`), per row and as word2vec.c does per sentence:
  keeps each token with ``keep_prob[word]`` (subsampling), packs the kept tokens to the
  front, draws each kept center's window ``b`` uniformly in ``1..window``, pairs it with
  the kept tokens at distance ``1..b`` in the same sentence and row, and draws the noise
  words from the unigram^0.75 alias table.

Examples come out as fixed-shape, masked slots: skip-gram ``[rows * P]`` (context,
center) pairs, each row's pairs packed to the front of its ``P = pair_slots(T, W)`` slots;
CBOW (and skip-gram with shared negatives) ``[rows * T]`` center windows of ``[2W]``
contexts.  A row's ``T * 2W`` candidate (center, offset) slots are mostly empty (tokens
subsampled away, ``b`` below ``W``); packed into ``P`` (about ``(W + 1) T``, room for every
token kept) the step computes fewer slots, most of them pairs.

A row's randomness is ``fold_in(key, global row number)``, so its examples depend on
nothing but the seed and the row: the same on one device or several (rows are split over
the mesh), and the same after a resume.  Windows do not cross rows, as word2vec.c's do
not cross its 1000-word sentences: at ``row_tokens=1024`` about 0.3 % of the pairs the
host stream would make are not made.  The noise words and the subsampling draws differ
from the host stream's (another generator), so the vectors are not bitwise those of the
host stream; their quality is compared in ``benchmarks/results/device_windows_quality.md``.
"""

from __future__ import annotations

import math
from typing import Iterator, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import objectives
from .batches import Examples, Pairs, TokenRows, Windows
from .prepare import Corpus
from .stream import Position

MAX_ROW_TOKENS = 1024  # a row is at most this many raw tokens (about word2vec.c's 1000-word sentence)


class TokenSpec(NamedTuple):
    row_tokens: int  # T: raw tokens per row
    rows: int  # R: rows per micro-step
    steps_per_call: int
    epochs: int


def row_shape(examples: int, examples_per_token: float, devices: int = 1) -> tuple[int, int]:
    """``(rows, row_tokens)`` for micro-steps of about ``examples`` examples.

    ``examples_per_token``: the expected examples per raw token (``keep_rate * (window + 1)``
    for skip-gram pairs, ``keep_rate`` for center windows).  Rows are at most
    :data:`MAX_ROW_TOKENS` long, as few as can be, and as short as they can be.  The rows are
    split over the ``devices``: if their number is not a multiple of it, it is rounded up and
    the rows shortened (then the micro-steps, so the vectors, differ from a run on one device;
    they are the same whenever the number of rows is already a multiple, as for ``examples``
    above ``(devices - 1) * 1024`` tokens' worth).
    """
    tokens = max(8, math.ceil(examples / max(examples_per_token, 1e-9)))
    rows = -(-tokens // MAX_ROW_TOKENS)
    if rows % devices:
        rows = -(-rows // devices) * devices
    return rows, -(-tokens // (8 * rows)) * 8  # the shortest rows (a multiple of 8) that hold them


def token_spec(cfg, keep_rate: float, devices: int = 1) -> TokenSpec:
    """The token rows of a run of ``cfg`` (a :class:`w2vjax.config.Config`): micro-steps of about
    ``cfg.batch_size`` examples, given the share ``keep_rate`` of tokens subsampling keeps (a
    kept token is one center window, or about ``window + 1`` skip-gram pairs)."""
    per_token = keep_rate * (1 if cfg.windows else cfg.data.window + 1)
    rows, length = row_shape(cfg.batch_size, per_token, devices)
    return TokenSpec(length, rows, cfg.train.steps_per_call, cfg.train.epochs)


class TokenStream:
    """Rows of raw token ids for a whole run, starting at a :class:`w2vjax.stream.Position`.

    Same interface as :class:`w2vjax.stream.Streamer`: iterating yields ``(batch,
    next_position, words_done)``; ``batch`` is a :class:`w2vjax.batches.TokenRows`: ``tokens``
    ``[steps, R, T]`` int32 (-1 past an epoch's end), ``starts`` ``[steps, R, T]`` bool (a
    sentence starts here), ``row`` ``[steps, R]`` int32 (the global row number: its randomness)
    and ``words`` ``[steps]`` float32 (raw words done before each micro-step).  A position is ``(epoch, row, 0)``.
    Reading is one contiguous read per call and epoch: memory does not grow with the corpus.
    """

    def __init__(self, corpus: Corpus, spec: TokenSpec):
        self.corpus, self.spec = corpus, spec
        self.n = corpus.num_words
        self.rows_per_epoch = -(-self.n // spec.row_tokens)
        self.total_words = self.n * spec.epochs
        self._end = self.rows_per_epoch * spec.epochs
        if self._end >= 2 ** 31:
            raise ValueError(f"{self._end:,} rows of {spec.row_tokens} tokens: too many to number in int32")

    def words_before(self, row):
        """Raw words done before global row(s) ``row`` (an int, or an int64 array)."""
        epoch, r = np.divmod(np.minimum(row, self._end), self.rows_per_epoch)
        return np.minimum(epoch * self.n + r * self.spec.row_tokens, self.total_words)

    def _read(self, first: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Tokens and sentence-start flags ``[count, T]`` of global rows ``first..first+count``."""
        t = self.spec.row_tokens
        tokens = np.full((count, t), -1, np.int32)
        starts = np.zeros((count, t), bool)
        row, end = first, min(first + count, self._end)
        sentences = self.corpus.sentences
        while row < end:  # one read per epoch the rows span
            r = row % self.rows_per_epoch
            take = min(end - row, self.rows_per_epoch - r)
            lo, hi = r * t, min((r + take) * t, self.n)
            flat_tok = tokens[row - first: row - first + take].reshape(-1)
            flat_tok[:hi - lo] = self.corpus.tokens(lo, hi)
            s = sentences[np.searchsorted(sentences, lo): np.searchsorted(sentences, hi)] - lo
            starts[row - first: row - first + take].reshape(-1)[s] = True
            row += take
        return tokens, starts

    def __call__(self, start: Position = Position()) -> Iterator[tuple[TokenRows, Position, int]]:
        s, r = self.spec.steps_per_call, self.spec.rows
        row = min(start.epoch * self.rows_per_epoch + start.block, self._end)
        while row < self._end:
            tokens, starts = self._read(row, s * r)
            nums = row + np.arange(s * r, dtype=np.int64)
            words = self.words_before(nums[::r]).astype(np.float32)
            batch = TokenRows(tokens.reshape(s, r, -1), starts.reshape(s, r, -1),
                              np.minimum(nums, 2 ** 31 - 1).astype(np.int32).reshape(s, r), words)
            row = min(row + s * r, self._end)
            epoch, within = divmod(row, self.rows_per_epoch)
            yield batch, Position(epoch, within, 0), int(self.words_before(row))


def pair_slots(row_tokens: int, window: int) -> int:
    """Skip-gram pair slots per row of ``row_tokens`` tokens: the mean number of pairs with every
    token kept, ``(W + 1) T`` (``b`` is uniform in ``1..W``: ``E[2b] = W + 1``), plus 6 standard
    deviations of their sum (``Var(2b) = (W^2 - 1) / 3``), a multiple of 8 and at most ``2W T``.
    Subsampling and sentence ends only lower the count; a row with more pairs than slots, about
    one in a billion where every token is kept, loses the pairs of its last centers."""
    t, w = row_tokens, window
    slots = (w + 1) * t + 6.0 * math.sqrt(t * (w * w - 1) / 3.0)
    return min(2 * w * t, -(-math.ceil(slots) // 8) * 8)


def _to_front(x: jax.Array, flags: jax.Array, size: int, fill=0) -> jax.Array:
    """The entries of ``x`` where ``flags`` holds, in order, packed to the front of ``size`` slots
    (the rest ``fill``; entries past ``size`` are dropped)."""
    # distinct indices, so that no two writes meet; those past ``size`` are dropped
    dest = jnp.where(flags, jnp.cumsum(flags) - 1, size + jnp.arange(flags.shape[0]))
    return jnp.full((size,), fill, x.dtype).at[dest].set(x, mode="drop", unique_indices=True)


def device_examples(mb: TokenRows, key: jax.Array, tables: objectives.Tables, *, window: int, windows: bool,
                    negative: int) -> Examples:
    """One micro-step's examples from its rows of tokens (see the module docstring).

    ``mb``: ``tokens`` / ``starts`` ``[R, T]``, ``row`` ``[R]``, ``words`` (scalar).  ``key``:
    the run's key for data randomness; ``tables``: ``keep_prob`` and the noise alias table.
    Returns the micro-batch the step's update takes (:class:`~w2vjax.batches.Windows` or
    :class:`~w2vjax.batches.Pairs`, ``neg`` drawn when ``negative``), with ``words`` passed through.
    """
    offsets = jnp.concatenate([jnp.arange(-window, 0), jnp.arange(1, window + 1)])

    def one(tok, starts, row):
        t = tok.shape[0]
        k_keep, k_win, k_neg = jax.random.split(jax.random.fold_in(key, row), 3)
        word = jnp.maximum(tok, 0)
        keep = (tok >= 0) & (jax.random.uniform(k_keep, (t,)) < tables.keep_prob[word])
        ktok = _to_front(word, keep, t)  # the kept tokens, and their sentence numbers
        ksid = _to_front(jnp.cumsum(starts, dtype=jnp.int32), keep, t, fill=-1)
        m = keep.sum()
        b = jax.random.randint(k_win, (t, 1), 1, window + 1)
        i = jnp.arange(t)[:, None]
        j = i + offsets[None, :]
        jc = jnp.clip(j, 0, t - 1)
        valid = (jnp.abs(offsets)[None, :] <= b) & (j >= 0) & (j < m) & (i < m) & (ksid[jc] == ksid[:, None])
        ctx = ktok[jc]
        if windows:
            ex = {"inp": jnp.where(valid, ctx, 0), "inp_mask": valid.astype(jnp.float32), "out": ktok,
                  "mask": valid.any(-1).astype(jnp.float32)}
        else:  # the row's pairs, packed to the front of its P slots (in center, offset order)
            p, flat = pair_slots(t, window), valid.reshape(-1)
            ex = {"inp": _to_front(ctx.reshape(-1), flat, p),
                  "out": _to_front(jnp.broadcast_to(ktok[:, None], ctx.shape).reshape(-1), flat, p),
                  "mask": _to_front(flat.astype(jnp.float32), flat, p)}
        if negative:  # a dead slot's noise words are row 0: no random row read for a slot that adds nothing
            neg = objectives.sample_negatives(k_neg, tables, ex["out"].shape + (negative,))
            ex["neg"] = jnp.where(ex["mask"][..., None] > 0, neg, 0)
        return ex

    ex = jax.vmap(one)(mb.tokens, mb.starts, mb.row)
    ex = {k: v.reshape((-1,) + v.shape[2:]) for k, v in ex.items()}
    return (Windows if windows else Pairs)(words=mb.words, **ex)
