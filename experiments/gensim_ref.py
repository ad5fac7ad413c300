"""The one gensim runner: gensim's Word2Vec at w2vjax's settings, used by ``benchmarks/quality.py``
and by the studies' ``gensim`` variants (``experiments/running.py``).

Learning rate.  gensim's default ``alpha`` is 0.025 for both models, word2vec.c's (and w2vjax's)
0.05 for CBOW and 0.025 for skip-gram; a CBOW comparison at unequal rates measures the rate.  So
``alphas(model, rule="same")``, the default everywhere, gives gensim w2vjax's rate and floor
(``lr``, ``lr * min_lr_ratio``); ``rule="default"`` gives gensim's own defaults, for a separate,
labelled row (tool ``gensim-default``).  Every record says which rate it ran at.
"""

from __future__ import annotations

import inspect
import os
import time
import zipfile
from typing import Optional

ALPHA_RULES = ("same", "default")  # w2vjax's rate / gensim's own default
LABEL = {"same": "w2vjax's", "default": "gensim's default"}


def text_file(corpus: str, tmp: str) -> str:
    """gensim reads plain text: unpack a one-member zip once into ``tmp``."""
    if not corpus.endswith(".zip"):
        return corpus
    with zipfile.ZipFile(corpus) as z:
        name = z.namelist()[0]
        out = os.path.join(tmp, os.path.basename(name) + ".txt")
        if not os.path.exists(out):
            with z.open(name) as src, open(out + ".tmp", "wb") as dst:
                while chunk := src.read(1 << 24):
                    dst.write(chunk)
            os.replace(out + ".tmp", out)
    return out


def alphas(model: str, lr: Optional[float] = None, rule: str = "same") -> dict:
    """The learning rate gensim runs at: ``{"alpha", "min_alpha", "lr_rule"}``.

    ``same``: w2vjax's (``lr``, else w2vjax's default for ``model``) and its floor ``lr * 1e-4``;
    ``default``: gensim's own ``alpha`` / ``min_alpha`` (read from gensim, 0.025 / 0.0001 in 4.x).
    """
    if rule not in ALPHA_RULES:
        raise ValueError(f"alpha rule must be one of {', '.join(ALPHA_RULES)}, got {rule!r}")
    if rule == "default":
        from gensim.models import Word2Vec
        p = inspect.signature(Word2Vec.__init__).parameters
        return {"alpha": p["alpha"].default, "min_alpha": p["min_alpha"].default, "lr_rule": LABEL[rule]}
    from w2vjax import make_config
    cfg = make_config(model=model, lr=lr)
    return {"alpha": cfg.lr, "min_alpha": cfg.lr * cfg.train.min_lr_ratio, "lr_rule": LABEL[rule]}


def run_gensim(text: str, model: str, loss: str, workdir: str, *, dim: int, window: int, min_count: int,
               sample: float, negative: int, workers: int, seed: int, epochs: int, lr: Optional[float] = None,
               alpha_rule: str = "same", ns_exponent: Optional[float] = None) -> dict:
    """Train gensim on the plain-text file ``text`` and save ``workdir/vectors.bin``.

    ``lr``/``alpha_rule``: see :func:`alphas`; ``ns_exponent`` None: gensim's (0.75).  Returns the
    record both callers report: tool, seconds, raw and effective words/s, vocabulary size, the
    vectors' path and the learning rate.
    """
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence
    rate = alphas(model, lr, alpha_rule)
    t0 = time.time()
    sentences = LineSentence(text, max_sentence_length=10000)
    extra = {} if ns_exponent is None else {"ns_exponent": ns_exponent}
    m = Word2Vec(vector_size=dim, window=window, min_count=min_count, sample=sample, sg=int(model == "skipgram"),
                 hs=int(loss == "hs"), negative=negative if loss == "ns" else 0, workers=workers, seed=seed,
                 epochs=epochs, alpha=rate["alpha"], min_alpha=rate["min_alpha"], **extra)
    m.build_vocab(sentences)
    t1 = time.time()
    effective, _ = m.train(sentences, total_examples=m.corpus_count, epochs=epochs)
    train_s = time.time() - t1
    in_vocab = sum(m.wv.get_vecattr(w, "count") for w in m.wv.index_to_key)
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "vectors.bin")
    m.wv.save_word2vec_format(path, binary=True)
    rule = "" if alpha_rule == "same" else ", its default lr"
    return {"tool": f"gensim {__import__('gensim').__version__} ({workers} workers{rule})",
            "train_seconds": train_s, "raw_words_per_s": in_vocab * epochs / train_s,
            "effective_words_per_s": effective / train_s, "vocab_size": len(m.wv),
            "vectors": path, "startup_seconds": t1 - t0, **rate}
