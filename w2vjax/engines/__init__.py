"""Training engines, and :func:`choose`: the one place that decides which runs and resolves the
defaults that depend on the platform.

=============  =====================================================  ===========================
engine         what it is                                             where it runs by default
=============  =====================================================  ===========================
``cpu_kernel`` fused C++ update (:mod:`.cpu_kernel`), one thread or    one CPU device, NS, NCE,
               Hogwild threads                                        sampled softmax, HS,
                                                                      host-stream examples
``xla``        the reference update (:mod:`.xla`): every model x      one device otherwise (GPU,
               objective                                              TPU; full softmax; CPU
                                                                      with ``--no-cpu-kernel``)
``mesh``       the XLA update in ``shard_map`` (:mod:`.mesh`)         several devices or hosts,
                                                                      row-sharded tables
``pallas``     fused Triton kernel (:mod:`.pallas_gpu`), skip-gram    ``--pallas`` only, until it
               NS/HS, Hogwild within a micro-batch                    is timed on a GPU
=============  =====================================================  ===========================

Every engine takes the batches of :mod:`w2vjax.batches`: the host stream's ``Pairs`` /
``Windows`` (with the noise words for negative sampling), or, with device windows (the
accelerator default), ``TokenRows`` from which the XLA and mesh engines make the examples.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

from ..config import Config, ConfigError


@dataclasses.dataclass(frozen=True)
class Engine:
    """The chosen engine and the platform-dependent settings it runs with."""
    name: str = "xla"  # "cpu_kernel", "xla", "mesh" or "pallas"
    why: str = ""
    device_windows: bool = False  # examples made on the device from token rows
    threads: int = 0  # the CPU kernel's threads (several: Hogwild)
    interpret: bool = False  # pallas: the kernel's code in Pallas's interpret mode (programs one by one; tests)
    emulate: bool = False  # pallas on CPU: the kernel's update as one XLA program, programs in step (pallas_gpu)
    sort_ids: bool = False  # xla and mesh on a TPU: each micro-step's scatter ids sorted once per call (xla.call_orders)

    def describe(self) -> str:
        what = {"cpu_kernel": f"fused CPU kernel, {self.threads} thread{'s, Hogwild' if self.threads > 1 else ''}",
                "xla": "XLA reference update", "mesh": "XLA update over the device mesh",
                "pallas": "fused Pallas kernel"}[self.name]
        windows = ", examples made on the device" if self.device_windows else ""
        windows += ", scatter ids sorted per call" if self.sort_ids else ""
        return f"engine {self.name} ({what}{windows}): {self.why}"

    def summary(self) -> dict:
        return {"engine": self.name, "engine_why": self.why, "device_windows": self.device_windows,
                "cpu_kernel_threads": self.threads, "sort_ids": self.sort_ids}


def choose(cfg: Config, platform: str, devices: int = 1) -> tuple[Config, Engine]:
    """``(cfg with the platform's defaults, the engine)`` for a run on ``devices`` devices in all
    (every process's) of ``platform``.  Settings that cannot be honoured raise ConfigError."""
    cfg = cfg.validate().for_platform(platform)
    t, m = cfg.train, cfg.model
    mesh = devices > 1 or t.shard_tables
    device_windows = t.device_windows
    if device_windows is None:  # a host core cannot feed an accelerator; one stream for all devices
        device_windows = platform != "cpu" and t.data_shards <= 1
    unmet = [why for ok, why in [
        (platform == "cpu", f"this run is on {platform}"),
        (not mesh, f"this run uses {devices} devices" if devices > 1 else "the tables are sharded by rows"),
        (not device_windows, "the examples are made on the device (--device-windows)"),
        (m.loss in ("ns", "hs", "nce", "sampled-softmax"),
         f"the kernel runs negative sampling, NCE, sampled softmax and hierarchical softmax, not {m.loss}"),
        (not (m.model == "skipgram" and cfg.windows), "the kernel does not run --shared-negatives"),
    ] if not ok]
    name = "mesh" if mesh else "xla"
    # a TPU sorts the ids of every large scatter; sorted once per call, a micro-step need not (xla.call_orders)
    sort_ids = platform == "tpu"
    if t.pallas:
        if mesh:
            raise ConfigError("--pallas runs on one device with whole tables (not several devices or --shard-tables)")
        cpu = platform == "cpu"
        how = " (emulated: the kernel's update in XLA, its programs in step as on a GPU)" if cpu else ""
        return cfg, Engine("pallas", f"--pallas on {platform}{how}", device_windows, emulate=cpu)
    if t.cpu_kernel and unmet:
        raise ConfigError(f"--cpu-kernel: {unmet[0]}")
    if t.cpu_kernel is False:
        return cfg, Engine(name, "--no-cpu-kernel", device_windows, sort_ids=sort_ids)
    if unmet:
        return cfg, Engine(name, f"the CPU kernel does not fit: {unmet[0]}", device_windows, sort_ids=sort_ids)
    from . import cpu_kernel
    ok, reason = cpu_kernel.available()
    if not ok:
        if t.cpu_kernel:
            raise ConfigError(f"--cpu-kernel: {reason}")
        return cfg, Engine(name, f"the CPU kernel is not available ({reason})", device_windows)
    threads = t.threads or cpu_kernel.default_threads()
    return kernel_batch(cfg), Engine("cpu_kernel", f"one CPU device, {m.model}/{m.loss}", False, threads)


HS_KERNEL_BATCH = 32  # the CPU kernel's default batch for hierarchical softmax (kernel_batch)


def kernel_batch(cfg: Config) -> Config:
    """The CPU kernel's default batch: negative sampling updates after every pair (skip-gram) or
    window (CBOW), as word2vec.c and gensim do; skip-gram/HS sums 32 pairs a batch (CBOW/HS
    keeps 256 windows); a call keeps 256 x --steps-per-call examples either way.  Summed over 256 pairs
    skip-gram/NS lost 0.012 SimLex-999 to gensim over 5 epochs on 17 M words (3 seeds, p 0.028)
    while gaining analogies; per pair it is level on SimLex-999 at the same speed
    (docs/simlex.md).  CBOW/NS summed over 256 windows trailed gensim's WS-353 by 0.058 on the
    2.1 M-word text8 head (3 seeds) and per window by 0.02, at the same speed
    (benchmarks/results/cbow_text8head_seeds).  Skip-gram/HS at 256 trailed gensim's WS-353 on
    the head by 0.033 (3 seeds) and at 32 is level, at 256's speed on the head and 7-15 % slower
    on 17 M words; per pair its threads fight over the tree's top rows, which a batch of 32
    writes once (benchmarks/results/sghs_text8head_batch)."""
    t, m = cfg.train, cfg.model
    if t.batch_size is not None or (m.model == "skipgram" and cfg.windows):
        return cfg
    if not (m.loss == "ns" or (m.loss == "hs" and m.model == "skipgram")):
        return cfg
    batch = 1 if m.loss == "ns" else HS_KERNEL_BATCH
    per_call = t.steps_per_call * cfg.cpu_batch_size // batch
    return dataclasses.replace(cfg, train=dataclasses.replace(t, batch_size=batch, steps_per_call=per_call))


def check_memory(cfg: Config, rows: dict, devices, shard_tables: bool, block_tokens: int = 0) -> None:
    """Refuse, in one line and before anything is allocated, tables that cannot fit a device's
    memory (where the device reports it: GPUs and TPUs), or on CPU the host's, which holds the
    tables, a copy for each checkpoint save and one for the export, and, with ``block_tokens``
    (the largest block of the host stream), what the host stream holds (:func:`stream_bytes`)."""
    _check_host_memory(cfg, rows, devices, block_tokens)
    try:
        limit = (devices[0].memory_stats() or {}).get("bytes_limit")
    except Exception:  # noqa: BLE001 - a backend without memory stats
        limit = None
    if not limit:
        return
    need = sum(rows.values()) * cfg.model.dim * 4 / (len(devices) if shard_tables else 1)
    if need > 0.9 * limit:
        raise ConfigError(
            f"the two tables need {need / 2**30:.1f} GiB per device ({rows['emb_in']:,} words x dim "
            f"{cfg.model.dim}), more than the {getattr(devices[0], 'device_kind', 'device')}'s "
            f"{limit / 2**30:.1f} GiB; use --shard-tables over more devices, a smaller --dim or --max-vocab")


def stream_bytes(cfg: Config, block_tokens: int) -> tuple[int, int]:
    """``(block, batch)``: the host memory of the host stream's examples of one block of
    ``block_tokens`` tokens at its peak (:func:`w2vjax.stream.block_examples`: index arrays
    ``[tokens, 2 * window]``, measured with tracemalloc at about 35 bytes a slot, and ~30 bytes
    per noise word of a skip-gram pair, of which a center has ~window + 1), and of one call's
    batch ``[steps_per_call, batch_size]`` (a window example holds ``2 * window`` ids and mask)."""
    from ..config import SAMPLED
    w, neg = cfg.data.window, (cfg.model.negative if cfg.model.loss in SAMPLED else 0)
    block = block_tokens * 2 * w * 35
    if cfg.windows:
        example = 2 * w * 8 + 8 + 4 * neg
        block += block_tokens * 30 * neg
    else:
        example = 12 + 4 * neg
        block += block_tokens * (w + 1) * 30 * neg
    return block, cfg.train.steps_per_call * cfg.batch_size * example


def _check_host_memory(cfg: Config, rows: dict, devices, block_tokens: int = 0) -> None:
    try:
        host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if not devices or getattr(devices[0], "platform", None) != "cpu":
        return
    copies = 3
    tables = copies * sum(rows.values()) * cfg.model.dim * 4
    if tables > 0.9 * host:
        raise ConfigError(
            f"the two tables ({rows['emb_in']:,} words x dim {cfg.model.dim}) need about {tables / 2**30:.1f} GiB "
            f"of host memory ({copies} copies: training, checkpoint saves, export), more than this machine's "
            f"{host / 2**30:.1f} GiB; use a smaller --dim or --max-vocab")
    if not block_tokens:
        return
    block, batch = stream_bytes(cfg, block_tokens)
    batches = cfg.train.prefetch + 4  # the queue, the one being packed (parts, joined, padded), the one in the step
    need = tables + block + batches * batch
    if need > 0.9 * host:
        t = cfg.train
        raise ConfigError(
            f"--window {cfg.data.window} needs about {need / 2**30:.1f} GiB of host memory, more than this machine's "
            f"{host / 2**30:.1f} GiB: a block of {block_tokens:,} words makes {block / 2**30:.1f} GiB of examples, "
            f"{batches} batches of --batch-size {cfg.batch_size} x --steps-per-call {t.steps_per_call} take "
            f"{batches * batch / 2**30:.1f} GiB, the tables {tables / 2**30:.1f} GiB; use a smaller --window "
            "(or --batch-size, --steps-per-call, --prefetch)")


def make_run(engine: Engine, cfg: Config, tables, schedule, layout=None):
    """The engine's whole-call function ``(params, opt_state, step, key, batch) -> (params,
    opt_state, step, metrics)``, traced inside :func:`w2vjax.step.make_train_step`'s jit."""
    shards = layout.data_shards if layout is not None else 1
    if engine.name == "pallas":
        from . import pallas_gpu
        return pallas_gpu.make_run(cfg, tables, schedule, interpret=engine.interpret, emulate=engine.emulate,
                                   data_shards=shards)
    if engine.name == "cpu_kernel":
        from . import cpu_kernel
        if layout is not None and not layout.plain:
            raise ValueError("the CPU kernel runs on one device")
        return cpu_kernel.make_run(cfg, tables, schedule, engine.threads, shards)
    if layout is not None and not layout.plain:
        from . import mesh
        return mesh.make_run(cfg, tables, schedule, layout, sort_ids=engine.sort_ids)
    from . import xla
    return xla.make_run(cfg, tables, schedule, data_shards=shards, sort_ids=engine.sort_ids)


def cpu_kernel_engine(threads: int = 1) -> Engine:
    """The CPU kernel on ``threads`` threads, for tests and benchmarks that build a step directly."""
    return Engine("cpu_kernel", "asked for", False, threads)


__all__ = ["Engine", "check_memory", "choose", "cpu_kernel_engine", "make_run", "stream_bytes"]
