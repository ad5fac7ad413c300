"""``train_and_evaluate(config, workdir)``: the one training loop and its I/O.

Data flows one way: corpus -> :mod:`prepare` (vocab + ids) -> :mod:`stream`
(batches, in a prefetch thread) -> :mod:`step` (jitted updates) -> export and
evaluation.  Values come back to the host only at logging steps.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from importlib import resources
from typing import Any, Optional

import jax
import numpy as np

from . import export, step as step_lib
from .config import Config
from .prepare import Corpus, prepare
from .stream import Position, Prefetcher, Streamer, StreamSpec


class TrainingError(RuntimeError):
    pass


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


def train_and_evaluate(config: Config, workdir: str, corpus: Optional[str] = None, *,
                       evaluate: bool = True, progress: bool = True,
                       log=print) -> dict[str, Any]:
    """Train ``config`` on ``corpus`` (default: the embedded sample) into ``workdir``.

    Writes ``config.json``, ``vocab.txt``, ``metrics.jsonl``, ``vectors.txt``,
    ``vectors.bin`` and ``summary.json``; returns the summary.
    """
    t_start = time.time()
    cfg = config.validate()
    corpus = corpus or default_corpus()
    data = prepare(corpus, workdir, cfg.data.min_count, cfg.data.max_vocab, cfg.data.max_sentence_length)
    _atomic_write(os.path.join(workdir, "config.json"), cfg.to_json() + "\n")
    log(f"corpus {corpus}: {data.num_words:,} training words, vocabulary {len(data.vocab):,} "
        f"(min-count {cfg.data.min_count})")
    log(f"model {cfg.model.model}/{cfg.model.loss} dim {cfg.model.dim} window {cfg.data.window} "
        f"negative {cfg.model.negative} sample {cfg.data.sample} epochs {cfg.train.epochs} "
        f"lr {cfg.lr} batch {cfg.batch_size}{' windows' if cfg.windows else ''}x{cfg.train.steps_per_call} "
        f"on {jax.devices()[0].platform}")
    summary = run_training(cfg, data, workdir, progress=progress)
    vectors = export.Vectors(list(data.vocab.words), summary.pop("_vectors"))
    export.save_word2vec_text(os.path.join(workdir, "vectors.txt"), vectors.words, vectors.vectors)
    export.save_word2vec_binary(os.path.join(workdir, "vectors.bin"), vectors.words, vectors.vectors)
    if evaluate:
        from . import evaluate as ev
        summary["eval"] = ev.evaluate_all(vectors)
    summary["total_seconds"] = time.time() - t_start
    _atomic_write(os.path.join(workdir, "summary.json"), json.dumps(summary, indent=2) + "\n")
    return summary


def run_training(cfg: Config, data: Corpus, workdir: str, *, progress: bool = True) -> dict[str, Any]:
    """The loop: stream -> jitted step -> metrics.  Returns the summary (+ ``_vectors``)."""
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

    metrics_path = os.path.join(workdir, "metrics.jsonl")
    bar = Progress(total, enabled=progress)
    pending: list[dict] = []
    last_log_t = t0 = time.time()
    last_words = 0
    words_done = 0
    final_loss = float("nan")
    loss_total, examples_total = 0.0, 0.0
    prefetch = Prefetcher(streamer(Position()), cfg.train.prefetch, transform=jax.device_put)
    with open(metrics_path, "w") as mf:
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

        try:
            for batch, position, words_done in prefetch:
                state, m = train_step(state, batch)
                pending.append(m)
                now = time.time()
                if now - last_log_t >= cfg.train.log_every_s:
                    flush(now)
            jax.block_until_ready(state.params)
            if pending:
                flush(time.time(), final=True)
        finally:
            prefetch.close()
    seconds = time.time() - t0
    vectors = np.asarray(jax.device_get(state.params["emb_in"]))
    if not np.all(np.isfinite(vectors)):
        raise TrainingError("the trained vectors hold NaN or inf; lower --lr")
    return {"train_seconds": seconds, "raw_words": total, "raw_words_per_s": total / seconds,
            "effective_words_per_s": total * keep_rate / seconds, "subsample_keep_rate": keep_rate,
            "vocab_size": len(vocab), "train_words_per_epoch": vocab.total, "epochs": cfg.train.epochs,
            "examples": examples_total, "final_loss": final_loss,
            "mean_loss": loss_total / max(examples_total, 1.0), "steps": int(jax.device_get(state.step)),
            "model": cfg.model.model, "loss": cfg.model.loss, "platform": jax.devices()[0].platform,
            "_vectors": vectors}
