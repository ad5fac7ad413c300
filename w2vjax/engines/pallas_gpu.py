"""A fused Pallas update for the GPU (the Triton backend): skip-gram pairs or CBOW windows,
negative sampling or hierarchical softmax, one micro-batch in 1-3 kernel launches.

As BlazingText and FULL-W2V do it in CUDA: the micro-batch is cut into blocks of ``block``
examples, one Triton program each.  A program loads its examples' input rows ``h`` once (kept
on chip; a CBOW window's ``h`` is its context rows' weighted sum), then for every output slot
``j`` (the center word and the noise words, or the Huffman path's inner nodes) loads the output
rows ``o_j``, computes ``g_j = (sigmoid(s_j h.o_j) - 1) s_j w_j mask``, accumulates
``dL/dh = sum_j g_j o_j`` and adds ``-lr g_j h / div_out_j`` into ``emb_out`` at once with
atomics; last it adds ``-lr dL/dh / div_in`` into ``emb_in`` (CBOW: ``-lr gw_c dL/dh / div_in``
into every context row ``c``).  Each row is read and written once per example.

The row-update cap (:func:`w2vjax.engines.xla.cap_row_updates`) divides a slot's update by
``max(1, touches / cap)``, ``touches`` the live slots touching that row in the micro-batch
(each table counted apart, the weights of :func:`w2vjax.engines.xla.touch_weights`).  The
touches are whole-number counts in two all-zero ``[V]`` buffers (:func:`count_buffers`): launch 1
adds them (native float atomics in Triton's PTX), launch 2 is the update, launch 3 resets the
touched entries to zero, so a scan can carry the buffers instead of filling ``[V]`` per
micro-step (``count_mode="xla"``: the same with XLA's int32 scatter-adds, native int atomics;
``cap <= 0``: no counts, one launch).

**Hogwild, not batch semantics.**  The XLA engine computes every update from the rows as
they were before the micro-batch; here a program reads rows that other programs may already
have updated (and, within a program, slot ``j`` reads rows that slots ``< j`` of the same
program updated), as BlazingText's and word2vec.c's Hogwild threads do.  Atomics keep every
update (none is lost), only the rows they were computed from differ.  When no two live slots
of the micro-batch share a row of the same table the two agree; tests check that, and a
sequential-by-program emulation (:func:`reference_update`) for rows repeated across programs.

**Emulations** (the order is the GPU's scheduler's; two ends of it run on CPU).  *Sequential*:
one program after another (``interpret=True``, the kernel's own code, slow; :func:`reference_update`
in NumPy) -- the freshest reads, as if the programs never overlapped.  *Concurrent*
(``emulate=True``, the one XLA program ``--pallas`` runs on CPU): the same body over the whole
micro-batch at once, i.e. every program in step with the others -- slot ``j``'s output rows read
after every program's adds of slots ``< j`` and before any of slot ``j``'s, the input rows read
first and added last, repeated rows' adds summed.  On a GPU the 189 programs of a 4096-pair
micro-batch (6,048 slots of 32) are all resident at once on an H200's 132 SMs if two fit on an SM
(their registers decide), so they run side by side, near the concurrent end;
:func:`reference_update` with ``block = B`` is the concurrent order in NumPy (the tests' check).

Column chunks: Triton tensors have power-of-two shapes, so a row of ``D`` floats is handled as
the binary decomposition of ``D`` (100 = 64 + 32 + 4); a chunk's loads and atomics are masked by
the slot's liveness, not by the columns.  The kernel sees the
tables as flat ``[V * D]`` views (a bitcast) and indexes them with int32 element offsets
``row * D + column``: the one indexing both Triton and interpret mode's atomics take.

On CPU ``interpret=True`` runs the same kernels in Python/XLA, programs one after another; there
``atomic_add`` with an index repeated inside one call keeps the last write (not the sum), so
rows must not repeat within one slot of one program there (a row repeated across slots or
programs is fine: those are separate calls); the atomics' masks (which skip dead slots on the
GPU) are not supported there and are left out, which changes no value.
"""

from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plt

DEFAULT_BLOCK = 32  # pairs per program; untuned (nothing could be timed without a device)
# CBOW windows per program: a window reads ~2W input rows, and the accelerator's CBOW micro-batch
# is 1024 windows, so 8 gives 128 programs a micro-step, as 4096 pairs at 32 do; also untuned
CBOW_BLOCK = 8
DEFAULT_WARPS = 4


def column_chunks(d: int) -> tuple[tuple[int, int], ...]:
    """``(start, size)`` power-of-two column slices covering ``[0, d)``: 100 -> (0, 64), (64, 32), (96, 4)."""
    out, start = [], 0
    for bit in reversed(range(d.bit_length())):
        if d & (1 << bit):
            out.append((start, 1 << bit))
            start += 1 << bit
    return tuple(out)


def _log_sigmoid(x):
    return jnp.minimum(x, 0.0) - jnp.log1p(jnp.exp(-jnp.abs(x)))


def _sigmoid(x):
    return 1.0 / (1.0 + jnp.exp(-x))


# -- the input and output slots of a block of examples -------------------------------------------

def _pair_inputs(inp_ref, rows):
    """Skip-gram pairs: one input row per example, ``[(ids, h_weight, grad_weight, touch)]``
    (None: 1)."""
    return [(inp_ref[rows], None, None, None)]


def _window_inputs(inp_ref, ctx_ref, rows, width, mean, exact_grad):
    """CBOW windows: the ``width`` context slots, ``h = sum_c hw_c emb_in[ids_c]`` and the context
    row ``c`` receiving ``gw_c dL/dh`` (:func:`w2vjax.objectives.kernel_inputs`' rule, so
    word2vec.c's by default: the mean forward, the whole gradient to every context row); a live
    context slot is one touch of its row."""
    ctx = [ctx_ref[rows, c] for c in range(width)]
    count = functools.reduce(lambda a, b: a + b, ctx)
    inv = 1.0 / jnp.maximum(count, 1.0)
    out = []
    for c in range(width):
        hw = ctx[c] * inv if mean else ctx[c]
        gw = ctx[c] * inv if mean == exact_grad else ctx[c]
        out.append((inp_ref[rows, c], hw, gw, ctx[c]))
    return out


# -- the output slots of a block of examples ----------------------------------------------------

def _ns_slots(out_ref, neg_ref, rows, negative):
    """Negative sampling: ``[(ids, sign, weight, touch)]`` for the center and the K noise words
    (``None``: 1); a noise word equal to the center weighs 0 (word2vec.c skips it) but still
    counts as a touch, as in the XLA engine (:func:`w2vjax.engines.xla.touch_weights`)."""
    out = out_ref[rows]
    slots = [(out, 1.0, None, None)]
    for k in range(negative):
        nk = neg_ref[rows, k]
        slots.append((nk, -1.0, (nk != out).astype(jnp.float32), None))
    return slots


def _hs_slots(out_ref, points_ref, codes_ref, pmask_ref, rows, path_len):
    """Hierarchical softmax: the inner nodes of the center's Huffman path, sign ``1 - 2 code``,
    weight the path mask (also the touch weight); looked up in the kernel from ``[V, L]`` tables."""
    out = out_ref[rows]
    slots = []
    for l in range(path_len):
        live = pmask_ref[out, l].astype(jnp.float32)
        slots.append((points_ref[out, l], 1.0 - 2.0 * codes_ref[out, l].astype(jnp.float32), live, live))
    return slots


# -- the three kernels --------------------------------------------------------------------------

def _count_kernel(*refs, in_fn, n_in_refs, slots_fn, n_slot_refs, block, interpret, reset):
    """Launch 1 (``reset=False``): add each live slot's touch weight into the counts;
    launch 3 (``reset=True``): set the touched entries back to 0."""
    in_refs, mask_ref = refs[:n_in_refs], refs[n_in_refs]
    slot_refs = refs[n_in_refs + 1:n_in_refs + 1 + n_slot_refs]
    cnt_in, cnt_out = refs[-2:]  # the aliased outputs (same buffers as the inputs before them)
    rows = pl.ds(pl.program_id(0) * block, block)
    mask = mask_ref[rows]
    ins = [(ids, t, cnt_in) for ids, _, _, t in in_fn(*in_refs, rows)]
    for ids, w, cnt in ins + [(i, t, cnt_out) for i, _, _, t in slots_fn(*slot_refs, rows)]:
        if reset:
            cnt[ids] = jnp.zeros((block,), cnt.dtype)
            continue
        t = mask if w is None else mask * w
        if interpret:
            plt.atomic_add(cnt, ids, t)
        else:
            plt.atomic_add(cnt, ids, t, mask=t > 0)


class _Atomics:
    """The kernel's access to the tables, the aliased flat ``[V * D]`` refs indexed by int32 element
    offsets ``row * D + column`` (``[block, n]`` per power-of-two column chunk): loads and atomic
    adds masked to the live slots, so a dead slot moves no row (interpret mode's atomics take no
    mask; a dead slot adds 0 anyway)."""

    def __init__(self, emb_in, emb_out, d, interpret):
        self.refs, self.d, self.interpret = {"in": emb_in, "out": emb_out}, d, interpret
        self.chunks = column_chunks(d)

    def at(self, ids, chunk):
        start, n = chunk
        return ids[:, None] * self.d + start + jnp.arange(n, dtype=jnp.int32)[None, :]

    def load(self, table, at, live):
        return plt.load(self.refs[table].at[at], mask=jnp.broadcast_to((live != 0)[:, None], at.shape), other=0.0)

    def add(self, table, at, upd, live):
        if self.interpret:
            plt.atomic_add(self.refs[table], at, upd)
        else:
            plt.atomic_add(self.refs[table], at, upd, mask=jnp.broadcast_to((live != 0)[:, None], upd.shape))


class _Concurrent:
    """The same accesses on the whole ``[V, D]`` tables for ``emulate=True``, whole rows at a time:
    a load sees every add made before it, an add sums repeated rows (XLA's scatter-add)."""

    def __init__(self, emb_in, emb_out):
        self.arrays = {"in": emb_in, "out": emb_out}
        self.chunks = ((0, emb_in.shape[1]),)

    def at(self, ids, chunk):
        return ids

    def load(self, table, at, live):  # a dead slot's row weighs 0: loading it changes nothing
        return self.arrays[table][at]

    def add(self, table, at, upd, live):
        self.arrays[table] = self.arrays[table].at[at].add(upd)


def _update_body(mem, lr, ins, mask, slots, cnt_in, cnt_out, *, cap):
    """The fused update of the examples ``mask`` covers (module docstring): ``ins`` / ``slots`` as
    the slot functions give them, ``cnt_*`` the filled touch counts (None without a cap), tables
    through ``mem`` (:class:`_Atomics` in the kernel, :class:`_Concurrent` in the emulation).
    Returns the examples' losses."""
    at_ins, h = [], None  # h: [block, n] per column chunk, kept for the whole block
    for ids, hw, _, t in ins:
        at_in = [mem.at(ids, c) for c in mem.chunks]
        v = [mem.load("in", a, mask if t is None else mask * t) for a in at_in]
        if hw is not None:
            v = [hw[:, None] * x for x in v]
        h = v if h is None else [x + y for x, y in zip(h, v)]
        at_ins.append(at_in)
    gin = [jnp.zeros_like(c) for c in h]
    loss = jnp.zeros_like(mask)
    for ids, sign, w, _ in slots:
        at_out = [mem.at(ids, c) for c in mem.chunks]
        wm = mask if w is None else mask * w
        o = [mem.load("out", a, wm) for a in at_out]
        logit = sum(jnp.sum(hc * oc, axis=1) for hc, oc in zip(h, o))
        loss = loss - wm * _log_sigmoid(sign * logit)
        g = (_sigmoid(sign * logit) - 1.0) * sign * wm  # dL/dlogit
        scale = -lr * g
        if cap > 0:
            scale = scale / jnp.maximum(1.0, cnt_out[ids].astype(jnp.float32) / cap)
        for c, (a, hc, oc) in enumerate(zip(at_out, h, o)):
            gin[c] = gin[c] + g[:, None] * oc
            mem.add("out", a, scale[:, None] * hc, wm)
    for (ids, _, gw, t), at_in in zip(ins, at_ins):  # dL/dh into every input row of the example
        scale_in = -lr * (jnp.ones_like(mask) if gw is None else gw)
        if cap > 0:
            scale_in = scale_in / jnp.maximum(1.0, cnt_in[ids].astype(jnp.float32) / cap)
        live = mask if t is None else mask * t
        for a, gc in zip(at_in, gin):
            mem.add("in", a, scale_in[:, None] * gc, live)
    return loss


def _update_kernel(*refs, in_fn, n_in_refs, slots_fn, n_slot_refs, block, d, cap, interpret):
    """Launch 2: the fused update of one block of examples (:func:`_update_body`)."""
    lr_ref, in_refs, mask_ref = refs[0], refs[1:1 + n_in_refs], refs[1 + n_in_refs]
    slot_refs = refs[2 + n_in_refs:2 + n_in_refs + n_slot_refs]
    rest = refs[2 + n_in_refs + n_slot_refs:]
    cnt_in_ref, cnt_out_ref = rest[:2] if cap > 0 else (None, None)
    emb_in, emb_out, loss_ref = rest[-3:]  # outputs; emb_* alias the input tables (read through them)
    rows = pl.ds(pl.program_id(0) * block, block)
    loss_ref[rows] = _update_body(_Atomics(emb_in, emb_out, d, interpret), lr_ref[0], in_fn(*in_refs, rows),
                                  mask_ref[rows], slots_fn(*slot_refs, rows), cnt_in_ref, cnt_out_ref, cap=cap)


# -- the update of one micro-batch --------------------------------------------------------------

def _inputs(inp, ctx_mask, cbow_mean, exact_grad):
    """The input side as kernel arrays and its slot function: pairs ``inp [B]``, or CBOW windows
    ``inp [B, C]`` with ``ctx_mask [B, C]``."""
    if ctx_mask is None:
        if inp.ndim != 1:
            raise ValueError(f"skip-gram pairs take inp [B]; windows [B, C] need ctx_mask (got {inp.shape})")
        return (inp.astype(jnp.int32),), _pair_inputs
    if ctx_mask.shape != inp.shape or inp.ndim != 2:
        raise ValueError(f"CBOW windows take inp and ctx_mask [B, C], got {inp.shape} and {ctx_mask.shape}")
    fn = functools.partial(_window_inputs, width=inp.shape[1], mean=cbow_mean, exact_grad=exact_grad)
    return (inp.astype(jnp.int32), ctx_mask.astype(jnp.float32)), fn


def _logistic_update(emb_in, emb_out, inp, mask, slot_arrays, slots_fn, lr, cap, counts, *, block,
                     interpret, num_warps, count_mode, ctx_mask=None, cbow_mean=True, exact_grad=False,
                     emulate=False):
    b = inp.shape[0]
    if b % block and not emulate:
        raise ValueError(f"the micro-batch ({b} examples) must be a multiple of block={block}")
    d = emb_in.shape[1]
    if emb_out.shape[1] != d:
        raise ValueError(f"emb_in and emb_out have different widths ({d}, {emb_out.shape[1]})")
    if max(emb_in.size, emb_out.size) >= 2 ** 31:
        raise ValueError(f"tables of {max(emb_in.size, emb_out.size)} floats: the kernel's int32 offsets need < 2**31")
    grid = (b // block,)
    params = None if interpret else plt.CompilerParams(num_warps=num_warps)
    in_arrays, in_fn = _inputs(inp, ctx_mask, cbow_mean, exact_grad)
    ni = len(in_arrays)
    mask = mask.astype(jnp.float32)
    lr = jnp.asarray(lr, jnp.float32).reshape(1)
    ns = len(slot_arrays)
    cap = float(cap)
    if cap > 0 and counts is None:
        counts = count_buffers(emb_in.shape[0], emb_out.shape[0], count_mode)
    if emulate:
        return _emulate(emb_in, emb_out, in_arrays, in_fn, mask, slot_arrays, slots_fn, lr[0], cap, counts)
    if cap > 0 and count_mode == "kernel" and any(c.dtype != jnp.float32 for c in counts):
        raise ValueError("count_mode='kernel' counts in float32 buffers (count_buffers): jax 0.10.2's Triton "
                         "lowering adds an int32 tensor with a float atomic")
    if cap > 0:
        if count_mode == "kernel":
            def count_call(reset, cnt):
                kern = functools.partial(_count_kernel, in_fn=in_fn, n_in_refs=ni, slots_fn=slots_fn,
                                         n_slot_refs=ns, block=block, interpret=interpret, reset=reset)
                n_in = ni + 1 + ns
                return pl.pallas_call(kern, grid=grid, out_shape=tuple(jax.ShapeDtypeStruct(c.shape, c.dtype)
                                                                        for c in cnt),
                                      input_output_aliases={n_in: 0, n_in + 1: 1}, interpret=interpret,
                                      compiler_params=params, name="w2v_touch_reset" if reset else "w2v_touch_count",
                                      )(*in_arrays, mask, *slot_arrays, *cnt)
            filled = count_call(False, counts)
        elif count_mode == "xla":
            filled = _xla_counts(in_arrays, in_fn, mask, slot_arrays, slots_fn, counts)
        else:
            raise ValueError(f"count_mode must be 'kernel' or 'xla', got {count_mode!r}")
    kern = functools.partial(_update_kernel, in_fn=in_fn, n_in_refs=ni, slots_fn=slots_fn, n_slot_refs=ns,
                             block=block, d=d, cap=cap, interpret=interpret)
    shapes = emb_in.shape, emb_out.shape
    flat_in, flat_out = emb_in.reshape(-1), emb_out.reshape(-1)  # row-major: a bitcast, no copy
    args = [lr, *in_arrays, mask, *slot_arrays] + (list(filled) if cap > 0 else []) + [flat_in, flat_out]
    n = len(args)
    flat_in, flat_out, loss = pl.pallas_call(
        kern, grid=grid,
        out_shape=(jax.ShapeDtypeStruct(flat_in.shape, flat_in.dtype), jax.ShapeDtypeStruct(flat_out.shape, flat_out.dtype),
                   jax.ShapeDtypeStruct((b,), jnp.float32)),
        input_output_aliases={n - 2: 0, n - 1: 1}, interpret=interpret, compiler_params=params,
        name="w2v_fused_update")(*args)
    emb_in, emb_out = flat_in.reshape(shapes[0]), flat_out.reshape(shapes[1])
    if cap <= 0:
        return emb_in, emb_out, loss, counts
    # the reset after the update has read the counts: else XLA may schedule it first and copy both
    # [V] count buffers a micro-step to keep them (compiled for an H200 at 16384 pairs)
    filled, loss = jax.lax.optimization_barrier((filled, loss))
    if count_mode == "kernel":
        counts = count_call(True, filled)
    else:
        counts = _xla_counts(in_arrays, in_fn, mask, slot_arrays, slots_fn, filled, reset=True)
    return emb_in, emb_out, loss, counts


def count_buffers(rows_in: int, rows_out: int, count_mode: str = "kernel"):
    """The all-zero touch-count buffers ``([rows_in], [rows_out])`` a scan carries between micro-steps:
    float32 for ``count_mode="kernel"`` (whole numbers, exact below 2**24 touches of a row; the
    Triton lowering of jax 0.10.2 picks a float atomic add for any tensor, int32 too, so int32
    counts would come out wrong on the GPU), int32 for ``"xla"`` (XLA's native int32 atomics)."""
    dt = jnp.float32 if count_mode == "kernel" else jnp.int32
    return jnp.zeros((rows_in,), dt), jnp.zeros((rows_out,), dt)


class _Ref:
    """An array indexed as the slot functions index refs (outside a kernel)."""

    def __init__(self, a):
        self.a = a

    def __getitem__(self, i):
        return self.a[i]


def _xla_counts(in_arrays, in_fn, mask, slot_arrays, slots_fn, counts, reset=False):
    """The touch counts with XLA's int32 scatter-add (``counts="xla"``), or their reset."""
    cnt_in, cnt_out = counts
    ins = in_fn(*map(_Ref, in_arrays), slice(None))
    slots = slots_fn(*map(_Ref, slot_arrays), slice(None))
    ids_in = jnp.concatenate([i for i, _, _, _ in ins])  # one scatter per table, not one per slot
    ids = jnp.concatenate([i for i, _, _, _ in slots])
    if reset:
        return cnt_in.at[ids_in].set(0), cnt_out.at[ids].set(0)
    t_in = jnp.concatenate([mask if w is None else mask * w for _, _, _, w in ins])
    t = jnp.concatenate([mask if w is None else mask * w for _, _, _, w in slots])
    return cnt_in.at[ids_in].add(t_in.astype(cnt_in.dtype)), cnt_out.at[ids].add(t.astype(cnt_out.dtype))


def _emulate(emb_in, emb_out, in_arrays, in_fn, mask, slot_arrays, slots_fn, lr, cap, counts):
    """``emulate=True``: :func:`_update_body` over the whole micro-batch at once, in XLA, as if every
    program ran in step with the others (the module docstring's "Emulations")."""
    filled = _xla_counts(in_arrays, in_fn, mask, slot_arrays, slots_fn, counts) if cap > 0 else (None, None)
    mem = _Concurrent(emb_in, emb_out)
    loss = _update_body(mem, lr, in_fn(*map(_Ref, in_arrays), slice(None)), mask,
                        slots_fn(*map(_Ref, slot_arrays), slice(None)), *filled, cap=cap)
    emb_in, emb_out = mem.arrays["in"], mem.arrays["out"]
    if cap > 0:
        counts = _xla_counts(in_arrays, in_fn, mask, slot_arrays, slots_fn, filled, reset=True)
    return emb_in, emb_out, loss, counts


def ns_update(emb_in, emb_out, inp, out, neg, mask, lr, cap, *, ctx_mask=None, cbow_mean: bool = True,
              exact_grad: bool = False, counts=None, block: int = DEFAULT_BLOCK,
              interpret: bool = False, num_warps: int = DEFAULT_WARPS, count_mode: str = "kernel",
              return_counts: bool = False, emulate: bool = False):
    """One negative-sampling update of a micro-batch of skip-gram (context, center) pairs or, with
    ``ctx_mask``, CBOW windows.

    Args:
      emb_in: ``[V, D]`` f32 input table; emb_out: ``[V, D]`` f32 output table (both updated in
        place: ``input_output_aliases``; donate them under ``jit``).
      inp: ``[B]`` int32 context ids (their input rows predict the centers), or CBOW's ``[B, C]``
        context windows with ``ctx_mask [B, C]`` (1 on live slots; ``cbow_mean`` and
        ``exact_grad`` as ``--cbow-mean`` / ``--cbow-exact-grad``); out: ``[B]`` int32 centers;
        neg: ``[B, K]`` int32 noise words; mask: ``[B]`` f32, 0 on padding.
      lr: scalar learning rate; cap: the row-update cap (``cfg.row_cap``; ``<= 0``: none).
      counts: the all-zero ``([V_in], [V_out])`` touch buffers of :func:`count_buffers` (None: made
        here, an O(V) fill; a scan carries them, returned all-zero with ``return_counts``).
      block: examples per Triton program (``B % block == 0``); interpret: run on CPU.
      count_mode: ``"kernel"`` (Pallas f32 atomics, 3 launches) or ``"xla"`` (XLA scatter-adds).
      emulate: no Pallas call: the same update as one XLA program in the order of programs that
        run in step (the module docstring's "Emulations"); any platform, fast on CPU.
    Returns:
      ``(emb_in, emb_out, loss [B])``, plus the all-zero ``counts`` when ``return_counts``.
    """
    negative = neg.shape[1]
    slots_fn = functools.partial(_ns_slots, negative=negative)
    r = _logistic_update(emb_in, emb_out, inp, mask, (out.astype(jnp.int32), neg.astype(jnp.int32)), slots_fn,
                         lr, cap, counts, block=block, interpret=interpret, num_warps=num_warps,
                         count_mode=count_mode, ctx_mask=ctx_mask, cbow_mean=cbow_mean, exact_grad=exact_grad,
                         emulate=emulate)
    return r if return_counts else r[:3]


def hs_update(emb_in, emb_out, inp, out, mask, lr, cap, points, codes, path_mask, *, ctx_mask=None,
              cbow_mean: bool = True, exact_grad: bool = False, counts=None,
              block: int = DEFAULT_BLOCK, interpret: bool = False, num_warps: int = DEFAULT_WARPS,
              count_mode: str = "kernel", return_counts: bool = False, emulate: bool = False):
    """One hierarchical-softmax update (skip-gram pairs or CBOW windows): as :func:`ns_update`, the output slots the
    center's Huffman path (``points, codes, path_mask``: the ``[V, L]`` tables of
    :class:`w2vjax.objectives.Tables`; ``emb_out`` has the inner nodes' rows)."""
    path_len = points.shape[1]
    slots_fn = functools.partial(_hs_slots, path_len=path_len)
    arrays = (out.astype(jnp.int32), points.astype(jnp.int32), codes.astype(jnp.int32), path_mask.astype(jnp.int32))
    r = _logistic_update(emb_in, emb_out, inp, mask, arrays, slots_fn, lr, cap, counts, block=block,
                         interpret=interpret, num_warps=num_warps, count_mode=count_mode, ctx_mask=ctx_mask,
                         cbow_mean=cbow_mean, exact_grad=exact_grad, emulate=emulate)
    return r if return_counts else r[:3]


# -- the emulation the tests check against ------------------------------------------------------

def reference_update(emb_in, emb_out, inp, out_ids, sign, weight, mask, lr, cap, block, ctx_mask=None,
                     cbow_mean=True, exact_grad=False):
    """NumPy emulation of the kernel's order: programs one after another; in a program ``h`` is
    read first, then slot by slot the output rows are read (as earlier slots and programs left
    them) and updated, then the input rows; the cap's touches are the whole micro-batch's.
    ``out_ids, sign, weight``: ``[B, J]``; an output slot counts ``mask`` touches (negative
    sampling's rule: a noise word equal to the center still counts; HS would count ``mask * weight``).
    ``inp``: ``[B]`` pairs, or ``[B, C]`` CBOW windows with ``ctx_mask`` (a live context slot
    counts one touch)."""
    emb_in = np.array(emb_in, np.float64)
    emb_out = np.array(emb_out, np.float64)
    inp, out_ids = np.asarray(inp), np.asarray(out_ids)
    sign, weight, mask = (np.asarray(a, np.float64) for a in (sign, weight, mask))
    if ctx_mask is None:
        inp, ctx, hw, gw = inp[:, None], np.ones((inp.shape[0], 1)), np.ones((inp.shape[0], 1)), np.ones((inp.shape[0], 1))
    else:
        ctx = np.asarray(ctx_mask, np.float64)
        inv = 1.0 / np.maximum(ctx.sum(1, keepdims=True), 1.0)
        hw = ctx * inv if cbow_mean else ctx
        gw = ctx * inv if cbow_mean == exact_grad else ctx
    t_in = np.zeros(emb_in.shape[0])
    np.add.at(t_in, inp, ctx * mask[:, None])
    t_out = np.zeros(emb_out.shape[0])
    np.add.at(t_out, out_ids, np.broadcast_to(mask[:, None], out_ids.shape))
    div = (lambda t: np.maximum(1.0, t / cap)) if cap > 0 else (lambda t: np.ones_like(t))
    loss = np.zeros(inp.shape[0])
    for p in range(inp.shape[0] // block):
        r = slice(p * block, (p + 1) * block)
        h = (emb_in[inp[r]] * hw[r][..., None]).sum(1)
        gin = np.zeros_like(h)
        for j in range(out_ids.shape[1]):
            ids = out_ids[r, j]
            o = emb_out[ids]
            x = sign[r, j] * (h * o).sum(1)
            wm = weight[r, j] * mask[r]
            loss[r] -= wm * -np.logaddexp(0.0, -x)
            g = (1.0 / (1.0 + np.exp(-x)) - 1.0) * sign[r, j] * wm
            gin += g[:, None] * o
            np.add.at(emb_out, ids, (-lr * g / div(t_out[ids]))[:, None] * h)
        for c in range(inp.shape[1]):
            ids = inp[r, c]
            np.add.at(emb_in, ids, (-lr * gw[r, c] / div(t_in[ids]))[:, None] * gin)
    return emb_in.astype(np.float32), emb_out.astype(np.float32), loss.astype(np.float32)


def make_run(cfg, tables, schedule, *, interpret: bool = False, emulate: bool = False, data_shards: int = 1,
             block: Optional[int] = None):
    """The ``pallas`` engine's call: ``(params, opt_state, step, key, batch) -> (params, opt_state,
    step, metrics)``, :func:`ns_update` / :func:`hs_update` scanned over the micro-steps, the
    learning rate of each from ``schedule`` (word2vec.c's decay).  ``batch``: skip-gram
    :class:`~w2vjax.batches.Pairs` or CBOW ``Windows`` (the host stream's, with noise words), or
    ``TokenRows``, whose examples are made for the whole call first
    (:func:`w2vjax.engines.xla.device_examples`); the micro-batch is padded with masked examples
    to a multiple of ``block`` (default :data:`DEFAULT_BLOCK` pairs, :data:`CBOW_BLOCK` windows)."""
    from ..batches import TokenRows
    from . import xla
    m = cfg.model
    cbow = m.model == "cbow"
    block = block or (CBOW_BLOCK if cbow else DEFAULT_BLOCK)

    def pad(x):
        extra = (-x.shape[1]) % block
        return jnp.pad(x, [(0, 0), (0, extra)] + [(0, 0)] * (x.ndim - 2)) if extra and x.ndim >= 2 else x

    def micro(carry, xs):
        emb_in, emb_out, counts = carry
        mb, lr = xs
        kw = dict(counts=counts, block=block, interpret=interpret, emulate=emulate, return_counts=True,
                  ctx_mask=mb.inp_mask if cbow else None, cbow_mean=m.cbow_mean, exact_grad=m.cbow_exact_grad)
        if m.loss == "ns":
            emb_in, emb_out, loss, counts = ns_update(emb_in, emb_out, mb.inp, mb.out, mb.neg, mb.mask, lr,
                                                      cfg.row_cap, **kw)
        else:
            emb_in, emb_out, loss, counts = hs_update(emb_in, emb_out, mb.inp, mb.out, mb.mask, lr, cfg.row_cap,
                                                      tables.points, tables.codes, tables.path_mask, **kw)
        return (emb_in, emb_out, counts), xla.loss_sums(loss * mb.mask)

    def run(params, opt_state, step, key, batch):
        if isinstance(batch, TokenRows):
            batch = xla.device_examples(cfg, tables, key, batch)
        lrs = jax.vmap(lambda w: schedule(xla.global_words(w, data_shards)))(batch.words)
        batch = jax.tree.map(pad, batch._replace(words=None))
        counts = count_buffers(params["emb_in"].shape[0], params["emb_out"].shape[0]) if cfg.row_cap > 0 else None
        (emb_in, emb_out, _), loss_sums = jax.lax.scan(micro, (params["emb_in"], params["emb_out"], counts), (batch, lrs))
        lr = lrs[-1]  # the examples and the last rate depend on the batch only: counted once, not per micro-step
        opt_state = xla.after_updates(opt_state, batch.mask.shape[0], lr)
        metrics = {"loss_sum": loss_sums.sum(), "examples": batch.mask.sum(), "lr": lr}
        return {"emb_in": emb_in, "emb_out": emb_out}, opt_state, step + batch.mask.shape[0], metrics

    return run
