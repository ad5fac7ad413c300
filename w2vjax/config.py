"""Run configuration: frozen dataclasses, validated in one place.

Every field carries its help text (``metadata["help"]``); the command line is generated from
these fields (:mod:`w2vjax.cli`), so a setting is declared once.  Defaults follow word2vec.c
(``-cbow 1 -size 100 -window 5 -negative 5 -hs 0 -sample 1e-3 -min-count 5 -iter 5``;
``-alpha`` 0.05 for CBOW and 0.025 for skip-gram).  Durations given in epochs and words are
turned into steps by the trainer, never here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
from typing import Any, Optional

MODELS = ("skipgram", "cbow")
LOSSES = ("ns", "hs", "softmax", "nce", "sampled-softmax")
# The losses that draw k = --negative noise words from the unigram^exponent table.
SAMPLED = ("ns", "nce", "sampled-softmax")
ROW_CAP = 16.0  # the row-update cap at 256 examples per update (Config.row_cap)
GPU_SKIPGRAM_NS_BATCH = 16384  # skip-gram/NS pairs per update on a GPU by default (Config.for_platform)
# Settings since removed, and why: from_dict drops them from old config.json files, make_config says so.
REMOVED_FIELDS = {"train": {
    "host_prep": "the host stream always draws the noise words (the XLA engine counts row touches on the device)",
    "hogwild": "several CPU kernel threads always run Hogwild; --threads 1 gives the same vectors on every run",
}}
# Settings added since, with the value a config.json written before them had in effect.
ADDED_FIELDS = {"train": {"init_scale": 0.5}}  # word2vec.c's range, the only one before


class ConfigError(ValueError):
    """An impossible or inconsistent setting; the message says which and why."""


def setting(default: Any, help: str, *, flag: Optional[str] = None, choices: Optional[tuple] = None,
            runtime: bool = False, default_help: Optional[str] = None, group: Optional[str] = None):
    """A config field with its command-line description.

    ``help``: what the setting does (``--help`` adds the default).  ``flag``: the option's
    spelling when not ``--kebab-name`` (a bool defaulting to True is then a flag that turns it
    off).  ``runtime``: it changes how a run is carried out, not what it computes, so a resumed
    run may change it.  ``default_help``: the default as ``--help`` shows it (what None means).
    ``group``: the ``--help`` section, when not the dataclass's.
    """
    meta = {"help": help, "flag": flag, "choices": choices, "runtime": runtime,
            "default_help": default_help, "group": group}
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Corpus and vocabulary."""

    min_count: int = setting(5, "words seen fewer times are left out of the vocabulary")
    max_vocab: Optional[int] = setting(None, "keep only the N most frequent words", default_help="no limit")
    max_sentence_length: int = setting(
        10000, "longer lines are cut into chunks of this many in-vocabulary words")
    sample: float = setting(1e-3, "subsampling threshold t for frequent words (word2vec.c's -sample); 0 disables")
    window: int = setting(5, "context words on each side of the center, at most (word2vec.c's -window)")
    noise_exponent: float = setting(0.75, "noise distribution: the unigram counts raised to this power")
    read_vocab: Optional[str] = setting(
        None, "take the vocabulary from FILE (word2vec.c's -read-vocab: one 'word count' a line) instead of "
        "counting the corpus; its counts drive subsampling, the noise words and the Huffman tree, "
        "--min-count and --max-vocab still apply, corpus words not in it are dropped", default_help="count the corpus")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture and loss."""

    model: str = setting("cbow", "cbow: predict the center from its context; skipgram: predict each "
                         "context word from the center", choices=MODELS)
    loss: str = setting("ns", "ns: negative sampling; hs: hierarchical softmax (Huffman tree); "
                        "softmax: full softmax (small vocabularies); nce: noise-contrastive estimation; "
                        "sampled-softmax: softmax over the true word and --negative samples", choices=LOSSES)
    dim: int = setting(100, "vector dimension")
    negative: int = setting(5, "noise words per positive example (k of --loss ns, nce, sampled-softmax)")
    cbow_mean: bool = setting(True, "CBOW: the input is the sum of the context vectors, not their mean",
                              flag="--cbow-sum", default_help="off, the mean")
    cbow_exact_grad: bool = setting(
        False, "CBOW: context rows get the exact gradient of the mean/sum (Rong 2014) instead of "
        "word2vec.c's update (which adds the full dL/dh to every context row with the mean)")
    shared_negatives: bool = setting(
        False, "skip-gram/ns: one set of negatives per center window, shared by its context words "
        "(BlazingText's and FULL-W2V's layout); run by the XLA engine, not the CPU kernel")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation, checkpoints and how the run is carried out."""

    epochs: int = setting(5, "passes over the corpus")
    lr: Optional[float] = setting(None, "initial learning rate, decayed linearly over the run",
                                  default_help="by model: 0.05 for CBOW, 0.025 for skip-gram, as word2vec.c")
    min_lr_ratio: float = setting(1e-4, "the rate's floor as a fraction of --lr (word2vec.c's)")
    batch_size: Optional[int] = setting(
        None, "examples per update",
        default_help="256 on CPU (negative sampling on the CPU kernel: 1, with 256x --steps-per-call "
        "updates a call), 48 center windows with --shared-negatives; 16x that on GPU/TPU (CBOW 4x; skip-gram/NS pairs on a GPU: 16384)")
    steps_per_call: int = setting(128, "updates run inside one jitted call (lax.scan)")
    seed: int = setting(1, "random seed (initial vectors, subsampling, windows, noise words)")
    init_scale: float = setting(
        1.0, "input vectors start uniform in [-S/dim, S/dim]: 1 as gensim 4 and fastText, 0.5 as word2vec.c "
        "(output vectors start at zero)")
    init_vectors: Optional[str] = setting(
        None, "warm start: the input rows of words in FILE (word2vec text or binary format, of --dim "
        "numbers) start from its vectors, the others from the usual random init (fastText's "
        "-pretrainedVectors); a resume takes the checkpoint's state instead", default_help="random init")
    save_vocab: Optional[str] = setting(
        None, "also write the vocabulary (after --min-count and --max-vocab) to FILE in word2vec.c's "
        "-save-vocab format, for --read-vocab", runtime=True, default_help="only vocab.txt in --workdir",
        group="data")
    log_every_s: float = setting(2.0, "seconds between metrics.jsonl lines and progress refreshes", runtime=True)
    prefetch: int = setting(4, "batches the host stream keeps ready", runtime=True)
    row_update_cap: Optional[float] = setting(
        None, "a row touched m times in one update gets its summed update scaled by 1/max(1, m/CAP), "
        "so a frequent row's stale sum cannot overshoot; 0 turns it off",
        default_help="16 * (batch / 256) ** (1/3): 16 at 256, 40 at 4096")
    softmax_chunk: int = setting(0, "vocabulary chunk of full softmax's logsumexp; 0: automatic")
    checkpoint_every: int = setting(
        0, "save a checkpoint every N updates (0: off); also every --checkpoint-minutes, at each epoch end, "
        "on SIGINT/SIGTERM and at the end; rerunning resumes from the latest", runtime=True)
    checkpoint_minutes: float = setting(10.0, "also save every M minutes (0: off)", runtime=True)
    keep: int = setting(3, "checkpoints kept", runtime=True)
    keep_after: str = setting("all", "after a successful run keep all checkpoints, only the final one, or none "
                              "(none: more --epochs then starts over)", choices=("all", "final", "none"),
                              runtime=True)
    devices: Optional[int] = setting(None, "devices per process to split each batch over", runtime=True,
                                     default_help="all local ones", group="devices")
    shard_tables: bool = setting(False, "shard both tables by rows over the devices, for vocabularies "
                                 "too big for one", runtime=True, group="devices")
    data_shards: int = setting(
        0, "contiguous corpus parts streamed side by side, a multiple of the processes (0: one per "
        "process); fixes the data order whatever the process count", group="devices")
    eval_every: float = setting(
        0.0, "also evaluate (analogies, WS-353, SimLex) every this many epochs into metrics.jsonl (0: off)",
        runtime=True)
    device_windows: Optional[bool] = setting(
        None, "send raw token ids and make the examples (subsampling, windows, noise words) on the device "
        "instead of in the host stream", default_help="on GPU/TPU unless --data-shards is above 1")
    cpu_kernel: Optional[bool] = setting(
        None, "run the negative-sampling / hierarchical-softmax update as the fused C++ kernel "
        "on the host stream's examples", runtime=True,
        default_help="on a one-device CPU run, when it builds")
    pallas: bool = setting(
        False, "skip-gram or CBOW, NS/HS, on one device: the fused Pallas (Triton) GPU kernel instead of the XLA "
        "update (Hogwild within a micro-batch; compiled for an H200 but not yet timed on one, see "
        "benchmarks/results/pallas_compile.md); on CPU its update runs emulated in XLA, programs in step as on a GPU")
    threads: int = setting(0, "CPU kernel threads (0: the cores this process may use); several run Hogwild, "
                           "1 gives the same vectors on every run", runtime=True)
    save_output: bool = setting(
        False, "also write the output vectors (word2vec.c's syn1neg for ns/nce/sampled-softmax, the "
        "full softmax's output rows) as vectors_out.txt/.bin; skipped for hs, whose output rows are "
        "inner nodes of the Huffman tree, not words", runtime=True)


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
# Settings naming files; make_config stores them as absolute paths (a resume from another folder is the same run).
PATH_FIELDS = ("read_vocab", "init_vectors", "save_vocab")
# Train settings that change how a run is carried out but not what it computes.
RUNTIME_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata["runtime"])


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
        negatives) or skip-gram (context, center) pairs."""
        m = self.model
        return m.model == "cbow" or (m.loss == "ns" and m.shared_negatives)

    @property
    def batch_size(self) -> int:
        return self.train.batch_size if self.train.batch_size is not None else self.cpu_batch_size

    @property
    def cpu_batch_size(self) -> int:
        """The default batch on CPU: 256 examples, or 48 skip-gram center windows (shared
        negatives): a window holds ~2 * mean(b) = 6 pairs at window 5, so about as many pairs."""
        return 48 if (self.model.model == "skipgram" and self.windows) else 256

    @property
    def row_cap(self) -> float:
        """The row-update cap (:func:`w2vjax.step.cap_row_updates`): ``row_update_cap``, or by
        default ``16 * (batch / 256) ** (1/3)`` (skip-gram center windows: ``batch / 48``).  A larger
        batch sums more updates of a frequent row, so it needs a larger cap to let that row learn,
        but not one so large that the stale sum overshoots; see
        ``benchmarks/results/row_cap_vs_batch.md``."""
        if self.train.row_update_cap is not None:
            return float(self.train.row_update_cap)
        return ROW_CAP * max(1.0, self.batch_size / self.cpu_batch_size) ** (1 / 3)

    def for_platform(self, platform: str) -> "Config":
        """This config with the defaults that depend on the backend filled in.

        An accelerator's update of 256 examples is a few microseconds of work behind a dozen
        kernel launches, so its default batch is 16x larger (the row cap grows with it, see
        :attr:`row_cap`; quality: ``benchmarks/results/accelerator_defaults_quality.md``), and 4x
        for CBOW, whose windows each update ~10 input rows: over 5 epochs 4096 windows lost gensim's
        analogy accuracy and 1024 kept it (``benchmarks/results/enwiki17m_accelerator_batch.md``).
        On a GPU skip-gram/NS pairs take :data:`GPU_SKIPGRAM_NS_BATCH`: by the compiled counts a
        4096-pair micro-step is bound by its kernels' launches far below 50 M raw words/s on an H200
        (``benchmarks/roofline.py``), and 16384 pairs kept gensim's analogy accuracy and WS-353 over
        5 epochs on 17 M words (``benchmarks/results/pallas_quality``); a TPU keeps 4096, since at
        16384 its compiler stages the tables through on-chip memory again.  An explicit batch size
        is kept; CPU keeps 256.
        """
        if platform == "cpu" or self.train.batch_size is not None:
            return self
        m = self.model
        if m.model == "cbow":
            batch = 4 * self.batch_size
        elif platform == "gpu" and m.loss == "ns" and not self.windows:
            batch = GPU_SKIPGRAM_NS_BATCH
        else:
            batch = 16 * self.batch_size
        return dataclasses.replace(self, train=dataclasses.replace(self.train, batch_size=batch))

    def _check_types(self) -> None:
        """Integers are integers (``epochs=1.5`` is refused, not truncated) and numbers finite."""
        for name in SECTIONS:
            for f in dataclasses.fields(getattr(self, name)):
                v, kind, flag = getattr(getattr(self, name), f.name), str(f.type), "--" + f.name.replace("_", "-")
                if v is None or kind not in ("int", "float", "Optional[int]", "Optional[float]"):
                    continue
                if isinstance(v, bool) or not isinstance(v, numbers.Real):
                    raise ConfigError(f"{flag} must be a number, got {v!r}")
                if "int" in kind and not isinstance(v, numbers.Integral):
                    raise ConfigError(f"{flag} must be an integer, got {v!r}")
                if not math.isfinite(v):
                    raise ConfigError(f"{flag} must be a finite number, got {v!r}")

    def validate(self) -> "Config":
        self._check_types()
        d, m, t = self.data, self.model, self.train
        checks = [
            (0 <= t.seed < 2 ** 63, f"--seed must be in [0, 2**63), got {t.seed}"),
            (m.model in MODELS, f"--model must be one of {', '.join(MODELS)}, got {m.model!r}"),
            (m.loss in LOSSES, f"--loss must be one of {', '.join(LOSSES)}, got {m.loss!r}"),
            (m.dim >= 1, f"--dim must be at least 1, got {m.dim}"),
            (d.window >= 1, f"--window must be at least 1, got {d.window}"),
            (m.loss not in SAMPLED or m.negative >= 1,
             f"--negative must be at least 1 with --loss {m.loss}, got {m.negative}"),
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
            (t.init_scale > 0, f"--init-scale must be positive, got {t.init_scale}"),
            (self.lr > 0, f"--lr must be positive, got {self.lr}"),
            (0 < t.min_lr_ratio <= 1, f"--min-lr-ratio must be in (0, 1], got {t.min_lr_ratio}"),
            (t.batch_size is None or t.batch_size >= 1, f"--batch-size must be at least 1, got {t.batch_size}"),
            (t.steps_per_call >= 1, f"--steps-per-call must be at least 1, got {t.steps_per_call}"),
            (t.prefetch >= 1, f"--prefetch must be at least 1, got {t.prefetch}"),
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
            (t.softmax_chunk >= 0, f"--softmax-chunk must be >= 0, got {t.softmax_chunk}"),
            (t.threads >= 0, f"--threads must be >= 0 (0: the cores available), got {t.threads}"),
            (not t.cpu_kernel or (m.loss != "softmax" and not m.shared_negatives),
             "--cpu-kernel runs negative sampling, NCE, sampled softmax and hierarchical softmax "
             "(not the full softmax nor --shared-negatives)"),
            (not t.cpu_kernel or not t.device_windows,
             "--cpu-kernel takes the host stream's examples (not --device-windows)"),
            (not t.pallas or (m.loss in ("ns", "hs") and not m.shared_negatives),
             "--pallas runs skip-gram pairs or CBOW windows with negative sampling or hierarchical softmax "
             "(not --shared-negatives)"),
            (not (t.pallas and t.cpu_kernel), "--pallas and --cpu-kernel are two engines; choose one"),
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
        """A config from :meth:`to_dict`'s form; keys of removed settings (old work dirs) are dropped,
        settings added since take the value such a run had (:data:`ADDED_FIELDS`)."""
        try:
            raw = fill_added(raw)
            parts = {name: {k: v for k, v in raw.get(name, {}).items() if k not in REMOVED_FIELDS.get(name, ())}
                     for name in SECTIONS}
            return cls(**{name: klass(**parts[name]) for name, klass in SECTIONS.items()})
        except AttributeError:  # not {section: {field: value}} (a damaged config.json, say)
            raise ConfigError("malformed config: expected an object of sections of fields") from None
        except TypeError as e:
            raise ConfigError(f"unknown or malformed config field: {e}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def fill_added(sections: Any) -> Any:
    """Saved settings ``{section: {field: value}}`` (a config.json, a checkpoint's identity) with
    the fields added since they were written (:data:`ADDED_FIELDS`) at the value they had then."""
    if not isinstance(sections, dict):
        return sections
    return {**sections, **{name: {**added, **sections[name]} for name, added in ADDED_FIELDS.items()
                           if isinstance(sections.get(name), dict)}}


def make_config(**flat: Any) -> Config:
    """Build a validated Config from flat keyword arguments (``dim=100, model='skipgram'``).

    Every field name of the three sections is accepted; ``None`` means "default".  File
    settings (:data:`PATH_FIELDS`) are stored as absolute paths, so the same run resumed from
    another folder has the same identity.
    """
    parts: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    owner = {f.name: name for name, klass in SECTIONS.items() for f in dataclasses.fields(klass)}
    removed = {k: why for section in REMOVED_FIELDS.values() for k, why in section.items()}
    for key, value in flat.items():
        if key in removed:
            raise ConfigError(f"setting {key!r} (--{key.replace('_', '-')}) was removed: {removed[key]}")
        if key not in owner:
            raise ConfigError(f"unknown setting {key!r}")
        if key in PATH_FIELDS and value is not None:
            if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
                raise ConfigError(f"--{key.replace('_', '-')} must be a file name, got {value!r}")
            value = os.path.abspath(os.fspath(value))
        if value is not None or key in ("max_vocab", "lr", "devices"):
            parts[owner[key]][key] = value
    return Config(**{name: SECTIONS[name](**kw) for name, kw in parts.items()}).validate()
