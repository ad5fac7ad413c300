"""``train_and_evaluate(config, workdir)``: the one training loop and its I/O.

Data flows one way: corpus -> :mod:`prepare` (vocab + ids) -> :mod:`stream` or
:mod:`windows` (batches, in a prefetch thread) -> the engine :func:`w2vjax.engines.choose`
picked, jitted by :mod:`step` -> checkpoints, export and evaluation.  Values come back to the
host only at logging steps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import json
import logging
import math
import os
import shutil
import signal
import sys
import time
from importlib import resources
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from . import engines, export, sharding, step as step_lib, windows
from .checkpoint import Checkpoints, IdentityError, identity_diffs
from .config import SAMPLED, Config, ConfigError
from .prepare import Corpus, prepare
from .progress import Progress
from .stream import Position, Prefetcher, ShardedStream, Streamer, StreamSpec, block_bounds, is_position_list


logger = logging.getLogger(__name__)  # "w2vjax.train": the CLI prints its records, the API leaves them to the caller


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
    # every program, however small and quick to compile: loading one is faster than compiling
    # it (a run's dozen small ones -- init, finiteness checks, transfers -- add up at start-up)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def imported_at() -> float:
    """``time.time()`` when the ``w2vjax`` package started importing (what came before it, the
    interpreter's own start, is not seen from inside the process)."""
    import w2vjax
    return getattr(w2vjax, "_IMPORTED_AT", time.time())


class Stopwatch:
    """Where a run's wall time went: :meth:`lap` books the time since the previous lap under a
    name; :meth:`add` books parts timed elsewhere (the training loop's), which the next lap does
    not count again.  ``imports`` is the time from the package's import to the stopwatch."""

    def __init__(self, since: float):
        self.t0 = since
        self.last = time.time()
        self.parts: dict[str, float] = {"imports": self.last - since}

    def lap(self, name: str) -> None:
        now = time.time()
        self.parts[name] = self.parts.get(name, 0.0) + now - self.last
        self.last = now

    def add(self, parts: dict[str, float]) -> None:
        now = time.time()
        for k, v in parts.items():
            self.parts[k] = self.parts.get(k, 0.0) + v
        self.parts["other"] = self.parts.get("other", 0.0) + max(now - self.last - sum(parts.values()), 0.0)
        self.last = now

    def result(self) -> dict[str, float]:
        """The parts in seconds, and ``total`` from the package's import to now."""
        return {**{k: round(v, 4) for k, v in self.parts.items()}, "total": round(time.time() - self.t0, 4)}


def format_timings(timings: dict[str, float]) -> str:
    """The breakdown as one line per part, largest first, for ``--verbose``."""
    total = max(timings.get("total", 0.0), 1e-9)
    parts = sorted(((k, v) for k, v in timings.items() if k != "total"), key=lambda kv: -kv[1])
    lines = [f"  {k:<20} {v:8.2f} s  {100 * v / total:5.1f} %" for k, v in parts]
    return "\n".join([f"wall time {total:.2f} s:"] + lines)


def default_corpus() -> str:
    """Path of the embedded default corpus (first 2.1 M words of text8, see w2vjax/data/README.md)."""
    return str(resources.files("w2vjax") / "data" / "text8_head.txt.gz")


def check_workdir(cfg: Config, workdir: str, force: bool = False) -> None:
    """Refuse a work dir whose checkpoints belong to a run with other settings (unless ``force``,
    which deletes those checkpoints and starts over)."""
    path = os.path.join(workdir, "config.json")
    ckpts = os.path.join(workdir, "checkpoints")
    if not (os.path.exists(path) and os.path.isdir(ckpts) and os.listdir(ckpts)):
        return
    try:
        with open(path, "rb") as f:
            old = Config.from_dict(json.load(f)).identity()
    except (ValueError, ConfigError, TypeError, AttributeError, OSError) as e:
        if force:
            shutil.rmtree(ckpts)
            return
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"work dir {workdir!r} holds checkpoints but its config.json is unreadable ({why}), so "
                          "whose settings they hold is unknown; use --force to discard them and start over, "
                          "or another --workdir") from None
    if old == cfg.identity():
        return
    if force:
        shutil.rmtree(ckpts)
        return
    diffs = [f"{sec}.{k}: {old.get(sec, {}).get(k)!r} -> {v!r}" for sec, fields in cfg.identity().items()
             for k, v in fields.items() if old.get(sec, {}).get(k) != v]
    raise ConfigError(f"work dir {workdir!r} holds a run with other settings ({'; '.join(diffs[:3])}); "
                      "use another --workdir, or --force to discard its checkpoints and start over")


def workdir_identity(cfg: Config, data: Corpus) -> dict[str, Any]:
    """What a work dir's checkpoints hold: the corpus (its text's hash), the vocabulary (size
    and hash of vocab.txt) and the settings; saved with every checkpoint, checked on restore."""
    return {"corpus_sha256": data.corpus_sha256, "vocab_size": len(data.vocab), "vocab_sha256": data.vocab_sha256,
            "settings": _settings_but_epochs(cfg)}


def _settings_but_epochs(cfg: Config) -> dict[str, Any]:
    """The settings a checkpoint must share with the run that resumes it: all but the epoch count,
    which only says where training ends (more epochs continue a finished run; config.json, see
    :func:`check_workdir`, still tells a changed epoch count apart)."""
    settings = cfg.identity()
    return {**settings, "train": {k: v for k, v in settings["train"].items() if k != "epochs"}}


def check_identity(workdir: str, identity: dict, force: bool = False) -> None:
    """Refuse (or with ``force`` discard) checkpoints that hold another corpus, vocabulary or
    settings than ``identity``, before anything in the work dir is rewritten."""
    if not _has_checkpoints(workdir):
        return
    ckpts = os.path.join(workdir, "checkpoints")
    manager = Checkpoints(workdir)
    try:
        saved = manager.saved_identity()
    finally:
        manager.close(raise_errors=False)
    diffs = identity_diffs(saved, identity) if saved is not None else []
    if diffs and force:
        shutil.rmtree(ckpts)
    elif diffs:
        raise IdentityError(f"work dir {workdir!r} holds checkpoints of another run ({'; '.join(diffs[:3])}); "
                            "use another --workdir, or --force to discard its checkpoints and start over")


def _has_checkpoints(workdir: str) -> bool:
    ckpts = os.path.join(workdir, "checkpoints")
    return os.path.isdir(ckpts) and any(d.isdigit() for d in os.listdir(ckpts))


INIT_RECORD = "init_vectors.json"  # the warm start of the run in a work dir, for its summary.json


class WarmStart(NamedTuple):
    """``--init-vectors``: the vocabulary rows to overwrite in the fresh input table, their
    vectors, and the record (file, sha256, counts) that summary.json keeps."""
    rows: np.ndarray  # [K] int32 vocabulary ids
    values: np.ndarray  # [K, D] float32
    record: dict

    def apply(self, state: step_lib.TrainState) -> step_lib.TrainState:
        """``state`` with ``emb_in[rows] = values``, in the state's own shardings."""
        return step_lib.set_input_rows(state, self.rows, self.values)


def check_init_dim(path: str, dim: int) -> None:
    """A vectors file of another dimension than ``--dim`` cannot warm-start the run."""
    _, file_dim = export.read_header(path)
    if file_dim != dim:
        raise ConfigError(f"--init-vectors {path} holds vectors of dimension {file_dim}, this run trains --dim {dim}; "
                          f"give --dim {file_dim} or vectors of dimension {dim}")


def load_init_vectors(path: str, vocab, dim: int) -> WarmStart:
    """The rows of the vocabulary's words that ``path`` (word2vec text or binary) holds, as
    gensim's ``intersect_word2vec_format`` and fastText's ``-pretrainedVectors`` take them:
    words of the file outside the vocabulary are ignored, vocabulary words missing from it
    keep the random init."""
    from .prepare import file_sha256
    check_init_dim(path, dim)
    vectors = export.load_vectors(path)
    found = [(i, vectors.index[w]) for i, w in enumerate(vocab.words) if w in vectors.index]
    rows = np.asarray([i for i, _ in found], np.int32)
    values = vectors.vectors[[j for _, j in found]] if found else np.zeros((0, dim), np.float32)
    record = {"path": os.path.abspath(path), "sha256": file_sha256(path), "file_words": len(vectors),
              "vocab_words_initialised": len(found), "vocab_size": len(vocab)}
    logger.info(f"--init-vectors {path}: {len(found):,} of the vocabulary's {len(vocab):,} words initialised "
                f"from its {len(vectors):,} vectors{' (the others random)' if len(found) < len(vocab) else ''}")
    return WarmStart(rows, values, record)


def save_vocab(cfg: Config, workdir: str) -> None:
    """``--save-vocab FILE``: the run's vocabulary (vocab.txt: after --min-count and --max-vocab,
    by descending count) in word2vec.c's ``-save-vocab`` format, which ``--read-vocab`` reads."""
    if cfg.train.save_vocab:
        with open(os.path.join(workdir, "vocab.txt"), "rb") as f:
            export.atomic_write(cfg.train.save_vocab, iter(lambda: f.read(1 << 20), b""))
        logger.info(f"wrote the vocabulary to {cfg.train.save_vocab}")


@contextlib.contextmanager
def workdir_lock(workdir: str):
    """Hold an exclusive ``flock`` on ``workdir/lock`` (holding this process's PID) for the
    whole run: a second run on the same work dir would delete the first's in-flight saves.  A work
    dir this run made and left holding nothing but the lock (a run refused before it wrote
    anything) is removed again."""
    made = not os.path.exists(workdir)
    os.makedirs(workdir, exist_ok=True)
    try:
        with _locked(workdir):
            yield
    finally:
        if made and os.listdir(workdir) in (["lock"], []):
            shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def _locked(workdir: str):
    with open(os.path.join(workdir, "lock"), "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            pid = f.read().strip() or "unknown"
            raise ConfigError(f"work dir {workdir!r} is in use by another w2vjax run (PID {pid}); "
                              "wait for it to end or use another --workdir") from None
        f.truncate(0)
        f.write(f"{os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def train_and_evaluate(config: Config, workdir: str, corpus: Optional[str] = None, **kw) -> dict[str, Any]:
    """:func:`train_work_dir` (see there) holding the work dir's lock (process 0 only: the
    others of a distributed run share its work dir or use their own)."""
    with workdir_lock(workdir) if sharding.is_primary() else contextlib.nullcontext():
        return train_work_dir(config, workdir, corpus, **kw)


def train_work_dir(config: Config, workdir: str, corpus: Optional[str] = None, *,
                   evaluate: bool = True, progress: bool = True, force: bool = False,
                   stop_after_calls: Optional[int] = None, text_vectors: bool = True) -> dict[str, Any]:
    """Train ``config`` on ``corpus`` (default: the embedded sample) into ``workdir``.

    Writes ``config.json``, ``vocab.txt``, ``metrics.jsonl``, ``checkpoints/``,
    ``vectors.txt``, ``vectors.bin`` and ``summary.json``; returns the summary.  A work dir
    with checkpoints of the same settings is resumed from the latest one; one that holds this
    run finished is left as it is and its summary returned with ``already_finished`` True.
    ``text_vectors`` False: no ``vectors.txt`` (formatting every float as text is the slowest
    export for a large vocabulary; ``vectors.bin`` holds the same vectors).  Messages go to the
    ``w2vjax.train`` logger (INFO; warnings at WARNING).
    """
    t_start = time.time()
    clock = Stopwatch(imported_at())
    platform = jax.devices()[0].platform
    layout_devices = (config.train.devices or jax.local_device_count()) * jax.process_count()
    cfg, engine = engines.choose(config, platform, layout_devices)
    enable_compilation_cache()
    clock.lap("backend")
    corpus = corpus or default_corpus()
    primary = sharding.is_primary()  # only process 0 writes the work dir's files
    done = finished_summary(cfg, workdir, corpus)
    if done is not None:
        logger.info(f"{workdir} holds a finished run of these settings: nothing to train (summary.json left as it "
                    "was; more --epochs continues it, another --workdir starts afresh)")
        if primary:
            save_vocab(cfg, workdir)
        return {**done, "already_finished": True}
    more_epochs(cfg, workdir, primary)
    check_workdir(cfg, workdir, force and primary)
    fresh = not _has_checkpoints(workdir)
    if fresh and cfg.train.init_vectors:  # its dimension, before anything is written
        check_init_dim(cfg.train.init_vectors, cfg.model.dim)
    sharding.sync("w2vjax:checked")
    args = (corpus, workdir, cfg.data.min_count, cfg.data.max_vocab, cfg.data.max_sentence_length)
    data = prepare(*args, force=force, read_vocab=cfg.data.read_vocab) if primary else None
    sharding.sync("w2vjax:prepared")  # then the others reuse it (shared work dir) or make their own copy
    data = data or prepare(*args, read_vocab=cfg.data.read_vocab)
    if primary:
        if jax.process_count() == 1:  # an Orbax manager of one process alone would wait for the others
            check_identity(workdir, workdir_identity(cfg, data), force)  # (several: restore checks it, in every one)
    # a resume takes its state from the checkpoint and ignores --init-vectors
    warm = load_init_vectors(cfg.train.init_vectors, data.vocab, cfg.model.dim) \
        if cfg.train.init_vectors and not _has_checkpoints(workdir) else None
    check_memory(cfg, engine, data)  # (again in run_training, for API callers) before config.json says "this run"
    if primary:
        save_vocab(cfg, workdir)
        export.atomic_write(os.path.join(workdir, "config.json"), [_config_json(cfg, engine)])
    clock.lap("prepare")
    _log_settings(cfg, corpus, data)
    logger.info(engine.describe())
    summary = run_training(cfg, data, workdir, engine=engine, progress=progress,
                           stop_after_calls=stop_after_calls, warm=warm)
    clock.add(summary.pop("_timings"))
    vectors = export.Vectors(list(data.vocab.words), summary.pop("_vectors"))
    out_vectors = summary.pop("_vectors_out", None)
    if not primary:
        return summary
    if cfg.train.save_output:
        summary["output_vectors"] = _save_output(workdir, vectors.words, out_vectors)
        clock.lap("export_output")
    if text_vectors:
        export.save_word2vec_text(os.path.join(workdir, "vectors.txt"), vectors.words, vectors.vectors)
        clock.lap("export_text")
    export.save_word2vec_binary(os.path.join(workdir, "vectors.bin"), vectors.words, vectors.vectors)
    clock.lap("export_binary")
    if evaluate:
        from . import evaluate as ev
        summary["eval"] = ev.evaluate_all(vectors)
        clock.lap("evaluate")
    summary["total_seconds"] = time.time() - t_start
    summary.update(_reproducibility(cfg, engine, corpus))
    if cfg.train.init_vectors:
        summary["init_vectors"] = _read_json(os.path.join(workdir, INIT_RECORD))
    summary["timings"] = clock.result()
    export.atomic_write(os.path.join(workdir, "summary.json"), [json.dumps(summary, indent=2) + "\n"])
    prune_checkpoints(workdir, cfg.train.keep_after)
    return summary


def _config_json(cfg: Config, engine: engines.Engine) -> str:
    """config.json: the settings as given (``null``: default) and ``resolved``, the values used."""
    from . import metadata
    return json.dumps({**cfg.to_dict(), "resolved": metadata.resolved_settings(cfg, engine)},
                      indent=2, sort_keys=True) + "\n"


def _reproducibility(cfg: Config, engine: engines.Engine, corpus: str) -> dict[str, Any]:
    """summary.json's record of what produced it: settings, versions, commit, corpus, devices."""
    from . import metadata
    return {"config": cfg.to_dict(), "resolved": metadata.resolved_settings(cfg, engine),
            "environment": metadata.environment(), "corpus": metadata.corpus_info(corpus)}


def _read_json(path: str) -> Optional[dict]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def finished_summary(cfg: Config, workdir: str, corpus: Optional[str] = None) -> Optional[dict]:
    """summary.json of ``workdir`` when it records a finished run of ``cfg``'s settings, else None.
    (summary.json is written last, with the settings it was trained with; config.json must
    agree, or a run with other settings has started in the work dir since.)"""
    summary = _read_json(os.path.join(workdir, "summary.json"))
    config = _read_json(os.path.join(workdir, "config.json"))  # a later run's, if one started since
    if not summary or "config" not in summary or not config:
        return None
    try:
        same = Config.from_dict(summary["config"]).identity() == Config.from_dict(config).identity() == cfg.identity()
    except ConfigError:
        return None
    if same and corpus is not None and "corpus" in summary:  # the same settings on another text train anew
        from . import metadata
        if not os.path.isfile(corpus):  # (a FIFO is not read here: prepare refuses it in one line)
            return None
        try:
            same = summary["corpus"].get("sha256") == metadata.corpus_info(corpus).get("sha256")
        except OSError:  # prepare says what is wrong with the corpus
            same = False
    return summary if same else None


def more_epochs(cfg: Config, workdir: str, primary: bool = True) -> bool:
    """Let a finished run continue with more epochs: when ``workdir`` holds a finished run whose
    settings differ from ``cfg``'s only by fewer epochs, and still has its checkpoints, its
    config.json takes the new epoch count (so :func:`check_workdir` resumes it instead of
    refusing).  Training restarts at the old end: the linear rate schedule is over the new
    total, so the rate rises to ``lr * (1 - old/new epochs)`` and decays to its floor again.
    (Only the ``primary`` process rewrites config.json.)"""
    summary = _read_json(os.path.join(workdir, "summary.json"))
    ckpts = os.path.join(workdir, "checkpoints")
    if not summary or "config" not in summary or not (os.path.isdir(ckpts) and os.listdir(ckpts)):
        return False
    try:
        old = Config.from_dict(summary["config"])
    except ConfigError:
        return False
    new_epochs = cfg.train.epochs
    if new_epochs <= old.train.epochs or dataclasses.replace(
            old, train=dataclasses.replace(old.train, epochs=new_epochs)).identity() != cfg.identity():
        return False
    raw = _read_json(os.path.join(workdir, "config.json"))
    if not isinstance(raw, dict) or not isinstance(raw.get("train", {}), dict):
        return False  # an unreadable config.json is left for check_workdir to report
    logger.info(f"continuing the finished {old.train.epochs}-epoch run in {workdir} to {new_epochs} epochs")
    if primary:
        raw.setdefault("train", {})["epochs"] = new_epochs
        export.atomic_write(os.path.join(workdir, "config.json"), [json.dumps(raw, indent=2, sort_keys=True) + "\n"])
    return True


def prune_checkpoints(workdir: str, keep_after: str) -> None:
    """After a successful run: keep every checkpoint (``all``), the last (``final``) or ``none``."""
    ckpts = os.path.join(workdir, "checkpoints")
    if keep_after == "all" or not os.path.isdir(ckpts):
        return
    steps = sorted((int(n) for n in os.listdir(ckpts) if n.isdigit()), reverse=True)
    drop = steps if keep_after == "none" else steps[1:]
    for step_no in drop:
        shutil.rmtree(os.path.join(ckpts, str(step_no)), ignore_errors=True)


def _save_output(workdir: str, words: list, out_vectors) -> str:
    """``--save-output``: the output table's word rows as vectors_out.txt/.bin, or why not (HS)."""
    if out_vectors is None:
        logger.info("--save-output: skipped for --loss hs (its output rows are the Huffman tree's inner nodes, not words)")
        return "skipped: hierarchical softmax's output rows are inner nodes, not words"
    export.save_output_vectors(workdir, words, out_vectors)
    return "vectors_out.txt, vectors_out.bin"


def _log_settings(cfg: Config, corpus: str, data: Corpus) -> None:
    vocab_from = f", read from {cfg.data.read_vocab}" if cfg.data.read_vocab else ""
    logger.info(f"corpus {corpus}: {data.num_words:,} training words, vocabulary {len(data.vocab):,} "
                f"(min-count {cfg.data.min_count}{vocab_from})")
    logger.info(f"model {cfg.model.model}/{cfg.model.loss} dim {cfg.model.dim} window {cfg.data.window} "
                f"negative {cfg.model.negative} sample {cfg.data.sample} epochs {cfg.train.epochs} "
                f"lr {cfg.lr} batch {cfg.batch_size}{' windows' if cfg.windows else ''}x{cfg.train.steps_per_call} "
                f"on {jax.devices()[0].platform} x{cfg.train.devices or jax.local_device_count()}"
                f"{f' x {jax.process_count()} processes' if jax.process_count() > 1 else ''}"
                f"{' (tables sharded by rows)' if cfg.train.shard_tables else ''}")


def _data_shards(cfg: Config) -> int:
    nproc = jax.process_count()
    shards = cfg.train.data_shards or nproc
    if shards % nproc:
        raise ConfigError(f"--data-shards {shards} is not a multiple of the {nproc} processes")
    return shards


def check_memory(cfg: Config, engine: engines.Engine, data: Corpus) -> sharding.Layout:
    """The run's layout, once :func:`engines.check_memory` found that its tables and host stream
    fit the memory there is (a one-line ConfigError otherwise, before anything is allocated)."""
    n = len(data.vocab)
    layout = make_layout(cfg, {"emb_in": n, "emb_out": n - 1 if cfg.model.loss == "hs" else n}, engine.device_windows)
    block_words = StreamSpec._field_defaults["block_words"]  # the host stream's largest block
    block = 0 if engine.device_windows else int(np.diff(block_bounds(data.sentences, block_words)).max())
    engines.check_memory(cfg, layout.rows, list(layout.mesh.devices.flat), layout.shard_tables, block)
    return layout


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


def make_stream(cfg: Config, engine: engines.Engine, data: Corpus, layout: sharding.Layout, tables):
    """The run's batch source and its start position: token rows (device windows), one host
    stream, or this process's data shards.  The host stream draws the noise words."""
    if engine.device_windows:  # rows of raw tokens; the step makes about batch_size examples per micro-step
        spec = windows.token_spec(cfg, data.vocab.keep_rate(cfg.data.sample), layout.size)
        return windows.TokenStream(data, spec), Position(), spec
    ns = cfg.model.loss in SAMPLED
    spec = StreamSpec(cfg.model.model, cfg.data.window, cfg.batch_size, cfg.train.steps_per_call,
                      cfg.train.epochs, cfg.train.seed, windows=cfg.windows, negative=cfg.model.negative if ns else 0)
    noise = (np.asarray(tables.noise_accept), np.asarray(tables.noise_alias)) if ns else None
    keep = data.vocab.keep_prob(cfg.data.sample)
    shards, nproc = layout.data_shards, jax.process_count()
    if shards == 1:
        return Streamer(data, keep, spec, noise=noise), Position(), None
    k = shards // nproc
    local = tuple(range(jax.process_index() * k, (jax.process_index() + 1) * k))
    streamer = ShardedStream(data, keep, spec, shards, local, pad_forever=nproc > 1, noise=noise)
    return streamer, streamer.start(), None


class Exchange(NamedTuple):
    """What the processes of a run tell each other once per call, so all take the same decisions."""
    idle: int  # this process's data shards are done
    words: int  # raw words this process has streamed
    signal: int  # a SIGINT/SIGTERM arrived
    log_due: int
    save_due: int


def exchange(mine: Exchange) -> list[Exchange]:
    return [Exchange(*(int(v) for v in row)) for row in sharding.allgather_host(list(mine))]


class MetricsLog:
    """``metrics.jsonl`` and the progress bar: the calls' device metrics, pulled to the host at
    log steps only."""

    def __init__(self, path: str, append: bool, primary: bool, total: int, keep_rate: float,
                 progress: bool, words_done: int, epochs: int = 1):
        self.file = open(path, "a" if append else "w") if primary else open(os.devnull, "w")
        self.bar = Progress(total, enabled=progress and primary, epochs=epochs, start=words_done)
        self.keep_rate = keep_rate
        self.pending: list[dict] = []
        self.last_t = self.t0 = time.time()
        self.last_words = words_done
        self.final_loss = float("nan")
        self.loss_total = self.examples_total = 0.0

    def flush(self, step_no: int, words_done: int, final: bool = False) -> None:
        got = [jax.tree.map(sharding.to_host, m) for m in self.pending]
        self.pending = []
        now = time.time()  # after the pending calls finished: words/s of computed, not dispatched, work
        loss_sum = float(sum(m["loss_sum"] for m in got))
        ex = float(sum(m["examples"] for m in got))
        lr, loss = float(got[-1]["lr"]), loss_sum / max(ex, 1.0)
        if not math.isfinite(loss):
            raise TrainingError(f"loss became {loss} at step {step_no} (words {words_done:,}); "
                                "lower --lr or check the corpus")
        self.final_loss = loss
        self.loss_total += loss_sum
        self.examples_total += ex
        raw_wps = (words_done - self.last_words) / max(now - self.last_t, 1e-9)
        self.write({"step": step_no, "words": words_done, "raw_words_per_s": raw_wps,
                    "effective_words_per_s": raw_wps * self.keep_rate, "lr": lr, "loss": loss,
                    "examples": ex, "elapsed_s": now - self.t0})
        self.bar.update(words_done, raw_wps, lr, loss, final=final)
        self.last_t, self.last_words = now, words_done

    def write(self, rec: dict) -> None:
        self.file.write(json.dumps(rec) + "\n")
        self.file.flush()

    def pause(self, seconds: float) -> None:
        """Time spent outside training (evaluation) does not count in the next words/s."""
        self.last_t += seconds


@dataclasses.dataclass
class Loop:
    """The training loop's mutable state, and the periodic work done after each call."""
    cfg: Config
    layout: sharding.Layout
    vocab: Any
    ckpt: Checkpoints
    log: MetricsLog
    state: step_lib.TrainState
    position: Any
    words_done: int
    shards: int
    total: int
    primary: bool
    stop_after_calls: Optional[int] = None
    eval_seconds: float = 0.0
    checkpoint_seconds: float = 0.0
    calls: int = 0
    identity: Optional[dict] = None  # of the work dir, saved with every checkpoint

    def __post_init__(self):
        self.words_per_epoch = self.total // self.cfg.train.epochs
        self.saved_epoch = self.words_done // self.words_per_epoch
        self.start_step = self.last_save_step = self.step_no()
        self.last_save_t = time.time()
        self.eval_interval = int(self.cfg.train.eval_every * self.words_per_epoch)
        self.next_eval = ((self.words_done // self.eval_interval + 1) * self.eval_interval
                          if self.eval_interval else None)

    def step_no(self) -> int:
        return int(sharding.to_host(self.state.step))

    def due(self, idle: bool, words_local: int, signalled: bool) -> list[Exchange]:
        """What every process has to say before this call (see :class:`Exchange`)."""
        now, t = time.time(), self.cfg.train
        return exchange(Exchange(int(idle), words_local, int(signalled), int(now - self.log.last_t >= t.log_every_s),
                                 int(bool(t.checkpoint_minutes) and now - self.last_save_t >= 60 * t.checkpoint_minutes)))

    def after_call(self, metrics: dict, position, everyone: list[Exchange]) -> None:
        """Book the call; then log, evaluate and checkpoint as due, deciding on what every
        process saw at the exchange so that all run the same collectives."""
        # several data shards: each process counts its own; one stream: all count the same
        self.position = position
        self.words_done = sum(e.words for e in everyone) if self.shards > 1 else everyone[0].words
        self.log.pending.append(metrics)
        self.calls += 1
        if any(e.log_due for e in everyone) or self.words_done - self.log.last_words >= self.total / 100:
            self.flush()  # every --log-every-s, and at least every 1 % of the words (all processes agree)
        if self.next_eval is not None and self.next_eval <= self.words_done < self.total:
            self.flush()
            self.evaluate()
            self.next_eval = (self.words_done // self.eval_interval + 1) * self.eval_interval
        stopping = any(e.signal for e in everyone) or (self.stop_after_calls is not None
                                                        and self.calls >= self.stop_after_calls)
        epoch = self.words_done // self.words_per_epoch
        steps = self.start_step + self.calls * self.cfg.train.steps_per_call
        every = self.cfg.train.checkpoint_every
        if (epoch > self.saved_epoch or any(e.save_due for e in everyone) or stopping
                or (every and steps - self.last_save_step >= every)):
            self.flush()  # also checks the loss before anything is saved
            self.last_save_step = self.save()
            self.saved_epoch, self.last_save_t = epoch, time.time()
        if stopping:
            self.ckpt.wait()
            raise Interrupted(f"stopped at step {self.last_save_step:,} ({self.words_done:,} of {self.total:,} "
                              f"words) with a checkpoint in {self.ckpt.directory}; run the same command to resume")

    def flush(self, final: bool = False) -> None:
        if self.log.pending:
            self.log.flush(self.step_no(), self.words_done, final)

    def save(self) -> int:
        """A checkpoint of the current state; never of one that is not finite.  Its time (after
        the device has finished the calls before it) is booked as checkpoint time."""
        jax.block_until_ready(self.state.params)
        t = time.time()
        try:
            return self._save()
        finally:
            self.checkpoint_seconds += time.time() - t

    def _save(self) -> int:
        if not bool(sharding.to_host(_all_finite(self.state.params))):
            raise TrainingError(f"the tables hold NaN or inf at step {self.step_no()} (words {self.words_done:,}); "
                                "lower --lr; the checkpoints before it are kept")
        positions = self.position
        if self.shards > 1:  # every process's positions, in shard order
            flat = [x for p in self.position for x in p]
            positions = [tuple(int(v) for v in row[i:i + 3]) for row in sharding.allgather_host(flat)
                         for i in range(0, len(flat), 3)]
        return self.ckpt.save(self.layout.host_state(self.state), positions, self.words_done, self.cfg.identity(),
                              self.identity)

    def evaluate(self) -> None:
        """Evaluate the current input vectors into metrics.jsonl; its time is not training time."""
        from . import evaluate as ev
        t = time.time()
        emb = _host_vectors(self.layout, self.state)
        if self.primary:
            vecs = export.Vectors(list(self.vocab.words), emb)
            res = {k: v for k, v in ev.evaluate_all(vecs).items() if not isinstance(v, dict)}
            self.log.write({"step": self.step_no(), "words": self.words_done,
                            "epochs_done": self.words_done / self.words_per_epoch, "eval": res,
                            "eval_seconds": time.time() - t})
        dt = time.time() - t
        self.log.pause(dt)
        self.eval_seconds += dt


def _restore_or_init(cfg: Config, vocab_size: int, ckpt: Checkpoints, layout, shards: int, total: int,
                     identity: Optional[dict] = None, warm: Optional["WarmStart"] = None):
    """The state to start from: the latest checkpoint's (which must hold ``identity``), or a
    new one, warm-started from ``warm`` when given; and the words done."""
    restored = ckpt.restore(step_lib.abstract_state_tree(cfg, vocab_size), identity=identity)
    if restored is None:
        state = step_lib.init_state(cfg, vocab_size, layout)
        return (warm.apply(state) if warm is not None else state), None, 0
    host_state, saved_position, words_done, _ = restored
    position = _local_position(saved_position, shards)
    logger.info(f"resuming from checkpoint at step {int(host_state.step):,} ({words_done:,} of {total:,} words done)")
    return layout.place_state(host_state), position, words_done


def run_training(cfg: Config, data: Corpus, workdir: str, *, engine: Optional[engines.Engine] = None,
                 progress: bool = True, stop_after_calls: Optional[int] = None,
                 warm: Optional["WarmStart"] = None) -> dict[str, Any]:
    """The loop: stream -> jitted engine step -> metrics and checkpoints.  Returns the summary
    (+ ``_vectors``).  Resumes from the latest checkpoint in ``workdir``, else starts from the
    random init with ``warm``'s rows copied in; ``stop_after_calls`` stops (with a checkpoint,
    as a signal would) after that many calls: a hook for tests.

    Several processes (``jax.distributed``) run this loop in lockstep, exchanging an
    :class:`Exchange` once per call; only process 0 writes ``metrics.jsonl`` and the bar.
    ``engine`` None: :func:`w2vjax.engines.choose` picks it (and resolves ``cfg``).
    """
    t_setup = time.time()
    vocab, primary, platform = data.vocab, sharding.is_primary(), jax.devices()[0].platform
    if engine is None:
        devices = (cfg.train.devices or jax.local_device_count()) * jax.process_count()
        cfg, engine = engines.choose(cfg, platform, devices)
    layout = check_memory(cfg, engine, data)
    tables = step_lib.make_tables(vocab, cfg)
    streamer, position, token_spec = make_stream(cfg, engine, data, layout, tables)
    shards, total = layout.data_shards, streamer.total_words
    train_step = step_lib.make_train_step(cfg, tables, total, layout, engine)
    ckpt = Checkpoints(workdir, cfg.train.keep)
    identity = workdir_identity(cfg, data)
    state, saved_position, words_done = _restore_or_init(cfg, len(vocab), ckpt, layout, shards, total, identity,
                                                         warm)
    resumed = saved_position is not None
    if warm is not None and not resumed and primary:
        export.atomic_write(os.path.join(workdir, INIT_RECORD), [json.dumps(warm.record, indent=2) + "\n"])
    keep_rate = vocab.keep_rate(cfg.data.sample)
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    mlog = MetricsLog(metrics_path, resumed, primary, total, keep_rate, progress, words_done, cfg.train.epochs)
    loop = Loop(cfg, layout, vocab, ckpt, mlog, state, saved_position if resumed else position, words_done,
                shards, total, primary, stop_after_calls, identity=identity)
    # The prefetch thread also copies batches to the device(s), overlapping the step; except on
    # several CPU devices, where the XLA CPU runtime can deadlock on a collective while
    # another thread transfers to the same devices: there the main thread places them.
    place_in_thread = layout.plain or platform != "cpu"
    place = functools.partial(layout.place_batch, whole=engine.device_windows)
    prefetch = Prefetcher(streamer(loop.position), cfg.train.prefetch, transform=place if place_in_thread else None)
    stop: dict = {}
    t_loop = time.time()
    timings = {"setup": t_loop - t_setup, "first_call": 0.0}
    with mlog.file, mlog.bar, _stop_on_signals(stop):
        try:
            for batch, position_next, words_local in prefetch:
                everyone = loop.due(shards > 1 and streamer.idle(loop.position), words_local, bool(stop))
                if all(e.idle for e in everyone):
                    break  # every process is done
                loop.state, m = train_step(loop.state, batch if place_in_thread else place(batch))
                if loop.calls == 0:  # the first batch, compiling (or loading) the step, its first run
                    jax.block_until_ready(loop.state.step)
                    timings["first_call"] = time.time() - t_loop
                loop.after_call(m, position_next, everyone)
            jax.block_until_ready(loop.state.params)
            loop.flush(final=True)
            t_end, saved_before = time.time(), loop.checkpoint_seconds
            loop.save()
        finally:
            prefetch.close()
            ckpt.close(raise_errors=sys.exc_info()[0] is None)
    in_loop = saved_before  # the saves before the last one, then the last and the wait for all
    timings["loop"] = max(t_end - t_loop - timings["first_call"] - in_loop - loop.eval_seconds, 0.0)
    timings["checkpoints"] = time.time() - t_end + in_loop
    timings["eval_during_training"] = loop.eval_seconds
    t = time.time()
    summary = _summary(cfg, engine, loop, train_step, token_spec, metrics_path, resumed, total - words_done, platform)
    timings["vectors_to_host"] = time.time() - t
    summary["_timings"] = timings
    return summary


def _summary(cfg, engine, loop: Loop, train_step, token_spec, metrics_path: str, resumed: bool, trained: int,
             platform: str) -> dict[str, Any]:
    """What the run did (``trained``: raw words trained by this process, less than the total
    after a resume), and its vectors under ``_vectors``."""
    mlog, vocab, layout = loop.log, loop.vocab, loop.layout
    seconds = time.time() - mlog.t0 - loop.eval_seconds
    final_loss = mlog.final_loss
    if loop.calls == 0 and resumed and loop.primary:  # the run was already complete: its last loss
        final_loss = _last_logged_loss(metrics_path, final_loss)
    vectors = _host_vectors(layout, loop.state)
    if not np.all(np.isfinite(vectors)):
        raise TrainingError("the trained vectors hold NaN or inf; lower --lr")
    keep_rate = vocab.keep_rate(cfg.data.sample)
    out = {"_vectors_out": layout.host_params({"emb_out": loop.state.params["emb_out"]})["emb_out"]} \
        if cfg.train.save_output and cfg.model.loss != "hs" else {}
    return {**out, "train_seconds": seconds, "eval_seconds_during_training": loop.eval_seconds, "raw_words": loop.total,
            "raw_words_this_run": trained,
            "raw_words_per_s": trained / seconds, "effective_words_per_s": trained * keep_rate / seconds,
            "subsample_keep_rate": keep_rate,
            "vocab_size": len(vocab), "train_words_per_epoch": loop.words_per_epoch, "epochs": cfg.train.epochs,
            "examples": mlog.examples_total, "final_loss": final_loss,
            "mean_loss": mlog.loss_total / max(mlog.examples_total, 1.0), "steps": loop.step_no(),
            "model": cfg.model.model, "loss": cfg.model.loss, "platform": platform,
            # times the step was traced and compiled: 1 = fixed shapes (the last batch is padded)
            "step_compilations": train_step.traces(),
            "devices": layout.size, "processes": jax.process_count(), "data_shards": loop.shards,
            **engine.summary(), "batch_size": cfg.batch_size, "steps_per_call": cfg.train.steps_per_call,
            "row_update_cap": cfg.row_cap,
            "device_rows": [token_spec.rows, token_spec.row_tokens] if token_spec else None,
            "shard_tables": layout.shard_tables, "_vectors": vectors}


def _last_logged_loss(metrics_path: str, default: float) -> float:
    with open(metrics_path) as f:
        lines = [r for r in (json.loads(l) for l in f if l.strip()) if "loss" in r]
    return lines[-1]["loss"] if lines else default


@jax.jit
def _all_finite(params: dict) -> jax.Array:
    return jnp.all(jnp.stack([jnp.isfinite(t).all() for t in params.values()]))


def _host_vectors(layout: sharding.Layout, state: step_lib.TrainState) -> np.ndarray:
    return layout.host_params({"emb_in": state.params["emb_in"]})["emb_in"]


def _local_position(saved, shards: int):
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
