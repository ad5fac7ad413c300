"""w2vjax: word2vec (skip-gram and CBOW; negative sampling, hierarchical and full softmax) in JAX."""

import time as _time

_IMPORTED_AT = _time.time()  # where a run's wall-time breakdown starts (train.imported_at)

from .config import Config, ConfigError, DataConfig, ModelConfig, TrainConfig, make_config
from .prepare import CorpusError
from .prepare import prepare as prepare_corpus
from .vocab import Vocab

__version__ = "0.1.0"


def train_vectors(corpus=None, workdir="w2vjax-run", **settings):
    """Train with flat settings (``model='skipgram', loss='hs', dim=100, ...``); returns the summary."""
    from .train import train_and_evaluate
    return train_and_evaluate(make_config(**settings), workdir, corpus)


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


__all__ = ["Config", "ConfigError", "CorpusError", "DataConfig", "ModelConfig", "TrainConfig", "Vocab",
           "analogy", "evaluate_vectors", "load_vectors", "make_config", "neighbors", "prepare_corpus",
           "train_vectors"]
