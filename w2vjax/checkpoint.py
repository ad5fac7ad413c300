"""Orbax checkpoints of the whole run: train state, stream position, words done.

One checkpoint is ``checkpoints/<step>/`` with two items: ``state`` (step, both tables,
optimizer state, PRNG key data) and ``meta`` (stream position, raw words done, the config,
the work dir's identity: corpus and vocabulary hashes and the settings, and a CRC-32 of every
array of ``state``).  Restoring checks the identity against the run's (a mismatch is an
error, never a silent resume), the arrays' shapes and dtypes against the run's, and the
checksums (a damaged checkpoint is skipped like an unreadable one).
Orbax writes each checkpoint under a temporary name and renames it when complete, so a
process killed mid-save leaves the previous checkpoint as the latest one.  Saves are
asynchronous; the arrays handed to Orbax are host copies, because the device tables are
donated to the next train step while the save may still be writing.
"""

from __future__ import annotations

import logging
import os
import sys
import zlib
from typing import Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

from .config import ConfigError, fill_added
from .step import TrainState, state_tree
from .stream import Position, is_position_list

logger = logging.getLogger(__name__)


def _saveable(state: TrainState) -> dict:
    return jax.tree.map(lambda x: np.array(x, copy=True), jax.device_get(state_tree(state)))


def _check_position(pos) -> None:
    """A saved position: ``[epoch, block, offset]`` or a list of them."""
    for p in (pos if is_position_list(pos) else [pos]):
        Position(*(int(x) for x in p))


class CheckpointError(RuntimeError):
    """A checkpoint could not be written, or none in the work dir can be read."""


class IdentityError(ConfigError):
    """The checkpoints belong to another corpus, vocabulary or settings (or shapes) than this run's."""


def checksums(tree) -> list[int]:
    """CRC-32 of every array of a host tree, in leaf order."""
    return [zlib.crc32(np.ascontiguousarray(x).view(np.uint8).reshape(-1)) for x in jax.tree.leaves(tree)]


def identity_diffs(saved, expected: dict, prefix: str = "") -> list[str]:
    """``what: saved -> expected`` for every entry that differs (nested dicts flattened); saved
    settings lacking a field added since count it at the value it had then (``fill_added``)."""
    saved = saved if isinstance(saved, dict) else {}
    if isinstance(saved.get("settings"), dict):
        saved = dict(saved, settings=fill_added(saved["settings"]))
    out = []
    for k, v in expected.items():
        if isinstance(v, dict):
            out += identity_diffs(saved.get(k), v, f"{prefix}{k}.")
        elif saved.get(k) != v:
            old = saved.get(k, "(not recorded)")
            short = lambda x: x[:12] if isinstance(x, str) and len(x) == 64 else x  # noqa: E731
            out.append(f"{prefix}{k}: {short(old)!r} -> {short(v)!r}")
    return out


def _shape_diffs(tree, abstract) -> list[str]:
    got = [(tuple(np.shape(x)), str(np.asarray(x).dtype)) for x in jax.tree.leaves(tree)]
    want = [(tuple(x.shape), str(x.dtype)) for x in jax.tree.leaves(abstract)]
    if len(got) != len(want):
        return [f"{len(got)} arrays -> {len(want)}"]
    return [f"array {g[0]} {g[1]} -> {w[0]} {w[1]}" for g, w in zip(got, want) if g != w]


def _reason(e: BaseException) -> str:
    text = str(e)
    if "No space left on device" in text or getattr(e, "errno", None) == 28:
        return "the disk is full (No space left on device)"
    return (text.strip().splitlines() or [type(e).__name__])[0][:300]


def _quiet_closed_loop_callbacks() -> None:
    """Silence one harmless message of a failed save: tensorstore completes the failed save's
    pending writes on its own threads and calls back into Orbax's asyncio loop, which is
    already closed; that ``RuntimeError('Event loop is closed')`` reaches ``sys.unraisablehook``
    (with no object), whose default prints a bare traceback on stderr, before or after our
    one-line error (in about half of our full-disk runs).  Only exactly that error, raised
    inside asyncio, is dropped; anything else goes to the previous hook."""
    previous = sys.unraisablehook
    if getattr(previous, "_w2vjax_quiet", False):
        return

    def hook(u):
        tb = u.exc_traceback
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if (u.object is None and isinstance(u.exc_value, RuntimeError)
                and str(u.exc_value) == "Event loop is closed" and tb is not None
                and os.path.basename(os.path.dirname(tb.tb_frame.f_code.co_filename)) == "asyncio"):
            return
        previous(u)

    hook._w2vjax_quiet = True
    sys.unraisablehook = hook


class Checkpoints:
    def __init__(self, workdir: str, keep: int = 3):
        self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        _quiet_closed_loop_callbacks()
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, cleanup_tmp_directories=True,
                                                 enable_async_checkpointing=True))

    def latest_step(self) -> Optional[int]:
        return self.manager.latest_step()

    def save(self, state: TrainState, position, words_done: int, config: dict,
             identity: Optional[dict] = None) -> int:
        """Save asynchronously; ``position`` is a :class:`Position` or, for several data shards, a
        list of them (one per shard); ``identity`` what :meth:`restore` will check."""
        tree = _saveable(state)
        step = int(tree["step"])
        if step in self.manager.all_steps():
            return step
        pos = [list(p) for p in position] if is_position_list(position) else list(position)
        meta = {"position": pos, "words_done": int(words_done), "config": config,
                "identity": identity or {}, "checksums": checksums(tree)}
        try:  # orbax first waits for the previous asynchronous save: its errors surface here too
            self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(tree),
                                                            meta=ocp.args.JsonSave(meta)), force=True)
        except Exception as e:
            raise self._save_error(e) from None
        return step

    def _save_error(self, e: BaseException) -> CheckpointError:
        try:
            self.manager.reload()
            latest = self.manager.latest_step()
        except Exception:
            latest = None
        kept = f"the latest complete checkpoint is step {latest}" if latest is not None else "no checkpoint is complete"
        return CheckpointError(f"saving a checkpoint in {self.directory} failed: {_reason(e)}; {kept}; "
                               "fix that and run the same command to resume")

    def restore(self, template, identity: Optional[dict] = None
                ) -> Optional[tuple[TrainState, Position, int, dict]]:
        """The latest readable checkpoint as ``(state, position, words_done, config)``, or None.

        ``template``: a :class:`TrainState` of the right shapes, or the abstract tree of
        :func:`w2vjax.step.abstract_state_tree`.  The state's arrays are host (NumPy) arrays,
        except the PRNG key; the caller puts them where they belong.

        A checkpoint that cannot be read (corrupted or truncated files) is reported and skipped
        for the one before it; resuming from an older checkpoint is just as exact.  ``identity``
        (given): the latest readable checkpoint must carry the same one, and arrays of the
        template's shapes and dtypes, or :class:`IdentityError` names what differs.
        """
        steps = sorted(self.manager.all_steps(), reverse=True)
        if not steps:
            return None
        if isinstance(template, TrainState):
            template = jax.eval_shape(lambda: state_tree(template))
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), template)
        for step in steps:
            try:
                got = self.manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
                tree, meta = got.state, got.meta
                _check_position(meta["position"]), int(meta["words_done"])
                if meta.get("checksums") is not None and meta["checksums"] != checksums(
                        jax.tree.map(np.asarray, tree)):
                    raise ValueError("its arrays do not match their saved checksums")
                break
            except Exception as e:  # orbax/tensorstore raise many types for damaged files
                first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
                logger.warning(f"warning: checkpoint {step} in {self.directory} is unreadable ({first}); trying an older one")
        else:
            raise CheckpointError(f"no checkpoint in {self.directory} can be read (all {len(steps)} are damaged); "
                                  "delete that folder to start over")
        if identity is not None:
            self._check_identity(step, meta, identity, tree, abstract)
        host = jax.tree.map(np.asarray, tree)
        state = TrainState(host["step"], host["params"], host["opt_state"],
                           jax.random.wrap_key_data(jax.numpy.asarray(host["key"])))
        pos = meta["position"]
        pos = [tuple(p) for p in pos] if is_position_list(pos) else Position(*pos)
        return state, pos, int(meta["words_done"]), meta["config"]

    def _check_identity(self, step: int, meta: dict, identity: dict, tree, abstract) -> None:
        diffs = identity_diffs(meta.get("identity"), identity) or _shape_diffs(tree, abstract)
        if diffs:
            raise IdentityError(f"checkpoint {step} in {self.directory} holds another run than this one "
                                f"({'; '.join(diffs[:3])}); use another --workdir, or --force to discard "
                                "its checkpoints and start over")

    def saved_identity(self) -> Optional[dict]:
        """The identity recorded in the latest checkpoint whose meta can be read ({} when it has
        none; None when there is no readable one)."""
        for step in sorted(self.manager.all_steps(), reverse=True):
            try:
                meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
                return meta.get("identity") or {}
            except Exception:
                continue
        return None

    def wait(self) -> None:
        try:
            self.manager.wait_until_finished()
        except Exception as e:
            raise self._save_error(e) from None

    def close(self, raise_errors: bool = True) -> None:
        """Wait for the last save and close; ``raise_errors=False`` when already failing."""
        try:
            self.wait()
        except CheckpointError:
            if raise_errors:
                raise
        finally:
            try:
                self.manager.close()
            except Exception:
                pass
