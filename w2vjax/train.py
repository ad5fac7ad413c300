"""``train_and_evaluate(config, workdir)``: the one training loop and its I/O.

Data flows one way: corpus -> :mod:`prepare` (vocab + ids) -> :mod:`stream`
(batches, in a prefetch thread) -> :mod:`step` (jitted updates) -> export and
evaluation.  Values come back to the host only at logging steps.
"""

from __future__ import annotations

import contextlib
import functools
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
import jax.numpy as jnp
import numpy as np

from . import export, sharding, step as step_lib, windows
from .checkpoint import Checkpoints
from .config import Config, ConfigError
from .prepare import Corpus, prepare
from .stream import Position, Prefetcher, ShardedStream, Streamer, StreamSpec, is_position_list


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


def enable_compilation_cache() -> Optional[str]:
    """JAX's persistent compilation cache, so a rerun (a resume, the next variant of a study)
    does not compile the step again: ``$W2VJAX_COMPILATION_CACHE``, default
    ``~/.cache/w2vjax/xla``; set it to ``0`` to turn it off.  Returns the folder used."""
    path = os.environ.get("W2VJAX_COMPILATION_CACHE", os.path.join("~", ".cache", "w2vjax", "xla"))
    if path in ("", "0") or jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir or None
    path = os.path.expanduser(path)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:  # read-only home, etc.: run without the cache
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    return path


def default_corpus() -> str:
    """Path of the embedded default corpus (first 2.1 M words of text8, see w2vjax/data/README.md)."""
    return str(resources.files("w2vjax") / "data" / "text8_head.txt.gz")


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
    cfg = config.validate().for_platform(jax.devices()[0].platform)
    if cfg.train.cpu_kernel:  # asked for: refused before anything is written if it cannot build
        from . import kernel
        ok, why = kernel.available()
        if not ok:
            raise ConfigError(f"--cpu-kernel: {why}")
    enable_compilation_cache()
    corpus = corpus or default_corpus()
    primary = sharding.is_primary()
    if not primary:  # only process 0 logs and writes the work dir's files
        log = lambda *a, **k: None  # noqa: E731
    check_workdir(cfg, workdir, force and primary)
    sharding.sync("w2vjax:checked")
    args = (corpus, workdir, cfg.data.min_count, cfg.data.max_vocab, cfg.data.max_sentence_length)
    data = prepare(*args) if primary else None
    sharding.sync("w2vjax:prepared")  # then the others reuse it (shared work dir) or make their own copy
    data = data or prepare(*args)
    if primary:
        export.atomic_write(os.path.join(workdir, "config.json"), [cfg.to_json() + "\n"])
    log(f"corpus {corpus}: {data.num_words:,} training words, vocabulary {len(data.vocab):,} "
        f"(min-count {cfg.data.min_count})")
    log(f"model {cfg.model.model}/{cfg.model.loss} dim {cfg.model.dim} window {cfg.data.window} "
        f"negative {cfg.model.negative} sample {cfg.data.sample} epochs {cfg.train.epochs} "
        f"lr {cfg.lr} batch {cfg.batch_size}{' windows' if cfg.windows else ''}x{cfg.train.steps_per_call} "
        f"on {jax.devices()[0].platform} x{cfg.train.devices or jax.local_device_count()}"
        f"{f' x {jax.process_count()} processes' if jax.process_count() > 1 else ''}"
        f"{' (tables sharded by rows)' if cfg.train.shard_tables else ''}")
    summary = run_training(cfg, data, workdir, progress=progress, log=log, stop_after_calls=stop_after_calls)
    vectors = export.Vectors(list(data.vocab.words), summary.pop("_vectors"))
    if not primary:
        return summary
    export.save_word2vec_text(os.path.join(workdir, "vectors.txt"), vectors.words, vectors.vectors)
    export.save_word2vec_binary(os.path.join(workdir, "vectors.bin"), vectors.words, vectors.vectors)
    if evaluate:
        from . import evaluate as ev
        summary["eval"] = ev.evaluate_all(vectors)
    summary["total_seconds"] = time.time() - t_start
    export.atomic_write(os.path.join(workdir, "summary.json"), [json.dumps(summary, indent=2) + "\n"])
    return summary


def _data_shards(cfg: Config) -> int:
    nproc = jax.process_count()
    shards = cfg.train.data_shards or nproc
    if shards % nproc:
        raise ConfigError(f"--data-shards {shards} is not a multiple of the {nproc} processes")
    return shards


def make_layout(cfg: Config, rows: dict[str, int], device_windows: bool = False) -> sharding.Layout:
    """The device mesh (``--devices`` per process, default all) and how the state lies on it.

    With ``device_windows`` there is one data stream, whatever the process count: every
    process reads the same rows of tokens and gives its devices theirs (rows are rounded to
    the device count, so the batch size need not divide)."""
    mesh = sharding.make_mesh(cfg.train.devices)
    if device_windows:
        return sharding.Layout(mesh, cfg.train.shard_tables, rows, 1)
    shards = _data_shards(cfg)
    if cfg.batch_size % (mesh.size * shards // math.gcd(mesh.size, shards)):
        raise ConfigError(f"--batch-size {cfg.batch_size} must be a multiple of the {mesh.size} devices "
                          f"and of the {shards} data shards")
    return sharding.Layout(mesh, cfg.train.shard_tables, rows, shards)


def run_training(cfg: Config, data: Corpus, workdir: str, *, progress: bool = True, log=print,
                 stop_after_calls: Optional[int] = None) -> dict[str, Any]:
    """The loop: stream -> jitted step -> metrics and checkpoints.  Returns the summary (+ ``_vectors``).

    Resumes from the latest checkpoint in ``workdir``.  ``stop_after_calls`` stops (with a
    checkpoint, as a signal would) after that many calls: a hook for tests.

    Several processes (``jax.distributed``) run this loop in lockstep: each streams its own
    data shards (with device windows: all read the one stream of token rows), and once per
    call they exchange a few host integers (idle, words done, signals, whether a log or save
    is due), so every process takes the same decisions.
    Only process 0 writes ``metrics.jsonl`` and the progress bar.
    """
    vocab = data.vocab
    primary = sharding.is_primary()
    keep = vocab.keep_prob(cfg.data.sample)
    keep_rate = vocab.keep_rate(cfg.data.sample)
    platform = jax.devices()[0].platform
    device_windows = cfg.train.device_windows
    if device_windows is None:
        device_windows = platform != "cpu" and cfg.train.data_shards <= 1
    host_prep = cfg.train.host_prep if cfg.train.host_prep is not None else platform == "cpu"
    host_prep = host_prep and not device_windows
    ns = host_prep and cfg.model.loss == "ns"  # the stream draws the noise words
    spec = StreamSpec(cfg.model.model, cfg.data.window, cfg.batch_size, cfg.train.steps_per_call,
                      cfg.train.epochs, cfg.train.seed, windows=cfg.windows, negative=cfg.model.negative if ns else 0)
    tables = step_lib.make_tables(vocab, cfg)
    noise = (np.asarray(tables.noise_accept), np.asarray(tables.noise_alias)) if ns else None
    out_rows = len(vocab) - 1 if cfg.model.loss == "hs" else len(vocab)
    layout = make_layout(cfg, {"emb_in": len(vocab), "emb_out": out_rows}, device_windows)
    nproc, shards = jax.process_count(), layout.data_shards
    token_spec = None
    if device_windows:  # rows of raw tokens; the step makes about batch_size examples from each micro-step's
        token_spec = windows.token_spec(cfg, keep_rate, layout.size)
        streamer, position = windows.TokenStream(data, token_spec), Position()
    elif shards == 1:
        streamer, position = Streamer(data, keep, spec, noise=noise), Position()
    else:
        k = shards // nproc
        local = tuple(range(jax.process_index() * k, (jax.process_index() + 1) * k))
        streamer = ShardedStream(data, keep, spec, shards, local, pad_forever=nproc > 1, noise=noise)
        position = streamer.start()
    total = streamer.total_words
    words_per_epoch = total // cfg.train.epochs
    threads = _kernel_threads(cfg, platform, layout, host_prep, log if primary else (lambda *a: None))
    hogwild = threads > 1 and cfg.train.hogwild is not False
    if threads:
        log(f"CPU kernel: {threads} thread{'s' if threads > 1 else ''}"
            f"{', Hogwild' if hogwild else ', sharing each batch by rows' if threads > 1 else ''}")
    train_step = step_lib.make_train_step(cfg, tables, total, layout, kernel_threads=threads, hogwild=hogwild)
    ckpt = Checkpoints(workdir, cfg.train.keep)
    words_done = 0
    restored = ckpt.restore(step_lib.abstract_state_tree(cfg, len(vocab)),
                            log=log if primary else (lambda *a: None))
    if restored is not None:
        host_state, saved_position, words_done, _ = restored
        position = _local_position(saved_position, shards, log)
        log(f"resuming from checkpoint at step {int(host_state.step):,} ({words_done:,} of {total:,} words done)")
        state = layout.place_state(host_state)
    else:
        state = step_lib.init_state(cfg, len(vocab), layout)
    start_words = words_done

    metrics_path = os.path.join(workdir, "metrics.jsonl")
    bar = Progress(total, enabled=progress and primary)
    pending: list[dict] = []
    last_log_t = last_save_t = t0 = time.time()
    last_words = words_done
    final_loss = float("nan")
    loss_total, examples_total = 0.0, 0.0
    identity = cfg.identity()
    stop: dict = {}
    saved_epoch, calls = words_done // words_per_epoch, 0
    start_step = last_save_step = int(sharding.to_host(state.step))
    eval_interval = int(cfg.train.eval_every * vocab.total)
    next_eval = (words_done // eval_interval + 1) * eval_interval if eval_interval else None
    eval_seconds = 0.0
    # The prefetch thread also copies batches to the device(s), overlapping the step; except on
    # several CPU devices, where the XLA CPU runtime can deadlock on a collective while
    # another thread transfers to the same devices: there the main thread places them.
    place_in_thread = layout.plain or platform != "cpu"
    # device windows: every process holds the whole batch of token rows (one stream), and
    # gives each of its devices that device's rows
    place_batch = functools.partial(layout.place_batch, whole=device_windows)
    transform = place_batch if place_in_thread else None
    if host_prep and layout.plain and cfg.row_cap > 0 and cfg.model.loss != "softmax" and not threads:
        # the XLA step's row-update cap's touch counts, also in the prefetch thread (see
        # step.HostCounts; the kernel counts its own)
        counts = step_lib.HostCounts(cfg, tables)
        transform = lambda batch: place_batch(counts(batch))  # noqa: E731
    prefetch = Prefetcher(streamer(position), cfg.train.prefetch, transform=transform)
    mf = open(metrics_path, "a" if restored else "w") if primary else open(os.devnull, "w")
    with mf, _stop_on_signals(stop):
        def flush(now: float, final: bool = False):
            nonlocal pending, last_log_t, last_words, final_loss, loss_total, examples_total
            got = [jax.tree.map(sharding.to_host, m) for m in pending]
            pending = []
            now = time.time()  # after the pending calls finished: words/s of computed, not dispatched, work
            loss_sum = float(sum(m["loss_sum"] for m in got))
            ex = float(sum(m["examples"] for m in got))
            lr = float(got[-1]["lr"])
            loss = loss_sum / max(ex, 1.0)
            step_no = int(sharding.to_host(state.step))
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
            emb = _host_vectors(layout, state)
            if primary:
                vecs = export.Vectors(list(vocab.words), emb)
                res = {k: v for k, v in ev.evaluate_all(vecs).items() if not isinstance(v, dict)}
                rec = {"step": int(sharding.to_host(state.step)), "words": words_done,
                       "epochs_done": words_done / vocab.total, "eval": res, "eval_seconds": time.time() - t}
                mf.write(json.dumps(rec) + "\n")
                mf.flush()
            dt = time.time() - t
            last_log_t += dt
            eval_seconds += dt

        def save():
            nonlocal last_save_step
            # the loss is checked at every flush, but the last update of a call could still
            # overflow the tables: never save a state that is not finite
            if not bool(sharding.to_host(_all_finite(state.params))):
                step_no = int(sharding.to_host(state.step))
                raise TrainingError(f"the tables hold NaN or inf at step {step_no} (words {words_done:,}); "
                                    "lower --lr; the checkpoints before it are kept")
            positions = position
            if shards > 1:  # every process's positions, in shard order
                flat = [x for p in position for x in p]
                positions = [tuple(int(v) for v in row[i:i + 3]) for row in sharding.allgather_host(flat)
                             for i in range(0, len(flat), 3)]
            host = layout.host_state(state)
            last_save_step = ckpt.save(host, positions, words_done, identity)

        try:
            idle = False
            for batch, position_next, words_local in prefetch:
                if shards > 1:
                    idle = streamer.idle(position)
                now = time.time()
                info = sharding.allgather_host([int(idle), words_local, int(bool(stop)),
                                                int(now - last_log_t >= cfg.train.log_every_s),
                                                int(bool(cfg.train.checkpoint_minutes) and
                                                    now - last_save_t >= 60 * cfg.train.checkpoint_minutes)])
                if info[:, 0].all():
                    break  # every process is done
                if not place_in_thread:
                    batch = place_batch(batch)
                state, m = train_step(state, batch)
                # several data shards: each process counts its own; one stream: all count the same
                position, words_done = position_next, int(info[:, 1].sum() if shards > 1 else info[0, 1])
                pending.append(m)
                calls += 1
                if info[:, 3].any():
                    flush(now)
                if next_eval is not None and words_done >= next_eval and words_done < total:
                    if pending:
                        flush(now)
                    periodic_eval()
                    next_eval = (words_done // eval_interval + 1) * eval_interval
                    now = time.time()
                steps = start_step + calls * cfg.train.steps_per_call
                # decide on what every process saw at the exchange (a signal arriving since then
                # counts at the next call), so all processes run the same collectives
                stopping = bool(info[:, 2].any()) or (stop_after_calls is not None and calls >= stop_after_calls)
                epoch = words_done // words_per_epoch
                due = (epoch > saved_epoch
                       or (cfg.train.checkpoint_every and steps - last_save_step >= cfg.train.checkpoint_every)
                       or info[:, 4].any())
                if due or stopping:
                    if pending:
                        flush(now)  # also checks the loss for NaN before anything is saved
                    save()
                    saved_epoch, last_save_t = epoch, now
                if stopping:
                    ckpt.wait()
                    raise Interrupted(f"stopped at step {last_save_step:,} ({words_done:,} of {total:,} words) "
                                      f"with a checkpoint in {ckpt.directory}; run the same command to resume")
            jax.block_until_ready(state.params)
            if pending:
                flush(time.time(), final=True)
            save()
        finally:
            prefetch.close()
            ckpt.close(raise_errors=sys.exc_info()[0] is None)
    seconds = time.time() - t0 - eval_seconds
    if calls == 0 and restored is not None and primary:  # the run was already complete: its last loss
        with open(metrics_path) as f:
            lines = [r for r in (json.loads(l) for l in f if l.strip()) if "loss" in r]
        final_loss = lines[-1]["loss"] if lines else final_loss
    vectors = _host_vectors(layout, state)
    if not np.all(np.isfinite(vectors)):
        raise TrainingError("the trained vectors hold NaN or inf; lower --lr")
    trained = total - start_words  # words trained by this process (less than total after a resume)
    return {"train_seconds": seconds, "eval_seconds_during_training": eval_seconds, "raw_words": total,
            "raw_words_this_run": trained,
            "raw_words_per_s": trained / seconds, "effective_words_per_s": trained * keep_rate / seconds,
            "subsample_keep_rate": keep_rate,
            "vocab_size": len(vocab), "train_words_per_epoch": vocab.total, "epochs": cfg.train.epochs,
            "examples": examples_total, "final_loss": final_loss,
            "mean_loss": loss_total / max(examples_total, 1.0), "steps": int(sharding.to_host(state.step)),
            "model": cfg.model.model, "loss": cfg.model.loss, "platform": platform,
            # times the step was traced and compiled: 1 = fixed shapes (the last batch is padded)
            "step_compilations": train_step.traces(),
            "devices": layout.size, "processes": nproc, "data_shards": shards, "host_prep": host_prep,
            "cpu_kernel_threads": threads, "cpu_kernel_hogwild": hogwild,
            "row_update_cap": cfg.row_cap,
            "device_windows": device_windows, "device_rows": [token_spec.rows, token_spec.row_tokens] if token_spec else None,
            "shard_tables": layout.shard_tables, "_vectors": vectors}


def _kernel_threads(cfg: Config, platform: str, layout: sharding.Layout, host_prep: bool, log) -> int:
    """Threads of the fused CPU kernel (:mod:`w2vjax.kernel`) for this run; 0: the plain XLA step.
    By default it runs where it can; ``--cpu-kernel`` where it cannot is an error."""
    t, m = cfg.train, cfg.model
    fits = [(platform == "cpu", f"it runs on CPU, this run is on {platform}"),
            (layout.plain, "it runs on one device, with the tables on it"),
            (host_prep, "it takes the host stream's noise words (--host-prep)"),
            (m.loss in ("ns", "hs") and not (m.model == "skipgram" and cfg.windows),
             "it runs negative sampling and hierarchical softmax, not --shared-negatives")]
    why = next((w for ok, w in fits if not ok), None)
    if t.cpu_kernel is False or (why is not None and t.cpu_kernel is None):
        return 0
    if why is None:
        from . import kernel
        ok, why = kernel.available()
        if ok:
            return t.threads or kernel.default_threads()
        if t.cpu_kernel is None:
            log(f"CPU kernel not used ({why}); running the XLA step")
            return 0
    raise ConfigError(f"--cpu-kernel: {why}")


@jax.jit
def _all_finite(params: dict) -> jax.Array:
    return jnp.all(jnp.stack([jnp.isfinite(t).all() for t in params.values()]))


def _host_vectors(layout: sharding.Layout, state: step_lib.TrainState) -> np.ndarray:
    return layout.host_params({"emb_in": state.params["emb_in"]})["emb_in"]


def _local_position(saved, shards: int, log):
    """This process's stream position(s) from a checkpoint's saved position(s)."""
    if shards == 1:
        if is_position_list(saved):
            raise ConfigError(f"the checkpoint was written with {len(saved)} data shards; "
                              f"rerun with --data-shards {len(saved)}")
        return Position(*saved)
    if not is_position_list(saved) or len(saved) != shards:
        n = len(saved) if is_position_list(saved) else 1
        raise ConfigError(f"the checkpoint was written with {n} data shard(s), this run uses {shards}; "
                          f"rerun with --data-shards {n}")
    k = shards // jax.process_count()
    p = jax.process_index()
    return tuple(Position(*x) for x in saved[p * k:(p + 1) * k])
