"""w2vjax: word2vec (skip-gram and CBOW; negative sampling, hierarchical and full softmax) in JAX."""

import time as _time

_IMPORTED_AT = _time.time()  # where a run's wall-time breakdown starts (train.imported_at)

import logging as _logging  # noqa: E402
import os  # noqa: E402

# Messages go to the "w2vjax" logger hierarchy; a library leaves showing them to the application
# (logging.basicConfig(level=logging.INFO) shows them, as with gensim); the CLI prints them.
_logging.getLogger(__name__).addHandler(_logging.NullHandler())

from .config import Config, ConfigError, DataConfig, ModelConfig, TrainConfig, make_config
from .export import Vectors
from .model import KeyedVectors, Word2Vec
from .prepare import CorpusError
from .prepare import prepare as prepare_corpus
from .vocab import Vocab

__version__ = "0.1.0"


def train_vectors(corpus=None, workdir="w2vjax-run", *, evaluate=True, progress=True, force=False, **settings):
    """Train with flat settings (``model='skipgram', loss='hs', dim=100, ...``, or gensim's names);
    returns the summary.  ``corpus``: a path, or an iterable of token lists (see :class:`Word2Vec`)."""
    sentences, path = (None, corpus) if corpus is None or isinstance(corpus, (str, os.PathLike)) else (corpus, None)
    if corpus is None:
        from .train import default_corpus
        path = default_corpus()
    return Word2Vec(sentences, path, workdir=workdir, evaluate=evaluate, progress=progress, force=force,
                    **settings).summary


def load_vectors(path):
    from .export import load_vectors as _load
    return _load(path)


def neighbors(vectors, word, topn=10):
    """Nearest neighbours of ``word`` in ``vectors`` (a path or :class:`w2vjax.export.Vectors`)."""
    v = load_vectors(vectors) if isinstance(vectors, str) else vectors
    return v.most_similar(word, topn=topn)


def analogy(vectors, a, b, c, topn=5):
    """``a`` is to ``b`` as ``c`` is to ? (3CosAdd)."""
    v = load_vectors(vectors) if isinstance(vectors, str) else vectors
    return v.analogy(a, b, c, topn=topn)


def evaluate_vectors(vectors, **kwargs):
    """Google analogies (3CosAdd, restricted to the 30k most frequent words) and WS-353 / SimLex-999."""
    from .evaluate import evaluate_all
    v = load_vectors(vectors) if isinstance(vectors, str) else vectors
    return evaluate_all(v, **kwargs)


__all__ = ["Config", "ConfigError", "CorpusError", "DataConfig", "KeyedVectors", "ModelConfig", "TrainConfig", "Vectors", "Vocab", "Word2Vec",
           "analogy", "evaluate_vectors", "load_vectors", "make_config", "neighbors", "prepare_corpus",
           "train_vectors"]
