"""Run configuration: frozen dataclasses, validated in one place.

Defaults follow word2vec.c (``-cbow 1 -size 100 -window 5 -negative 5 -hs 0
-sample 1e-3 -min-count 5 -iter 5``; ``-alpha`` 0.05 for CBOW and 0.025 for
skip-gram).  Durations given in epochs and words are turned into steps in
:func:`steps_per_epoch`-style helpers of the trainer, never here.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Optional

MODELS = ("skipgram", "cbow")
# Train settings that change how a run is carried out but not what it computes.
RUNTIME_FIELDS = ("log_every_s", "prefetch", "checkpoint_every", "checkpoint_minutes", "keep", "eval_every",
                  "devices", "shard_tables", "cpu_kernel", "threads", "hogwild")
LOSSES = ("ns", "hs", "softmax")
ROW_CAP = 16.0  # the row-update cap at 256 examples per update (Config.row_cap)


class ConfigError(ValueError):
    """An impossible or inconsistent setting; the message says which and why."""


@dataclasses.dataclass(frozen=True)
class DataConfig:
    min_count: int = 5
    max_vocab: Optional[int] = None  # keep only the most frequent N words
    max_sentence_length: int = 10000  # long lines are cut into chunks of this many in-vocab words
    sample: float = 1e-3  # subsampling threshold t; 0 disables
    window: int = 5
    noise_exponent: float = 0.75


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    model: str = "cbow"
    loss: str = "ns"
    dim: int = 100
    negative: int = 5
    cbow_mean: bool = True  # CBOW input vector: mean (True) or sum (False) of the context vectors
    shared_negatives: bool = False  # skip-gram NS: one set of negatives per center window (faster)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    epochs: int = 5
    lr: Optional[float] = None  # None: 0.05 for CBOW, 0.025 for skip-gram (word2vec.c)
    min_lr_ratio: float = 1e-4  # word2vec.c floors the rate at lr * 1e-4
    batch_size: Optional[int] = None  # examples per update; None: 256 (48 windows for shared negatives), 16x on GPU/TPU
    steps_per_call: int = 128  # updates run inside one jitted call (lax.scan)
    seed: int = 1
    log_every_s: float = 2.0  # seconds between metrics.jsonl lines / progress refreshes
    prefetch: int = 4  # batches the host streamer keeps ready
    # a row's summed update per step counts at most this many examples; 0 = off; None: by batch size
    # (Config.row_cap: 16 at 256, 40 at 4096, 64 at 16384)
    row_update_cap: Optional[float] = None
    softmax_chunk: int = 0  # vocab chunk for full softmax's logsumexp; 0 = automatic
    checkpoint_every: int = 0  # save every N updates (0: off); also at each epoch end and at the end
    checkpoint_minutes: float = 10.0  # and every M minutes (0: off)
    keep: int = 3  # checkpoints kept
    devices: Optional[int] = None  # devices per process used for data parallelism; None: all local ones
    shard_tables: bool = False  # shard the tables by rows over the devices (vocabularies too big for one)
    data_shards: int = 0  # streams the corpus is split into (one or more per process); 0: one per process
    eval_every: float = 0.0  # evaluate (analogies, WS-353, SimLex) every this many epochs into metrics.jsonl; 0: off
    # draw the noise words and count the row-update cap's touches on the host (prefetch thread)
    # instead of on the device; None: on CPU only (there, end to end: sg-ns +35-40 %, cbow-ns
    # +25-78 %, sg-hs +12 % words/s, see README; an accelerator does both faster than a host
    # core could feed it)
    host_prep: Optional[bool] = None
    # make the examples on the device from rows of raw token ids (w2vjax.windows) instead of in
    # the host stream; None: on accelerators (unless data_shards > 1), where a host core cannot feed the
    # device; CPU keeps the host stream, which wastes no compute on empty slots
    device_windows: Optional[bool] = None
    # run the negative-sampling / hierarchical-softmax update as the fused C++ kernel
    # (w2vjax.kernel) on a one-device CPU run with the host stream; None: there, when it builds
    cpu_kernel: Optional[bool] = None
    threads: int = 0  # the CPU kernel's threads; 0: the cores this process may use
    # several kernel threads: True/None, Hogwild (each runs its own micro-batches, no locks, as
    # word2vec.c's and gensim's threads do; the result depends on their timing); False: they
    # share each micro-batch by rows (the same result for a thread count, slower)
    hogwild: Optional[bool] = None


@dataclasses.dataclass(frozen=True)
class Config:
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()

    @property
    def lr(self) -> float:
        if self.train.lr is not None:
            return self.train.lr
        return 0.05 if self.model.model == "cbow" else 0.025

    @property
    def windows(self) -> bool:
        """Whether examples are center windows ``[2W]`` (CBOW; skip-gram with shared
        negatives, where a center's output rows are gathered once for all its contexts) or
        skip-gram (context, center) pairs."""
        m = self.model
        return m.model == "cbow" or (m.loss == "ns" and m.shared_negatives)

    @property
    def batch_size(self) -> int:
        return self.train.batch_size if self.train.batch_size is not None else self.cpu_batch_size

    @property
    def cpu_batch_size(self) -> int:
        """The default batch on CPU: 256 examples; 48 skip-gram center windows (with shared
        negatives), since a window holds ~2 * mean(b) = 6 (context, center) pairs at window 5."""
        return 48 if (self.model.model == "skipgram" and self.windows) else 256

    @property
    def row_cap(self) -> float:
        """The row-update cap (see :func:`w2vjax.step.cap_row_updates`): ``row_update_cap``, or
        by default ``16 * (batch / 256) ** (1/3)``: 16 at 256 examples per update, 40 at 4096, 64
        at 16384, 102 at 65536 (skip-gram center windows: ``batch / 48``, the same pairs).  The
        best of the caps tried at each batch size (16.9 M words, 1 epoch, skip-gram/NS, analogy
        %: 256: 15.37 at 16 vs 14.99 at 64; 4096: 16.25 at 40 vs
        15.10 at 16 and 15.83 at 64; 16384: 15.75 at 64 vs 9.48 at 16 and 13.57 at 256, diverging
        without a cap; 65536: 13.70 at 128 vs 11.02 at 64, diverging at 256; see
        ``benchmarks/results/row_cap_vs_batch.md``).  A larger batch sums more updates of a
        frequent row, so it needs a larger cap to let that row learn, but not so large that
        the stale sum overshoots."""
        if self.train.row_update_cap is not None:
            return float(self.train.row_update_cap)
        return ROW_CAP * max(1.0, self.batch_size / self.cpu_batch_size) ** (1 / 3)

    def for_platform(self, platform: str) -> "Config":
        """This config with the defaults that depend on the backend filled in.

        On an accelerator an update of 256 examples is a few microseconds of work behind a
        dozen kernel launches, so the default batch is 16x larger there: 4096 examples (768
        center windows with shared negatives).  With the row cap that grows with it
        (:attr:`row_cap`, 40) it kept quality in our CPU check (16.9 M words, 1 epoch, analogy % /
        WS-353: skip-gram/NS 16.25 / 0.532 against 15.37 / 0.512 at 256; skip-gram/HS 22.05 /
        0.634 against gensim's 22.20 / 0.601; see ``benchmarks/results/accelerator_defaults_quality.md``);
        16384 did too (15.75 / 0.533).  An explicit batch size is kept; CPU keeps 256.
        """
        if platform == "cpu" or self.train.batch_size is not None:
            return self
        return dataclasses.replace(self, train=dataclasses.replace(self.train, batch_size=16 * self.batch_size))

    def validate(self) -> "Config":
        d, m, t = self.data, self.model, self.train
        checks = [
            (m.model in MODELS, f"--model must be one of {', '.join(MODELS)}, got {m.model!r}"),
            (m.loss in LOSSES, f"--loss must be one of {', '.join(LOSSES)}, got {m.loss!r}"),
            (m.dim >= 1, f"--dim must be at least 1, got {m.dim}"),
            (d.window >= 1, f"--window must be at least 1, got {d.window}"),
            (m.loss != "ns" or m.negative >= 1,
             f"--negative must be at least 1 with --loss ns, got {m.negative}"),
            (m.negative >= 0, f"--negative must not be negative, got {m.negative}"),
            (not m.shared_negatives or (m.model == "skipgram" and m.loss == "ns"),
             "--shared-negatives applies to --model skipgram --loss ns only"),
            (d.min_count >= 1, f"--min-count must be at least 1, got {d.min_count}"),
            (d.max_vocab is None or d.max_vocab >= 2,
             f"--max-vocab must be at least 2, got {d.max_vocab}"),
            (d.max_sentence_length >= 2,
             f"--max-sentence-length must be at least 2, got {d.max_sentence_length}"),
            (d.sample >= 0, f"--sample must be >= 0 (0 disables subsampling), got {d.sample}"),
            (d.noise_exponent >= 0, f"--noise-exponent must be >= 0, got {d.noise_exponent}"),
            (t.epochs >= 1, f"--epochs must be at least 1, got {t.epochs}"),
            (self.lr > 0, f"--lr must be positive, got {self.lr}"),
            (0 < t.min_lr_ratio <= 1, f"min_lr_ratio must be in (0, 1], got {t.min_lr_ratio}"),
            (t.batch_size is None or t.batch_size >= 1, f"--batch-size must be at least 1, got {t.batch_size}"),
            (t.steps_per_call >= 1, f"--steps-per-call must be at least 1, got {t.steps_per_call}"),
            (t.prefetch >= 1, f"prefetch must be at least 1, got {t.prefetch}"),
            (t.row_update_cap is None or t.row_update_cap >= 0,
             f"--row-update-cap must be >= 0, got {t.row_update_cap}"),
            (t.checkpoint_every >= 0, f"--checkpoint-every must be >= 0, got {t.checkpoint_every}"),
            (t.checkpoint_minutes >= 0, f"--checkpoint-minutes must be >= 0, got {t.checkpoint_minutes}"),
            (t.keep >= 1, f"--keep must be at least 1, got {t.keep}"),
            (t.devices is None or t.devices >= 1, f"--devices must be at least 1, got {t.devices}"),
            (t.data_shards >= 0, f"--data-shards must be >= 0 (0: one per process), got {t.data_shards}"),
            (not t.shard_tables or m.loss != "softmax",
             "--shard-tables cannot be used with --loss softmax (it reads every output row)"),
            (t.eval_every >= 0, f"--eval-every must be >= 0 epochs (0: off), got {t.eval_every}"),
            (t.softmax_chunk >= 0, f"softmax_chunk must be >= 0, got {t.softmax_chunk}"),
            (not (t.device_windows and t.host_prep),
             "--device-windows makes the examples on the device; it cannot be used with --host-prep"),
            (t.threads >= 0, f"--threads must be >= 0 (0: the cores available), got {t.threads}"),
            (not t.cpu_kernel or (m.loss in ("ns", "hs") and not m.shared_negatives),
             "--cpu-kernel runs negative sampling and hierarchical softmax (not --shared-negatives)"),
            (not t.cpu_kernel or not (t.device_windows or t.host_prep is False),
             "--cpu-kernel takes the host stream's examples (not --device-windows or --no-host-prep)"),
            (not t.device_windows or t.data_shards <= 1,
             "--device-windows deals one stream's rows to every device and process; "
             "it cannot be used with --data-shards above 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        """The settings that determine the trained vectors (what a resumed run must share)."""
        d = self.to_dict()
        for k in RUNTIME_FIELDS:
            d["train"].pop(k, None)
        d["train"]["row_update_cap"] = self.row_cap  # the cap in force, given or by default
        return d

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Config":
        try:
            return cls(
                data=DataConfig(**raw.get("data", {})),
                model=ModelConfig(**raw.get("model", {})),
                train=TrainConfig(**raw.get("train", {})),
            )
        except TypeError as e:
            raise ConfigError(f"unknown or malformed config field: {e}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def make_config(**flat: Any) -> Config:
    """Build a validated Config from flat keyword arguments (``dim=100, model='skipgram'``).

    Every field name of the three sections is accepted; ``None`` means "default".
    """
    sections = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
    parts: dict[str, dict[str, Any]] = {name: {} for name in sections}
    owner = {f.name: name for name, klass in sections.items() for f in dataclasses.fields(klass)}
    for key, value in flat.items():
        if key not in owner:
            raise ConfigError(f"unknown setting {key!r}")
        if value is not None or key in ("max_vocab", "lr", "devices"):
            parts[owner[key]][key] = value
    return Config(**{name: sections[name](**kw) for name, kw in parts.items()}).validate()
