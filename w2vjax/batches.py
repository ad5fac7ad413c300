"""The three batch layouts an engine can take, one NamedTuple each.

Arrays carry leading axes ``[steps, batch]`` (a whole call) or ``[batch]`` (one micro-batch);
``words`` is the raw words done before each micro-batch (``[steps]``, or ``[steps, batch]`` when
the batch joins several data shards, each example carrying its own shard's count).  The layout
is fixed by the configuration (:func:`layout_of`), never sniffed from which arrays are present.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Union

Array = Any  # a NumPy or JAX array


class Pairs(NamedTuple):
    """Skip-gram (context, center) pairs."""
    inp: Array  # [..., B] int32 context word (its input row predicts the center)
    out: Array  # [..., B] int32 center word
    mask: Array  # [..., B] float32, 0 on padding
    words: Array  # raw words done before the micro-batch
    neg: Optional[Array] = None  # [..., B, K] int32 noise words drawn by the host stream (NS)


class Windows(NamedTuple):
    """Center windows: CBOW, or skip-gram with one set of negatives per center."""
    inp: Array  # [..., B, 2W] int32 context words
    inp_mask: Array  # [..., B, 2W] float32, which context slots are live
    out: Array  # [..., B] int32 center word
    mask: Array  # [..., B] float32, 0 on padding
    words: Array
    neg: Optional[Array] = None  # [..., B, K]


class TokenRows(NamedTuple):
    """Raw token ids cut into rows; the device makes the examples (:mod:`w2vjax.windows`)."""
    tokens: Array  # [..., R, T] int32, -1 past the corpus end
    starts: Array  # [..., R, T] bool, a token that starts a sentence
    row: Array  # [..., R] int32 global row number (the row's randomness)
    words: Array


Examples = Union[Pairs, Windows]
Batch = Union[Pairs, Windows, TokenRows]


def layout_of(model: str, windows: bool) -> type:
    """The example layout of a model: skip-gram pairs, or center windows."""
    return Windows if (model == "cbow" or windows) else Pairs


def from_arrays(kind: type, arrays: dict) -> Batch:
    """A batch of layout ``kind`` from a dict of its arrays (missing optional fields: None)."""
    return kind(**{k: arrays[k] for k in kind._fields if k in arrays})


def is_windows(mb: Examples) -> bool:
    return isinstance(mb, Windows)
