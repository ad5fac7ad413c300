"""Orbax checkpoints of the whole run: train state, stream position, words done.

One checkpoint is ``checkpoints/<step>/`` with two items: ``state`` (step, both tables,
optimizer state, PRNG key data) and ``meta`` (stream position, raw words done, the config).
Orbax writes each checkpoint under a temporary name and renames it when complete, so a
process killed mid-save leaves the previous checkpoint as the latest one.  Saves are
asynchronous; the arrays handed to Orbax are host copies, because the device tables are
donated to the next train step while the save may still be writing.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

from .step import TrainState, state_tree
from .stream import Position, is_position_list


def _saveable(state: TrainState) -> dict:
    return jax.tree.map(lambda x: np.array(x, copy=True), jax.device_get(state_tree(state)))


def _check_position(pos) -> None:
    """A saved position: ``[epoch, block, offset]`` or a list of them."""
    for p in (pos if is_position_list(pos) else [pos]):
        Position(*(int(x) for x in p))


class CheckpointError(RuntimeError):
    """A checkpoint could not be written, or none in the work dir can be read."""


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

    def save(self, state: TrainState, position, words_done: int, config: dict) -> int:
        """Save asynchronously; ``position`` is a :class:`Position` or, for several data shards, a
        list of them (one per shard)."""
        tree = _saveable(state)
        step = int(tree["step"])
        if step in self.manager.all_steps():
            return step
        pos = [list(p) for p in position] if is_position_list(position) else list(position)
        meta = {"position": pos, "words_done": int(words_done), "config": config}
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

    def restore(self, template, log=print) -> Optional[tuple[TrainState, Position, int, dict]]:
        """The latest readable checkpoint as ``(state, position, words_done, config)``, or None.

        ``template``: a :class:`TrainState` of the right shapes, or the abstract tree of
        :func:`w2vjax.step.abstract_state_tree`.  The state's arrays are host (NumPy) arrays,
        except the PRNG key; the caller puts them where they belong.

        A checkpoint that cannot be read (corrupted or truncated files) is reported and skipped
        for the one before it; resuming from an older checkpoint is just as exact.
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
                break
            except Exception as e:  # orbax/tensorstore raise many types for damaged files
                first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
                log(f"warning: checkpoint {step} in {self.directory} is unreadable ({first}); trying an older one")
        else:
            raise CheckpointError(f"no checkpoint in {self.directory} can be read (all {len(steps)} are damaged); "
                                  "delete that folder to start over")
        host = jax.tree.map(np.asarray, tree)
        state = TrainState(host["step"], host["params"], host["opt_state"],
                           jax.random.wrap_key_data(jax.numpy.asarray(host["key"])))
        pos = meta["position"]
        pos = [tuple(p) for p in pos] if is_position_list(pos) else Position(*pos)
        return state, pos, int(meta["words_done"]), meta["config"]

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
