"""``train_and_evaluate(config, workdir)``: the one training loop and its I/O.

Data flows one way: corpus -> :mod:`prepare` (vocab + ids) -> :mod:`stream`
(batches, in a prefetch thread) -> :mod:`step` (jitted updates) -> export and
evaluation.  Values come back to the host only at logging steps.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import sys
import time
from importlib import resources
from typing import Any, Optional

import jax
import numpy as np

from . import export, step as step_lib
from .checkpoint import Checkpoints
from .config import Config, ConfigError
from .prepare import Corpus, prepare
from .stream import Position, Prefetcher, Streamer, StreamSpec


class TrainingError(RuntimeError):
    pass


class Interrupted(RuntimeError):
    """Training stopped on a signal after saving a checkpoint; rerun the same command to resume."""


@contextlib.contextmanager
def _stop_on_signals(flag: dict):
    """SIGINT/SIGTERM set ``flag['signal']`` so the loop saves a checkpoint and stops cleanly."""
    def handler(signum, frame):
        flag["signal"] = signum
    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: no handlers
        previous = {}
    try:
        yield
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)


def default_corpus() -> str:
    """Path of the embedded default corpus (first 2.1 M words of text8, see w2vjax/data/README.md)."""
    return str(resources.files("w2vjax") / "data" / "text8_head.txt.gz")


def _atomic_write(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


class Progress:
    """A one-line progress bar on stderr (a plain line every ~10 % when not a terminal)."""

    def __init__(self, total: int, stream=sys.stderr, enabled: bool = True):
        self.total, self.stream, self.enabled = max(total, 1), stream, enabled
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self._next_pct = 10

    def update(self, done: int, raw_wps: float, lr: float, loss: float, final: bool = False):
        if not self.enabled:
            return
        frac = min(done / self.total, 1.0)
        width = 30
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        line = (f"[{bar}] {100 * frac:5.1f}%  {raw_wps / 1e3:8.1f}k words/s  "
                f"lr {lr:.6f}  loss {loss:.4f}")
        if self.tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
            self.stream.flush()
        elif final or 100 * frac >= self._next_pct:
            self.stream.write(line + "\n")
            self.stream.flush()
            while self._next_pct <= 100 * frac:
                self._next_pct += 10


def check_workdir(cfg: Config, workdir: str, force: bool = False) -> None:
    """Refuse a work dir whose checkpoints belong to a run with other settings (unless ``force``,
    which deletes those checkpoints and starts over)."""
    path = os.path.join(workdir, "config.json")
    ckpts = os.path.join(workdir, "checkpoints")
    if not (os.path.exists(path) and os.path.isdir(ckpts) and os.listdir(ckpts)):
        return
    try:
        with open(path) as f:
            old = Config.from_dict(json.load(f)).identity()
    except (ValueError, ConfigError) as e:
        old = {"unreadable": str(e)}
    if old == cfg.identity():
        return
    if force:
        shutil.rmtree(ckpts)
        return
    diffs = [f"{sec}.{k}: {old.get(sec, {}).get(k)!r} -> {v!r}" for sec, fields in cfg.identity().items()
             for k, v in fields.items() if old.get(sec, {}).get(k) != v]
    raise ConfigError(f"work dir {workdir!r} holds a run with other settings ({'; '.join(diffs[:3])}); "
                      "use another --workdir, or --force to discard its checkpoints and start over")


def train_and_evaluate(config: Config, workdir: str, corpus: Optional[str] = None, *,
                       evaluate: bool = True, progress: bool = True, force: bool = False,
                       log=print, stop_after_calls: Optional[int] = None) -> dict[str, Any]:
    """Train ``config`` on ``corpus`` (default: the embedded sample) into ``workdir``.

    Writes ``config.json``, ``vocab.txt``, ``metrics.jsonl``, ``checkpoints/``,
    ``vectors.txt``, ``vectors.bin`` and ``summary.json``; returns the summary.  A work dir
    with checkpoints of the same settings is resumed from the latest one.
    """
    t_start = time.time()
    cfg = config.validate()
    corpus = corpus or default_corpus()
    check_workdir(cfg, workdir, force)
    data = prepare(corpus, workdir, cfg.data.min_count, cfg.data.max_vocab, cfg.data.max_sentence_length)
    _atomic_write(os.path.join(workdir, "config.json"), cfg.to_json() + "\n")
    log(f"corpus {corpus}: {data.num_words:,} training words, vocabulary {len(data.vocab):,} "
        f"(min-count {cfg.data.min_count})")
    log(f"model {cfg.model.model}/{cfg.model.loss} dim {cfg.model.dim} window {cfg.data.window} "
        f"negative {cfg.model.negative} sample {cfg.data.sample} epochs {cfg.train.epochs} "
        f"lr {cfg.lr} batch {cfg.batch_size}{' windows' if cfg.windows else ''}x{cfg.train.steps_per_call} "
        f"on {jax.devices()[0].platform}")
    summary = run_training(cfg, data, workdir, progress=progress, log=log, stop_after_calls=stop_after_calls)
    vectors = export.Vectors(list(data.vocab.words), summary.pop("_vectors"))
    export.save_word2vec_text(os.path.join(workdir, "vectors.txt"), vectors.words, vectors.vectors)
    export.save_word2vec_binary(os.path.join(workdir, "vectors.bin"), vectors.words, vectors.vectors)
    if evaluate:
        from . import evaluate as ev
        summary["eval"] = ev.evaluate_all(vectors)
    summary["total_seconds"] = time.time() - t_start
    _atomic_write(os.path.join(workdir, "summary.json"), json.dumps(summary, indent=2) + "\n")
    return summary


def run_training(cfg: Config, data: Corpus, workdir: str, *, progress: bool = True, log=print,
                 stop_after_calls: Optional[int] = None) -> dict[str, Any]:
    """The loop: stream -> jitted step -> metrics and checkpoints.  Returns the summary (+ ``_vectors``).

    Resumes from the latest checkpoint in ``workdir``.  ``stop_after_calls`` stops (with a
    checkpoint, as a signal would) after that many calls: a hook for tests.
    """
    vocab = data.vocab
    keep = vocab.keep_prob(cfg.data.sample)
    spec = StreamSpec(cfg.model.model, cfg.data.window, cfg.batch_size, cfg.train.steps_per_call,
                      cfg.train.epochs, cfg.train.seed, windows=cfg.windows)
    streamer = Streamer(data, keep, spec)
    total = streamer.total_words
    keep_rate = float((vocab.counts * keep).sum() / vocab.total)  # expected share kept by subsampling
    tables = step_lib.make_tables(vocab, cfg)
    state = step_lib.init_state(cfg, len(vocab))
    train_step = step_lib.make_train_step(cfg, tables, total)
    ckpt = Checkpoints(workdir, cfg.train.keep)
    position, words_done = Position(), 0
    restored = ckpt.restore(state, log=log)
    if restored is not None:
        state, position, words_done, _ = restored
        log(f"resuming from checkpoint at step {int(state.step):,} ({words_done:,} of {total:,} words done)")
    start_words = words_done

    metrics_path = os.path.join(workdir, "metrics.jsonl")
    bar = Progress(total, enabled=progress)
    pending: list[dict] = []
    last_log_t = last_save_t = t0 = time.time()
    last_words = words_done
    final_loss = float("nan")
    loss_total, examples_total = 0.0, 0.0
    identity = cfg.identity()
    stop: dict = {}
    saved_epoch, calls = position.epoch, 0
    start_step = last_save_step = int(state.step)
    eval_interval = int(cfg.train.eval_every * vocab.total)
    next_eval = (words_done // eval_interval + 1) * eval_interval if eval_interval else None
    eval_seconds = 0.0
    prefetch = Prefetcher(streamer(position), cfg.train.prefetch, transform=jax.device_put)
    with open(metrics_path, "a" if restored else "w") as mf, _stop_on_signals(stop):
        def flush(now: float, final: bool = False):
            nonlocal pending, last_log_t, last_words, final_loss, loss_total, examples_total
            got = jax.device_get(pending)
            pending = []
            loss_sum = float(sum(m["loss_sum"] for m in got))
            ex = float(sum(m["examples"] for m in got))
            lr = float(got[-1]["lr"])
            loss = loss_sum / max(ex, 1.0)
            step_no = int(jax.device_get(state.step))
            if not math.isfinite(loss):
                raise TrainingError(f"loss became {loss} at step {step_no} (words {words_done:,}); "
                                    "lower --lr or check the corpus")
            final_loss = loss
            loss_total += loss_sum
            examples_total += ex
            dt = max(now - last_log_t, 1e-9)
            raw_wps = (words_done - last_words) / dt
            rec = {"step": step_no, "words": words_done, "raw_words_per_s": raw_wps,
                   "effective_words_per_s": raw_wps * keep_rate, "lr": lr, "loss": loss,
                   "examples": ex, "elapsed_s": now - t0}
            mf.write(json.dumps(rec) + "\n")
            mf.flush()
            bar.update(words_done, raw_wps, lr, loss, final=final)
            last_log_t, last_words = now, words_done

        def periodic_eval():
            """Evaluate the current input vectors into metrics.jsonl; its time is not training time."""
            nonlocal last_log_t, eval_seconds
            from . import evaluate as ev
            t = time.time()
            vecs = export.Vectors(list(vocab.words), np.asarray(jax.device_get(state.params["emb_in"])))
            res = {k: v for k, v in ev.evaluate_all(vecs).items() if not isinstance(v, dict)}
            dt = time.time() - t
            rec = {"step": int(jax.device_get(state.step)), "words": words_done,
                   "epochs_done": words_done / vocab.total, "eval": res, "eval_seconds": dt}
            mf.write(json.dumps(rec) + "\n")
            mf.flush()
            last_log_t += dt
            eval_seconds += dt

        try:
            for batch, position, words_done in prefetch:
                state, m = train_step(state, batch)
                pending.append(m)
                calls += 1
                now = time.time()
                if now - last_log_t >= cfg.train.log_every_s:
                    flush(now)
                if next_eval is not None and words_done >= next_eval and words_done < total:
                    if pending:
                        flush(now)
                    periodic_eval()
                    next_eval = (words_done // eval_interval + 1) * eval_interval
                    now = time.time()
                steps = start_step + calls * cfg.train.steps_per_call
                if stop_after_calls is not None and calls >= stop_after_calls:
                    stop["signal"] = "stop_after_calls"
                due = (position.epoch > saved_epoch
                       or (cfg.train.checkpoint_every and steps - last_save_step >= cfg.train.checkpoint_every)
                       or (cfg.train.checkpoint_minutes and now - last_save_t >= 60 * cfg.train.checkpoint_minutes))
                if due or stop:
                    if pending:
                        flush(now)  # also checks the loss for NaN before anything is saved
                    last_save_step = ckpt.save(state, position, words_done, identity)
                    saved_epoch, last_save_t = position.epoch, now
                if stop:
                    ckpt.wait()
                    raise Interrupted(f"stopped at step {last_save_step:,} ({words_done:,} of {total:,} words) "
                                      f"with a checkpoint in {ckpt.directory}; run the same command to resume")
            jax.block_until_ready(state.params)
            if pending:
                flush(time.time(), final=True)
            ckpt.save(state, position, words_done, identity)
        finally:
            prefetch.close()
            ckpt.close(raise_errors=sys.exc_info()[0] is None)
    seconds = time.time() - t0 - eval_seconds
    if calls == 0 and restored is not None:  # the run was already complete: report its last loss
        with open(metrics_path) as f:
            lines = [json.loads(l) for l in f if l.strip()]
        final_loss = lines[-1]["loss"] if lines else final_loss
    vectors = np.asarray(jax.device_get(state.params["emb_in"]))
    if not np.all(np.isfinite(vectors)):
        raise TrainingError("the trained vectors hold NaN or inf; lower --lr")
    trained = total - start_words  # words trained by this process (less than total after a resume)
    return {"train_seconds": seconds, "eval_seconds_during_training": eval_seconds, "raw_words": total, "raw_words_this_run": trained,
            "raw_words_per_s": trained / seconds, "effective_words_per_s": trained * keep_rate / seconds,
            "subsample_keep_rate": keep_rate,
            "vocab_size": len(vocab), "train_words_per_epoch": vocab.total, "epochs": cfg.train.epochs,
            "examples": examples_total, "final_loss": final_loss,
            "mean_loss": loss_total / max(examples_total, 1.0), "steps": int(jax.device_get(state.step)),
            "model": cfg.model.model, "loss": cfg.model.loss, "platform": jax.devices()[0].platform,
            "_vectors": vectors}
