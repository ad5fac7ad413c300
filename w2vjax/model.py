"""``Word2Vec``: a gensim-style model object over the trainer, and ``KeyedVectors`` queries.

gensim users keep their habits::

    model = w2vjax.Word2Vec(sentences, vector_size=100, window=5, min_count=5, sg=1, epochs=5)
    model.wv.most_similar(positive=["king", "woman"], negative=["man"], topn=5)

Keyword names are gensim's where they mean the same thing (:data:`GENSIM_NAMES`) and
w2vjax's own (:mod:`w2vjax.config`) for the rest.  ``sentences`` (any iterable of token
lists, read once) is written one sentence a line to ``<workdir>/sentences.txt`` as it is
iterated, then prepared like any corpus file, so it is never held in memory as Python strings.
The run is the CLI's: same engine choice (:func:`w2vjax.engines.choose`), same XLA:CPU thread
setting (:func:`w2vjax.sharding.one_xla_cpu_thread`), same work dir files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import weakref
from typing import Any, Iterable, Optional

import numpy as np

from . import export
from .config import Config, ConfigError, make_config

# gensim keyword -> w2vjax setting, for the names that mean the same thing.  ``sg``, ``hs``,
# ``min_alpha`` and ``cbow_mean`` are translated by :func:`settings_from_gensim`.
GENSIM_NAMES = {
    "vector_size": "dim", "window": "window", "min_count": "min_count", "negative": "negative",
    "ns_exponent": "noise_exponent", "sample": "sample", "alpha": "lr", "epochs": "epochs",
    "seed": "seed", "workers": "threads", "max_final_vocab": "max_vocab",
    # gensim prunes its running counts at max_vocab_size; w2vjax counts every word, then keeps
    # the N most frequent: the same cap on the final vocabulary without gensim's pruning error.
    "max_vocab_size": "max_vocab",
}
_UNWRITABLE = re.compile(r"[\s\x00-\x1f\x7f]")  # whitespace, or control bytes that prepare refuses


def settings_from_gensim(**kw: Any) -> dict[str, Any]:
    """w2vjax's flat settings from gensim's keyword names (w2vjax's own names pass through).

    ``sg=1`` -> ``model="skipgram"``; ``hs=1`` -> ``loss="hs"`` (w2vjax trains one loss, so
    ``hs=1`` ignores ``negative``); ``hs=0, negative=0`` is refused (no loss left);
    ``min_alpha`` -> ``min_lr_ratio = min_alpha / alpha``; ``cbow_mean=0`` -> the sum.
    """
    out: dict[str, Any] = {}
    for key, value in kw.items():
        if key in GENSIM_NAMES:
            name = GENSIM_NAMES[key]
            if name in out and out[name] != value:
                raise ConfigError(f"{key}={value!r} conflicts with {name}={out[name]!r}")
            out[name] = value
        elif key not in ("sg", "hs", "min_alpha", "cbow_mean"):
            out[key] = value
    if "sg" in kw:
        out.setdefault("model", "skipgram" if kw["sg"] else "cbow")
    if "cbow_mean" in kw:
        out["cbow_mean"] = bool(kw["cbow_mean"])
    if kw.get("hs"):
        out.setdefault("loss", "hs")
    elif "hs" in kw and kw.get("negative", 5) == 0 and out.get("loss", "ns") == "ns":
        raise ConfigError("hs=0 with negative=0 leaves no loss to train; set hs=1 or negative > 0")
    if kw.get("min_alpha") is not None:
        alpha = out.get("lr") or make_config(**{k: v for k, v in out.items() if k != "min_lr_ratio"}).lr
        out["min_lr_ratio"] = float(kw["min_alpha"]) / float(alpha)
    return out


def write_sentences(sentences: Iterable, path: str) -> int:
    """Write an iterable of token lists to ``path``, one sentence a line (atomically); returns
    the token count.  A token that is not a non-empty string without whitespace or control
    characters is refused."""
    count = [0]

    def lines():
        for i, sentence in enumerate(sentences):
            if isinstance(sentence, str):
                raise ConfigError(f"sentence {i} is a string; sentences must be lists of tokens "
                                  "(e.g. line.split())")
            tokens = list(sentence)
            for t in tokens:
                if not isinstance(t, str) or not t or _UNWRITABLE.search(t):
                    raise ConfigError(f"sentence {i}: token {t!r} is not a non-empty string without whitespace "
                                      "or control characters")
            count[0] += len(tokens)
            yield " ".join(tokens) + "\n"

    export.atomic_write(path, lines())
    return count[0]


def api_threads(devices: Optional[int] = None) -> bool:
    """The CLI's XLA:CPU thread setting for an API run (see :func:`sharding.one_xla_cpu_thread`);
    it takes effect only if JAX has not started its CPU client yet."""
    import jax
    from . import sharding
    return sharding.one_xla_cpu_thread(not jax.distributed.is_initialized(), devices)


class KeyedVectors(export.Vectors):
    """:class:`w2vjax.export.Vectors` with gensim's ``KeyedVectors`` names and queries."""

    @property
    def key_to_index(self) -> dict:
        return self.index

    @property
    def index_to_key(self) -> list:
        return self.words

    @property
    def vector_size(self) -> int:
        return self.dim

    def __getitem__(self, key):
        if isinstance(key, (list, tuple)):
            return np.stack([self.vectors[self._row(k)] for k in key])
        return self.vectors[self._row(key)]

    def has_index_for(self, key) -> bool:
        return key in self.index

    def get_index(self, key) -> int:
        return self._row(key)

    def get_vector(self, key, norm: bool = False) -> np.ndarray:
        return (self.unit if norm else self.vectors)[self._row(key)]

    def get_normed_vectors(self) -> np.ndarray:
        return self.unit

    def similarity(self, w1: str, w2: str) -> float:
        """Cosine similarity of two words."""
        return float(self.unit[self._row(w1)] @ self.unit[self._row(w2)])

    def _terms(self, positive, negative):
        """(vector, weight, row or None) per query term, as gensim reads them: a word or a vector."""
        positive = [positive] if isinstance(positive, (str, np.ndarray)) else list(positive or [])
        negative = [negative] if isinstance(negative, (str, np.ndarray)) else list(negative or [])
        terms = []
        for weight, group in ((1.0, positive), (-1.0, negative)):
            for t in group:
                if isinstance(t, np.ndarray):
                    terms.append((np.asarray(t, np.float32), weight, None))
                else:
                    i = self._row(t)
                    terms.append((self.unit[i], weight, i))
        if not terms:
            raise export.VectorsError("most_similar needs at least one positive or negative word")
        return terms

    def most_similar(self, positive=None, negative=None, topn: int = 10, restrict_vocab: Optional[int] = None,
                     word: Optional[str] = None) -> list:
        """3CosAdd, as gensim's: rank by cosine to the normalised mean of the unit vectors of
        ``positive`` (weight 1) and ``negative`` (weight -1) words, the query words excluded.
        ``most_similar("king")`` is the neighbours of one word.  Returns ``[(word, cosine), ...]``."""
        terms = self._terms(word if word is not None else positive, negative)
        query = np.mean([w * v for v, w, _ in terms], axis=0).astype(np.float32)
        norm = np.linalg.norm(query)
        query = query / norm if norm > 0 else query
        return self._nearest(query, topn, exclude=[i for _, _, i in terms if i is not None],
                             restrict_vocab=restrict_vocab)

    def most_similar_cosmul(self, positive=None, negative=None, topn: int = 10,
                            restrict_vocab: Optional[int] = None) -> list:
        """3CosMul (Levy and Goldberg 2014), as gensim's: the product of ``(1 + cos) / 2`` to the
        positive words over that to the negative words (+1e-6), the query words excluded."""
        terms = self._terms(positive, negative)
        n = len(self) if restrict_vocab is None else max(0, min(int(restrict_vocab), len(self)))
        unit = self.unit[:n]
        num, den = np.ones(n, np.float32), np.ones(n, np.float32)
        for v, w, _ in terms:
            sim = (1 + unit @ v) / 2  # words: unit vectors; given vectors as they are (gensim's)
            if w > 0:
                num *= sim
            else:
                den *= sim
        scores = num / (den + 1e-6)
        excl = [i for _, _, i in terms if i is not None and i < n]
        scores[excl] = -np.inf
        order = export.top_indices(scores, topn)
        return [(self.words[i], float(scores[i])) for i in order if scores[i] > -np.inf]

    def doesnt_match(self, words) -> str:
        """The word furthest from the mean of the others' unit vectors (gensim's rule); words
        outside the vocabulary are ignored."""
        used = [w for w in words if w in self.index]
        if not used:
            raise export.VectorsError("doesnt_match: none of the words is in the vocabulary")
        vecs = self.unit[[self.index[w] for w in used]]
        mean = vecs.mean(axis=0)
        mean = mean / max(np.linalg.norm(mean), 1e-12)
        return min(zip(vecs @ mean, used))[1]

    def save_word2vec_format(self, path: str, binary: bool = False) -> None:
        """word2vec.c's text (or ``binary``) format, which gensim and fastText read."""
        save = export.save_word2vec_binary if binary else export.save_word2vec_text
        save(path, self.words, self.vectors)

    @classmethod
    def load_word2vec_format(cls, path: str, binary: Optional[bool] = None) -> "KeyedVectors":
        """Read word2vec.c's text or binary format (which is sniffed; ``binary`` is ignored)."""
        v = export.load_vectors(path)
        return cls(v.words, v.vectors, v.name)

    def to_gensim(self):
        """A ``gensim.models.KeyedVectors`` holding the same words and vectors (needs gensim)."""
        try:
            from gensim.models import KeyedVectors as GensimKV
        except ImportError:
            raise ImportError("to_gensim() needs gensim: pip install gensim") from None
        kv = GensimKV(self.dim)
        kv.add_vectors(self.words, self.vectors)
        return kv


class Word2Vec:
    """Train word vectors like gensim's ``Word2Vec``, on w2vjax's trainer.

    ``sentences``: an iterable of token lists (streamed to ``<workdir>/sentences.txt``);
    ``corpus_file``: a text file (.gz/.bz2/.zip too), one sentence a line.  With either, the
    model trains at once, as gensim's does.  ``workdir``: where the run's files go; rerunning in
    the same work dir resumes its checkpoints.  Without one the model makes a temporary folder,
    which :meth:`train` keeps using (more epochs continue) and which is deleted by
    :meth:`close`, at the end of a ``with Word2Vec(...) as model:`` block, or when the model is
    garbage-collected (or at the interpreter's exit); ``wv`` is in memory and stays usable.
    ``evaluate`` (default off), ``progress`` (default on) and ``force`` are the CLI's
    ``--no-eval``, ``--quiet`` and ``--force``; every other keyword is a setting, in gensim's
    names (:data:`GENSIM_NAMES`, ``sg``, ``hs``, ``min_alpha``, ``cbow_mean``) or w2vjax's
    (``init_vectors``, ``read_vocab``, ``save_vocab`` too).  Messages go to the ``w2vjax``
    logger, which shows nothing until the application configures logging (as gensim's).
    """

    def __init__(self, sentences: Optional[Iterable] = None, corpus_file: Optional[str] = None, *,
                 workdir: Optional[str] = None, evaluate: bool = False, progress: bool = True,
                 force: bool = False, **settings: Any):
        self.config: Config = make_config(**settings_from_gensim(**settings))
        self.workdir = workdir
        self._cleanup: Optional[weakref.finalize] = None
        self._own_workdir()
        self.evaluate, self.progress, self.force = evaluate, progress, force
        self.wv: Optional[KeyedVectors] = None
        self.summary: Optional[dict] = None
        if sentences is not None or corpus_file is not None:
            self.train(sentences, corpus_file=corpus_file)

    def _own_workdir(self) -> None:
        """A temporary work dir when none was given (again after :meth:`close`), deleted with the model."""
        if self.workdir is None or (self._cleanup is not None and not self._cleanup.alive):
            self.workdir = tempfile.mkdtemp(prefix="w2vjax-")
            # not a method of self: the finalizer must not keep the model alive
            self._cleanup = weakref.finalize(self, shutil.rmtree, self.workdir, ignore_errors=True)

    def close(self) -> None:
        """Delete the temporary work dir (its checkpoints: a later :meth:`train` starts afresh);
        a work dir given by the caller is left as it is.  ``wv`` stays usable."""
        if self._cleanup is not None:
            self._cleanup()

    def __enter__(self) -> "Word2Vec":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        c = self.config
        words = len(self.wv) if self.wv is not None else "untrained"
        return (f"Word2Vec({c.model.model}/{c.model.loss}, vector_size={c.model.dim}, "
                f"window={c.data.window}, vocab={words}, workdir={self.workdir!r})")

    def train(self, sentences: Optional[Iterable] = None, corpus_file: Optional[str] = None, *,
              epochs: Optional[int] = None, **settings: Any) -> dict:
        """Train (or resume) on ``sentences`` or ``corpus_file`` with the model's settings,
        changed by ``epochs`` and ``settings`` (gensim's or w2vjax's names); sets ``wv`` and
        returns the run's summary (also ``self.summary``)."""
        if (sentences is None) == (corpus_file is None):
            raise ConfigError("give either sentences (an iterable of token lists) or corpus_file (a path)")
        if epochs is not None or settings:
            flat = {k: v for sec in self.config.to_dict().values() for k, v in sec.items()}
            flat.update(settings_from_gensim(**settings, **({"epochs": epochs} if epochs is not None else {})))
            self.config = make_config(**flat)
        self._own_workdir()
        os.makedirs(self.workdir, exist_ok=True)
        if sentences is not None:
            corpus_file = os.path.join(self.workdir, "sentences.txt")
            write_sentences(sentences, corpus_file)
        api_threads(self.config.train.devices)
        from .train import train_and_evaluate
        self.summary = train_and_evaluate(self.config, self.workdir, os.fspath(corpus_file),
                                          evaluate=self.evaluate, progress=self.progress,
                                          force=self.force)
        self.wv = KeyedVectors.load_word2vec_format(os.path.join(self.workdir, "vectors.bin"))
        return self.summary

    def to_gensim(self):
        """The vectors as a ``gensim.models.KeyedVectors`` (needs gensim)."""
        return self._trained().to_gensim()

    def _trained(self) -> KeyedVectors:
        if self.wv is None:
            raise ConfigError("the model is not trained yet: call train(sentences or corpus_file=...)")
        return self.wv

    def save(self, path: str) -> None:
        """Save settings, work dir and vectors to ``path`` (a ``.npz``), for :meth:`load` (a
        temporary work dir is deleted with the model: give ``workdir=`` to continue training a
        loaded model)."""
        wv = self._trained()
        meta = {"config": self.config.to_dict(), "workdir": os.path.abspath(self.workdir),
                "summary": {k: v for k, v in (self.summary or {}).items() if not k.startswith("_")}}
        tmp = path + ".tmp.npz"
        np.savez(tmp, vectors=wv.vectors, words=np.array(wv.words, dtype=object).astype(str),
                 meta=np.array(json.dumps(meta)))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str, **kw: Any) -> "Word2Vec":
        """A model saved by :meth:`save`; ``train()`` on it continues in its work dir."""
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            words, vectors = [str(w) for w in z["words"]], z["vectors"]
        model = cls(workdir=meta["workdir"], **kw)
        model.config = Config.from_dict(meta["config"]).validate()
        model.summary = meta["summary"]
        model.wv = KeyedVectors(words, vectors, path)
        return model
