"""The gensim-style API: ``w2vjax.Word2Vec`` and ``KeyedVectors`` queries."""

import numpy as np
import pytest

import w2vjax
from w2vjax.config import ConfigError
from w2vjax.model import KeyedVectors, settings_from_gensim

SMALL = dict(vector_size=12, window=3, min_count=2, sg=1, negative=3, epochs=1, workers=1, seed=3,
             log_every_s=0.0, progress=False)


def _sentences(path):
    with open(path) as f:
        words = f.read().split()
    return [words[i:i + 50] for i in range(0, len(words), 50)]


def test_sentences_and_file_give_the_same_vectors(head_corpus, tmp_path):
    """On one thread, a list of sentences trains exactly what the same text in a file does."""
    sentences = _sentences(head_corpus(20000))
    path = tmp_path / "corpus.txt"
    path.write_text("".join(" ".join(s) + "\n" for s in sentences))
    a = w2vjax.Word2Vec(iter(sentences), workdir=str(tmp_path / "a"), **SMALL)
    b = w2vjax.Word2Vec(corpus_file=str(path), workdir=str(tmp_path / "b"), **SMALL)
    assert a.config.model.model == "skipgram" and a.config.model.dim == 12 and a.config.train.threads == 1
    assert a.wv.index_to_key == b.wv.index_to_key and len(a.wv) > 100
    np.testing.assert_array_equal(a.wv.vectors, b.wv.vectors)
    assert a.summary["raw_words"] == b.summary["raw_words"] > 0
    assert a.wv["the"].shape == (12,) and a.wv[["the", "of"]].shape == (2, 12)

    saved = tmp_path / "model.npz"
    a.save(str(saved))
    c = w2vjax.Word2Vec.load(str(saved))
    np.testing.assert_array_equal(c.wv.vectors, a.wv.vectors)
    assert c.config == a.config and c.workdir == str((tmp_path / "a").resolve())


def test_train_vectors_takes_sentences(tmp_path):
    s = [["a", "b", "c", "a", "b"]] * 40
    summary = w2vjax.train_vectors(s, str(tmp_path), vector_size=4, min_count=1, epochs=1, evaluate=False,
                                   progress=False)
    assert summary["vocab_size"] == 3 and "eval" not in summary


@pytest.fixture(scope="module")
def vectors():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(300)]
    return KeyedVectors(words, rng.standard_normal((300, 16)).astype(np.float32))


def test_queries_equal_gensims(vectors):
    """most_similar(positive, negative), cosmul, similarity and doesnt_match agree with gensim's
    KeyedVectors holding the same vectors."""
    pytest.importorskip("gensim")
    g = vectors.to_gensim()
    cases = [(["w1", "w2"], ["w3"]), (["w5"], []), ([], ["w7"]), ("w9", None)]
    for pos, neg in cases:
        ours = vectors.most_similar(positive=pos, negative=neg, topn=8)
        theirs = g.most_similar(positive=pos, negative=neg, topn=8)
        assert [w for w, _ in ours] == [w for w, _ in theirs]
        np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], rtol=1e-5, atol=1e-6)
    ours = vectors.most_similar_cosmul(positive=["w1", "w2"], negative=["w3"], topn=8)
    theirs = g.most_similar_cosmul(positive=["w1", "w2"], negative=["w3"], topn=8)
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], rtol=1e-4)
    assert vectors.similarity("w1", "w4") == pytest.approx(float(g.similarity("w1", "w4")), abs=1e-6)
    group = ["w1", "w2", "w3", "w4", "w5"]
    assert vectors.doesnt_match(group) == g.doesnt_match(group)
    assert vectors.most_similar("w9", topn=3) == vectors.most_similar(positive=["w9"], topn=3)
    np.testing.assert_allclose(vectors.get_normed_vectors(), g.get_normed_vectors(), rtol=1e-5, atol=1e-6)
    assert vectors.key_to_index["w10"] == 10 and vectors.index_to_key[10] == "w10"


def test_save_word2vec_format_round_trips(vectors, tmp_path):
    for binary in (False, True):
        p = tmp_path / f"v{int(binary)}"
        vectors.save_word2vec_format(str(p), binary=binary)
        back = KeyedVectors.load_word2vec_format(str(p))
        assert back.index_to_key == vectors.index_to_key
        np.testing.assert_allclose(back.vectors, vectors.vectors, rtol=1e-6)


def test_gensim_names_map_to_settings():
    s = settings_from_gensim(vector_size=50, sg=0, hs=1, alpha=0.1, min_alpha=0.001, ns_exponent=0.5,
                             workers=2, max_final_vocab=1000, cbow_mean=0, steps_per_call=4)
    assert s == {"dim": 50, "model": "cbow", "loss": "hs", "lr": 0.1, "min_lr_ratio": pytest.approx(0.01),
                 "noise_exponent": 0.5, "threads": 2, "max_vocab": 1000, "cbow_mean": False,
                 "steps_per_call": 4}
    with pytest.raises(ConfigError, match="no loss"):
        settings_from_gensim(hs=0, negative=0)
    with pytest.raises(ConfigError, match="unknown setting"):
        w2vjax.Word2Vec(size=100)
    with pytest.raises(ConfigError, match="lists of tokens"):
        w2vjax.Word2Vec(["a b c"], progress=False)


def test_model_train_continues_with_more_epochs(tmp_path):
    s = [["a", "b", "c", "a", "b", "d"]] * 200
    model = w2vjax.Word2Vec(s, workdir=str(tmp_path), vector_size=4, min_count=1, epochs=1, workers=1,
                            progress=False)
    before = model.wv.vectors.copy()
    summary = model.train(s, epochs=2)
    assert model.config.train.epochs == 2 and summary["raw_words"] == 2 * summary["raw_words_this_run"]
    assert not np.array_equal(before, model.wv.vectors)


def test_messages_go_to_logging_not_stdout(tmp_path, caplog, capsys):
    """The API prints nothing itself (library convention: the "w2vjax" logger, a NullHandler);
    its messages reach whoever configures logging, here pytest's caplog."""
    caplog.set_level("INFO", logger="w2vjax")
    s = [["a", "b", "c", "a", "b", "d"]] * 100
    w2vjax.Word2Vec(s, workdir=str(tmp_path), vector_size=4, min_count=1, epochs=1, workers=1, progress=False)
    assert capsys.readouterr().out == ""
    said = [r.getMessage() for r in caplog.records if r.name == "w2vjax.train" and r.levelname == "INFO"]
    assert any("600 training words, vocabulary 4" in m for m in said), caplog.messages
    assert any(m.startswith("model cbow/ns dim 4") for m in said) and any(m.startswith("engine ") for m in said)


def test_a_temporary_work_dir_goes_with_the_model(tmp_path):
    """Without workdir=, the model's temporary folder is deleted by close(), by leaving a
    ``with`` block, or when the model is garbage-collected; wv stays usable; a given work
    dir is never deleted."""
    import gc
    import os
    s = [["a", "b", "c", "a", "b", "d"]] * 100
    kw = dict(vector_size=4, min_count=1, epochs=1, workers=1, progress=False)
    model = w2vjax.Word2Vec(s, **kw)
    folder, wv = model.workdir, model.wv
    assert os.path.isdir(folder) and os.path.exists(os.path.join(folder, "vectors.bin"))
    del model
    gc.collect()
    assert not os.path.exists(folder) and wv.similarity("a", "b") <= 1.0
    with w2vjax.Word2Vec(s, **kw) as model:
        folder = model.workdir
        model.train(s, epochs=2)  # more epochs continue in the same folder
        assert model.workdir == folder and model.summary["raw_words_this_run"] < model.summary["raw_words"]
    assert not os.path.exists(folder) and model.wv["a"].shape == (4,)
    model.train(s)  # after close(): a new temporary folder, trained afresh
    assert os.path.isdir(model.workdir) and model.workdir != folder
    model.close()
    given = w2vjax.Word2Vec(s, workdir=str(tmp_path / "mine"), **kw)
    given.close()
    assert (tmp_path / "mine" / "vectors.bin").exists()
