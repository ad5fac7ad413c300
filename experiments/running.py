"""Train one variant of a study (w2vjax or gensim) into its work dir, or find it finished.

Every run lives in ``WORKDIR/<tool>-<model>-<loss>-<hash>``; the hash covers the tool, the
corpus and what determines the vectors (w2vjax: ``Config.identity()`` plus the kernel threads;
gensim: the settings it uses, learning rate included).  So a run requested by two studies (the
knobs' baseline is the objectives' CBOW/NS run and the seeds' seed 1) trains once, a finished run
(``summary.json`` present) is never trained again, and an interrupted w2vjax run resumes from its
checkpoint.  A w2vjax setting added or removed changes ``identity()`` and so every w2vjax key:
runs made before are then not found and train again (there is no back-compatibility list).
The prepared corpus (token ids, vocabulary) is made once per (corpus, min-count, max-vocab,
max-sentence-length) under ``WORKDIR/_prepared`` and hard-linked into each run.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import importlib
import json
import os
import shutil
import time
import types
from typing import Any, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_CORPUS = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "corpora", "enwiki2015_text8style.zip"))
DEFAULT_WORKDIR = os.path.join(HERE, "work")
DEFAULT_RESULTS = os.path.join(HERE, "results")
# gensim at w2vjax's learning rate / at gensim's own default one (see experiments/gensim_ref.py)
GENSIM_TOOLS = {"gensim": "same", "gensim-default": "default"}
TOOLS = ("w2vjax", *GENSIM_TOOLS)
PINNED = {"threads": 1}  # one CPU kernel thread unless a variant says otherwise: a rerun gives the same vectors


@dataclasses.dataclass(frozen=True)
class Variant:
    """One named run of a study.

    ``settings``: flat w2vjax settings (any field of :func:`w2vjax.make_config`).
    ``tool``: ``"w2vjax"``, ``"gensim"`` (gensim at the same settings and learning rate) or
    ``"gensim-default"`` (gensim at its own default learning rate).
    ``group``/``x``: variants sharing a group are one knob's sweep (plotted against ``x``) or,
    in the seeds study, one configuration's seeds (aggregated).
    ``corpus``: a corpus for this variant alone (``--corpus`` overrides it).
    ``skip``: a reason not to run it (too slow here, ...): listed in the table with it, never run.
    """
    settings: dict
    tool: str = "w2vjax"
    group: str = ""
    x: Any = None
    corpus: Optional[str] = None
    skip: str = ""

    def __post_init__(self):
        if self.tool not in TOOLS:
            raise ValueError(f"tool must be one of {', '.join(TOOLS)}, got {self.tool!r}")


def is_smoke(name: str) -> bool:
    return name == "smoke" or name.startswith("smoke-")


def load_study(name: str) -> types.ModuleType:
    from . import STUDIES
    if name not in STUDIES:
        raise SystemExit(f"no study {name!r} (studies: {', '.join(STUDIES)})")
    return importlib.import_module(f"experiments.{name}")


def select(variants: dict, patterns: Optional[str]) -> list[str]:
    """Variant names matching a comma-separated list of names or globs; default: all but smoke."""
    if not patterns:
        return [n for n in variants if not is_smoke(n)]
    names = []
    for pat in patterns.split(","):
        hit = [n for n in variants if fnmatch.fnmatchcase(n, pat.strip())]
        if not hit:
            raise SystemExit(f"no variant matches {pat!r}; variants: {', '.join(variants)}")
        names += [n for n in hit if n not in names]
    return names


def config_of(v: Variant):
    """The w2vjax config a variant trains with (gensim variants: the settings it is given)."""
    from w2vjax import make_config
    return make_config(**{**PINNED, **v.settings})


def gensim_settings(v: Variant) -> dict:
    """What gensim is given for ``v``: the settings it uses, learning rate included."""
    from .gensim_ref import alphas
    cfg = config_of(v)
    if cfg.model.loss == "softmax":
        raise ValueError("gensim has no full softmax")
    rate = alphas(cfg.model.model, cfg.lr, GENSIM_TOOLS[v.tool])
    return {"model": cfg.model.model, "loss": cfg.model.loss, "dim": cfg.model.dim, "window": cfg.data.window,
            "min_count": cfg.data.min_count, "max_vocab": cfg.data.max_vocab, "sample": cfg.data.sample,
            "negative": cfg.model.negative if cfg.model.loss == "ns" else 0,
            "noise_exponent": cfg.data.noise_exponent, "epochs": cfg.train.epochs, "seed": cfg.train.seed,
            "lr": rate["alpha"], "min_lr": rate["min_alpha"]}


def run_lr(v: Variant) -> float:
    """The starting learning rate the variant trains at (gensim-default: gensim's)."""
    return gensim_settings(v)["lr"] if v.tool in GENSIM_TOOLS else config_of(v).lr


def run_key(v: Variant, corpus: str) -> str:
    cfg = config_of(v)
    if v.tool in GENSIM_TOOLS:  # gensim ignores w2vjax-only knobs: key on what it uses
        ident = gensim_settings(v)
    else:  # threads is a runtime field to w2vjax, but Hogwild threads change the vectors
        ident = {**cfg.identity(), "threads": cfg.train.threads}
    st = os.stat(corpus)
    blob = json.dumps({"tool": v.tool, "corpus": os.path.realpath(corpus), "bytes": st.st_size,
                       "config": ident}, sort_keys=True)
    h = hashlib.sha1(blob.encode()).hexdigest()[:10]
    return f"{v.tool}-{cfg.model.model}-{cfg.model.loss}-{h}"


def resolve_corpus(corpus: Optional[str], v: Variant, module) -> str:
    """``--corpus`` if given, else the variant's, else the study's, else the 17 M-word corpus;
    ``"embedded"`` is the 2.1 M-word text8 sample shipped in the package."""
    c = corpus or v.corpus or getattr(module, "CORPUS", None) or DEFAULT_CORPUS
    if c == "embedded":
        from w2vjax.train import default_corpus
        c = default_corpus()
    if not os.path.exists(c):
        raise SystemExit(f"corpus {c!r} not found; pass --corpus PATH")
    return c


def _link_prepared(corpus: str, cfg, workroot: str, workdir: str, log) -> None:
    """Prepare the corpus once per (corpus, min-count, max-vocab) and hard-link it into ``workdir``."""
    from w2vjax import prepare_corpus
    d = cfg.data
    key = hashlib.sha1(json.dumps([os.path.realpath(corpus), d.min_count, d.max_vocab,
                                   d.max_sentence_length]).encode()).hexdigest()[:10]
    cache = os.path.join(workroot, "_prepared", key)
    if not os.path.exists(os.path.join(cache, "data", "prepare.json")):
        log(f"preparing {corpus} into {cache}")
        prepare_corpus(corpus, cache, d.min_count, d.max_vocab, d.max_sentence_length)
    if os.path.exists(os.path.join(workdir, "data", "prepare.json")):
        return
    os.makedirs(os.path.join(workdir, "data"), exist_ok=True)
    for rel in ["vocab.txt"] + [os.path.join("data", f) for f in os.listdir(os.path.join(cache, "data"))]:
        src, dst = os.path.join(cache, rel), os.path.join(workdir, rel)
        if os.path.isfile(src) and not os.path.exists(dst):
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)


def _write_json(path: str, obj) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(path + ".tmp", path)


def _run_gensim(v: Variant, corpus: str, workroot: str, workdir: str) -> dict:
    from w2vjax import evaluate, export
    from .gensim_ref import run_gensim, text_file
    g = gensim_settings(v)
    if g["max_vocab"] is not None:
        raise ValueError("max_vocab is not passed to gensim here")
    textdir = os.path.join(workroot, "_text")
    os.makedirs(textdir, exist_ok=True)
    t0 = time.time()
    rec = run_gensim(text_file(corpus, textdir), g["model"], g["loss"], workdir, dim=g["dim"], window=g["window"],
                     min_count=g["min_count"], sample=g["sample"], negative=g["negative"], workers=2,
                     seed=g["seed"], epochs=g["epochs"], lr=config_of(v).lr, alpha_rule=GENSIM_TOOLS[v.tool],
                     ns_exponent=g["noise_exponent"])
    summary = {k: rec[k] for k in ("tool", "train_seconds", "raw_words_per_s", "effective_words_per_s",
                                   "vocab_size", "alpha", "min_alpha", "lr_rule")}
    summary.update(model=g["model"], loss=g["loss"], epochs=g["epochs"], settings=g,
                   eval=evaluate.evaluate_all(export.load_vectors(rec["vectors"])), total_seconds=time.time() - t0)
    _write_json(os.path.join(workdir, "summary.json"), summary)
    return summary


def run_variant(name: str, v: Variant, corpus: str, workroot: str, log=print) -> tuple[str, str]:
    """Train (or resume, or find finished) one variant; returns (``"ran"`` or ``"done"``, work dir)."""
    workdir = os.path.join(workroot, run_key(v, corpus))
    if os.path.exists(os.path.join(workdir, "summary.json")):
        return "done", workdir
    os.makedirs(workdir, exist_ok=True)
    _write_json(os.path.join(workdir, "variant.json"),
                {"name": name, "tool": v.tool, "settings": v.settings, "corpus": corpus})
    t0 = time.time()
    log(f"[{time.strftime('%H:%M:%S')}] {name}: {v.tool} {v.settings} -> {workdir}")
    if v.tool in GENSIM_TOOLS:
        _run_gensim(v, corpus, workroot, workdir)
    else:
        from w2vjax import make_config
        from w2vjax.train import train_and_evaluate
        cfg = make_config(**{**PINNED, **v.settings, "keep": 1})  # resuming needs only the latest checkpoint
        _link_prepared(corpus, cfg, workroot, workdir, log)
        train_and_evaluate(cfg, workdir, corpus, evaluate=True, progress=False)
    log(f"[{time.strftime('%H:%M:%S')}] {name}: finished in {time.time() - t0:.0f} s")
    return "ran", workdir
