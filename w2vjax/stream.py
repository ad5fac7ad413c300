"""Host-side streamer: subsampling, dynamic windows, fixed-shape batches.

Everything is vectorised NumPy over *blocks* of whole sentences (about
``block_words`` in-vocabulary tokens each).  A block's examples are a pure
function of ``(seed, epoch, block)``: the block's generator is seeded with
exactly that triple, so a run can resume from a saved :class:`Position`
without replaying data.

Per block, as word2vec.c does per sentence:

1. subsampling keeps each token with ``keep_prob[word]``;
2. every kept token (a *center*) draws its effective window ``b`` uniformly in
   ``1..window``;
3. contexts are the kept tokens at distance ``1..b`` in the same sentence;
4. with negative sampling, every example draws its ``negative`` noise words from the
   unigram^0.75 alias table (``neg``), after the draws above (so the examples do not
   depend on them).  Noise words are data, like the examples: drawn here, in the
   prefetch thread, they cost the device nothing, and an example carries its own
   whatever the number of devices or data shards it is split over.

Skip-gram examples are ``(context, center)`` pairs: as in word2vec.c the
context word's input vector is trained to predict the center word.  They come
in corpus order (by center, then left to right).  CBOW examples are a center's
context ids ``[2 * window]`` with a mask, and the center as target; centers with
no context are dropped, as word2vec.c does.

Examples flow continuously across blocks into batches of shape
``[steps_per_call, batch_size]`` with a mask; only the very last batch of a
run is padded.  Each micro-batch carries ``words``: the number of raw training
words (in-vocabulary tokens before subsampling, word2vec.c's ``word_count``)
done when it starts, which drives the learning-rate schedule.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator, NamedTuple

import numpy as np

from .batches import Batch, Windows, from_arrays, layout_of
from .prepare import Corpus


class Position(NamedTuple):
    """Where the stream is: the next example is number ``offset`` of ``block`` in ``epoch``."""
    epoch: int = 0
    block: int = 0
    offset: int = 0


def is_position_list(pos) -> bool:
    """Whether ``pos`` (a :class:`Position`, or as saved: a list of 3 ints) is instead a list of
    positions, one per data shard."""
    return bool(pos) and isinstance(pos[0], (list, tuple))


class StreamSpec(NamedTuple):
    model: str  # "skipgram" or "cbow"
    window: int
    batch_size: int
    steps_per_call: int
    epochs: int
    seed: int
    block_words: int = 1 << 16
    windows: bool = False  # skip-gram as center windows (like CBOW) instead of pairs
    negative: int = 0  # noise words drawn per example (``neg``); needs the noise alias table


def block_bounds(sentences: np.ndarray, block_words: int) -> np.ndarray:
    """Token boundaries of blocks made of whole sentences, each about ``block_words`` long."""
    starts = sentences[:-1]
    n = int(sentences[-1])
    take = np.flatnonzero(np.diff(np.concatenate([[-1], starts // block_words])) > 0)
    bounds = np.concatenate([starts[take], [n]]).astype(np.int64)
    return np.unique(bounds)


def draw_noise(rng: np.random.Generator, noise: tuple[np.ndarray, np.ndarray], shape) -> np.ndarray:
    """Noise words ``[*shape]`` drawn exactly from the alias table ``noise = (accept, alias)``."""
    accept, alias = noise
    i = rng.integers(0, len(accept), size=shape, dtype=np.int64)
    u = rng.random(shape, dtype=np.float32)
    return np.where(u < accept[i], i, alias[i]).astype(np.int32)


def block_examples(tokens: np.ndarray, sentences: np.ndarray, keep_prob: np.ndarray, spec: StreamSpec,
                   epoch: int, block: int, lo: int, hi: int, noise=None) -> dict[str, np.ndarray]:
    """All examples of ``tokens`` (the ids ``lo:hi``, whole sentences) for ``(seed, epoch, block)``.

    Returns arrays with a leading example axis.  Skip-gram pairs: ``inp`` (context
    id), ``out`` (center id), ``pos`` (raw token index of the center).  Windows (CBOW,
    or skip-gram with ``spec.windows``): ``inp`` ``[n, 2W]`` context ids,
    ``inp_mask`` ``[n, 2W]``, ``out`` (center), ``pos``.  With ``spec.negative``, also
    ``neg`` ``[n, negative]``, drawn from ``noise`` (the alias table).
    """
    rng = np.random.default_rng([spec.seed, epoch, block])
    w = spec.window
    tok = np.asarray(tokens, dtype=np.int64)
    n = len(tok)
    s_lo = np.searchsorted(sentences, lo, "right") - 1
    s_hi = np.searchsorted(sentences, hi, "left")
    sb = np.clip(sentences[s_lo: s_hi + 1], lo, hi) - lo
    sid = np.repeat(np.arange(len(sb) - 1), np.diff(sb))
    keep = rng.random(n, dtype=np.float32) < keep_prob[tok]
    kept = np.flatnonzero(keep)
    m = len(kept)
    ktok, ksid = tok[kept], sid[kept]
    b = rng.integers(1, w + 1, size=m)
    offsets = np.concatenate([np.arange(-w, 0), np.arange(1, w + 1)])
    j = np.arange(m)[:, None] + offsets[None, :]
    valid = (np.abs(offsets)[None, :] <= b[:, None]) & (j >= 0) & (j < m)
    jc = np.clip(j, 0, max(m - 1, 0))
    valid &= ksid[jc] == ksid[:, None]
    pos = kept + lo
    if spec.model == "skipgram" and not spec.windows:
        rows, cols = np.nonzero(valid)
        ex = {"inp": ktok[jc[rows, cols]].astype(np.int32), "out": ktok[rows].astype(np.int32),
              "pos": pos[rows]}
    else:
        has = valid.any(axis=1)
        ex = {"inp": np.where(valid, ktok[jc], 0)[has].astype(np.int32),
              "inp_mask": valid[has].astype(np.float32),
              "out": ktok[has].astype(np.int32), "pos": pos[has]}
    if spec.negative:
        ex["neg"] = draw_noise(rng, noise, (len(ex["out"]), spec.negative))
    return ex


class Streamer:
    """Fixed-shape batches for a whole run, starting at a :class:`Position`.

    Iterating yields ``(batch, next_position, words_done)``: ``batch`` a
    :class:`w2vjax.batches.Pairs` or ``Windows`` with leading axes
    ``[steps_per_call, batch_size]`` (``words``: ``[steps_per_call]`` float32 raw words done
    before each micro-batch); ``next_position`` is where the stream resumes after it, and
    ``words_done`` the raw words done after it.
    """

    def __init__(self, corpus: Corpus, keep_prob: np.ndarray, spec: StreamSpec, shard: int = 0,
                 shards: int = 1, noise=None):
        if spec.negative and noise is None:
            raise ValueError("spec.negative > 0 needs the noise alias table (accept, alias)")
        self.noise = None if noise is None else tuple(np.asarray(a) for a in noise)
        self.corpus = corpus
        self.keep_prob = np.asarray(keep_prob, np.float32)
        self.spec = spec
        self.bounds = block_bounds(corpus.sentences, spec.block_words)
        nb = len(self.bounds) - 1
        if shards > nb:
            raise ValueError(f"{shards} data shards but the corpus has only {nb} blocks of "
                             f"{spec.block_words} words; use fewer processes or --data-shards")
        # shard ``shard`` of ``shards`` streams the contiguous blocks [first_block, num_blocks)
        self.first_block = shard * nb // shards
        self.num_blocks = (shard + 1) * nb // shards
        self.start_word = int(self.bounds[self.first_block])
        self.words_per_epoch = int(self.bounds[self.num_blocks]) - self.start_word
        self.total_words = self.words_per_epoch * spec.epochs
        self.kind = layout_of(spec.model, spec.windows)

    def examples(self, epoch: int, block: int) -> dict[str, np.ndarray]:
        lo, hi = int(self.bounds[block]), int(self.bounds[block + 1])
        return block_examples(self.corpus.tokens(lo, hi), self.corpus.sentences, self.keep_prob, self.spec,
                              epoch, block, lo, hi, self.noise)

    def _blocks(self, start: Position):
        """(epoch, block, examples from start offset) for the rest of the run."""
        epoch, block, offset = start
        block = max(block, self.first_block)
        while epoch < self.spec.epochs:
            ex = self.examples(epoch, block)
            if offset:
                ex = {k: v[offset:] for k, v in ex.items()}
            yield epoch, block, offset, ex
            offset = 0
            block += 1
            if block == self.num_blocks:
                epoch, block = epoch + 1, self.first_block

    def __call__(self, start: Position = Position()) -> Iterator[tuple[dict, Position, int]]:
        s, bsz = self.spec.steps_per_call, self.spec.batch_size
        cap = s * bsz
        pending: list[dict[str, np.ndarray]] = []
        have = 0
        for epoch, block, offset, ex in self._blocks(start):
            n = len(ex["out"])
            ex["pos"] = ex["pos"] - self.start_word + epoch * self.words_per_epoch
            used = 0
            while n - used >= cap - have:
                take = cap - have
                pending.append({k: v[used: used + take] for k, v in ex.items()})
                used += take
                have = 0
                nxt = (Position(epoch, block, offset + used) if used < n
                       else self._after(epoch, block))
                yield self._pack(pending, nxt)
                pending = []
            if used < n:
                pending.append({k: v[used:] for k, v in ex.items()})
                have += n - used
        if have:
            yield self._pack(pending, Position(self.spec.epochs, 0, 0), final=True)

    def _after(self, epoch: int, block: int) -> Position:
        if block + 1 == self.num_blocks:
            return Position(epoch + 1, self.first_block, 0)
        return Position(epoch, block + 1, 0)

    def _pack(self, parts, nxt: Position, final: bool = False):
        s, bsz = self.spec.steps_per_call, self.spec.batch_size
        cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        n = len(cat["out"])
        pad = s * bsz - n
        pos = cat.pop("pos")
        batch = {}
        for k, v in cat.items():
            if pad:
                v = np.concatenate([v, np.zeros((pad,) + v.shape[1:], v.dtype)])
            batch[k] = v.reshape((s, bsz) + v.shape[1:])
        mask = np.zeros(s * bsz, np.float32)
        mask[:n] = 1.0
        batch["mask"] = mask.reshape(s, bsz)
        first = pos[np.minimum(np.arange(s) * bsz, n - 1)]
        batch["words"] = first.astype(np.float32)
        if final:
            words_done = self.total_words
        elif nxt.epoch >= self.spec.epochs:
            words_done = self.total_words
        elif nxt.offset == 0:
            words_done = nxt.epoch * self.words_per_epoch + int(self.bounds[nxt.block]) - self.start_word
        else:
            words_done = int(pos[-1]) + 1
        return from_arrays(self.kind, batch), nxt, words_done


class Prefetcher:
    """Runs an iterator in a background thread, ``size`` items ahead (bounded queue).

    ``transform`` (e.g. ``jax.device_put``) is applied in the thread too, so the
    host-to-device copy overlaps the device step.  Errors are re-raised in the
    consumer; :meth:`close` stops the thread.
    """

    _DONE = object()

    class _Error(NamedTuple):
        exc: BaseException

    def __init__(self, iterator, size: int = 4, transform=None):
        self._q: queue.Queue = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._it = iterator
        self._transform = transform or (lambda x: x)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self):
        try:
            for item in self._it:
                batch, *rest = item
                if not self._put((self._transform(batch), *rest)):
                    return
        except BaseException as e:  # re-raised in the consumer
            self._put(self._Error(e))
            return
        self._put(self._DONE)

    def __iter__(self):
        while True:
            item = self._q.get()
            if item is self._DONE:
                return
            if isinstance(item, self._Error):
                raise item.exc
            yield item

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)


class ShardedStream:
    """The global batch as the concatenation of ``shards`` streams along the batch axis.

    Shard ``j`` streams the ``j``-th contiguous part of the corpus (a :class:`Streamer` over
    its blocks, with ``batch_size / shards`` examples per micro-batch); a process streams only
    the shards in ``local``.  Positions are tuples (one :class:`Position` per local shard);
    ``words`` becomes ``[steps, batch]``: each column carries its shard's raw words done, and
    the step sums them (:func:`w2vjax.engines.xla.global_words`).  A shard that runs out first
    contributes fully masked examples until every shard is done; with ``pad_forever`` (several
    processes, which must run the same number of steps) the stream never ends by itself and the
    caller stops when every process is idle (:meth:`idle`).
    """

    def __init__(self, corpus: Corpus, keep_prob: np.ndarray, spec: StreamSpec, shards: int,
                 local: tuple[int, ...], pad_forever: bool = False, noise=None):
        if spec.batch_size % shards:
            raise ValueError(f"the batch size {spec.batch_size} is not a multiple of the {shards} data shards")
        self.spec = spec._replace(batch_size=spec.batch_size // shards)
        self.streamers = [Streamer(corpus, keep_prob, self.spec, j, shards, noise) for j in local]
        self.local, self.pad_forever = tuple(local), pad_forever
        self.words_per_epoch = int(corpus.sentences[-1])
        self.total_words = self.words_per_epoch * spec.epochs

    def start(self) -> tuple[Position, ...]:
        return tuple(Position(0, s.first_block, 0) for s in self.streamers)

    def idle(self, positions: tuple[Position, ...]) -> bool:
        """Whether every local shard is done at ``positions``."""
        return all(p.epoch >= self.spec.epochs for p in positions)

    def _empty(self, words: int) -> Batch:
        s, b, w = self.spec.steps_per_call, self.spec.batch_size, self.spec.window
        kind = layout_of(self.spec.model, self.spec.windows)
        windows = kind is Windows
        out = {"inp": np.zeros((s, b, 2 * w) if windows else (s, b), np.int32)}
        if windows:
            out["inp_mask"] = np.zeros((s, b, 2 * w), np.float32)
        out.update(out=np.zeros((s, b), np.int32), mask=np.zeros((s, b), np.float32),
                   words=np.full((s,), words, np.float32))
        if self.spec.negative:
            out["neg"] = np.zeros((s, b, self.spec.negative), np.int32)
        return from_arrays(kind, out)

    def __call__(self, starts: tuple[Position, ...]):
        iters = [st(p) for st, p in zip(self.streamers, starts)]
        done = [p.epoch >= self.spec.epochs for p in starts]
        positions = list(starts)
        words = [st.total_words if d else 0 for st, d in zip(self.streamers, done)]
        b = self.spec.batch_size
        while True:
            parts, produced = [], False
            for i, it in enumerate(iters):
                got = None if done[i] else next(it, None)
                if got is None:
                    if not done[i]:
                        done[i], words[i] = True, self.streamers[i].total_words
                        positions[i] = Position(self.spec.epochs, 0, 0)
                    parts.append(self._empty(words[i]))
                else:
                    part, positions[i], words[i] = got
                    parts.append(part)
                    produced = True
            if not produced and not self.pad_forever:
                return
            cols = [p._asdict() for p in parts]
            batch = {k: np.concatenate([c[k] for c in cols], axis=1) for k in cols[0]
                     if k != "words" and cols[0][k] is not None}
            batch["words"] = np.concatenate([np.broadcast_to(c["words"][:, None], (len(c["words"]), b))
                                             for c in cols], axis=1).astype(np.float32)
            yield type(parts[0])(**batch), tuple(positions), int(sum(words))
