"""Warm starts and given vocabularies: --init-vectors (fastText's -pretrainedVectors, gensim's
intersect_word2vec_format), --save-vocab / --read-vocab (word2vec.c's)."""

import json
import os
import shutil

import numpy as np
import pytest

from w2vjax import cli, export, make_config
from w2vjax.config import ConfigError
from w2vjax.prepare import prepare
from w2vjax.step import init_state
from w2vjax.train import Interrupted, train_and_evaluate

SMALL = dict(model="skipgram", loss="ns", dim=8, epochs=1, threads=1, min_count=2, batch_size=64, steps_per_call=8)


def _train(workdir, corpus, **kw):
    return train_and_evaluate(make_config(**{**SMALL, **kw}), str(workdir), corpus, evaluate=False, progress=False)


@pytest.fixture(scope="module")
def first(head_corpus, tmp_path_factory):
    """A finished run whose vectors warm-start the others."""
    work = tmp_path_factory.mktemp("first")
    _train(work, head_corpus(20_000))
    return work


def test_a_warm_start_begins_with_the_files_rows(first, head_corpus, tmp_path, caplog):
    """With a vanishing rate the trained rows are the initial ones: the file's for its words
    (text format, a word outside the vocabulary ignored), the usual random init for the others."""
    old = export.load_vectors(first / "vectors.bin")
    missing = [old.words[i] for i in (3, 10, 50)]
    kept = [i for i, w in enumerate(old.words) if w not in missing]
    path = tmp_path / "init.txt"
    export.save_word2vec_text(path, [old.words[i] for i in kept] + ["zz-not-in-the-vocabulary"],
                              np.concatenate([old.vectors[kept], np.ones((1, 8), np.float32)]))
    caplog.set_level("INFO", logger="w2vjax")
    summary = _train(tmp_path / "w", head_corpus(20_000), init_vectors=str(path), lr=1e-9)
    new = export.load_vectors(tmp_path / "w" / "vectors.bin")
    assert new.words == old.words
    np.testing.assert_allclose(new.vectors[kept], old.vectors[kept], atol=1e-6)
    cfg = make_config(**SMALL)
    random = np.asarray(init_state(cfg, len(old)).params["emb_in"])
    rows = [old.index[w] for w in missing]
    np.testing.assert_allclose(new.vectors[rows], random[rows], atol=1e-6)
    assert not np.allclose(new.vectors[rows], old.vectors[rows], atol=1e-3)  # (the random init is not the file's)
    n = len(old) - len(missing)
    assert f"{n:,} of the vocabulary's {len(old):,} words initialised" in "\n".join(caplog.messages)
    record = json.load(open(tmp_path / "w" / "summary.json"))["init_vectors"]
    assert record == summary["init_vectors"]
    assert record["vocab_words_initialised"] == n and record["file_words"] == n + 1
    assert record["path"] == str(path) and len(record["sha256"]) == 64


def test_a_resume_ignores_the_file_and_may_not_change_it(first, head_corpus, tmp_path):
    corpus = head_corpus(20_000)
    init = tmp_path / "init.bin"  # the binary format
    shutil.copy(first / "vectors.bin", init)
    with pytest.raises(Interrupted):
        train_and_evaluate(make_config(**SMALL, init_vectors=str(init)), str(tmp_path / "w"), corpus,
                           evaluate=False, progress=False, stop_after_calls=2)
    with pytest.raises(ConfigError, match="other settings.*init_vectors"):
        _train(tmp_path / "w", corpus)  # the same run without the warm start: refused
    os.remove(init)  # a resume takes the checkpoint's state: the file is not read again
    summary = _train(tmp_path / "w", corpus, init_vectors=str(init))
    assert summary["raw_words_this_run"] < summary["raw_words"]  # resumed
    assert summary["init_vectors"]["vocab_words_initialised"] == summary["vocab_size"]  # every word: same vocab
    # warm-started runs are not the random-init run's
    plain = export.load_vectors(first / "vectors.bin").vectors
    assert not np.allclose(export.load_vectors(tmp_path / "w" / "vectors.bin").vectors, plain)


def test_another_dimension_is_one_line_and_writes_nothing(first, head_corpus, tmp_path, capsys):
    work = tmp_path / "w"
    rc = cli.main(["train", head_corpus(20_000), "--workdir", str(work), "--init-vectors",
                   str(first / "vectors.bin"), "--dim", "9", "--quiet", "--no-eval"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "dimension 8" in err[0] and "--dim 9" in err[0]
    assert not work.exists()


def test_save_vocab_then_read_vocab_trains_the_same_vectors(head_corpus, tmp_path):
    corpus, vocab = head_corpus(20_000), tmp_path / "vocab.txt"
    a = _train(tmp_path / "a", corpus, save_vocab=str(vocab))
    assert vocab.read_bytes() == (tmp_path / "a" / "vocab.txt").read_bytes()
    lines = vocab.read_text().splitlines()
    counts = [int(line.split()[1]) for line in lines]
    assert len(lines) == a["vocab_size"] and counts == sorted(counts, reverse=True)
    b = _train(tmp_path / "b", corpus, read_vocab=str(vocab))
    for name in ("vocab.txt", "data/ids.u32", "data/sentences.npy", "vectors.bin"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert b["raw_words"] == a["raw_words"]


def test_a_read_vocab_drives_the_vocabulary_and_a_changed_file_prepares_again(head_corpus, tmp_path):
    corpus = head_corpus(20_000)
    full = prepare(corpus, str(tmp_path / "full"), min_count=2)
    dropped = full.vocab.words[5]
    path = tmp_path / "v.txt"
    # counts of another corpus (x10): they, not the corpus's, are the vocabulary's
    path.write_text("".join(f"{w} {10 * c}\n" for w, c in zip(full.vocab.words, full.vocab.counts) if w != dropped))
    work = str(tmp_path / "w")
    got = prepare(corpus, work, min_count=2, read_vocab=str(path))
    assert dropped not in got.vocab.index and len(got.vocab) == len(full.vocab) - 1
    np.testing.assert_array_equal(got.vocab.counts, 10 * np.delete(full.vocab.counts, 5))
    expect = [full.vocab.words[i] for i in np.asarray(full.ids) if full.vocab.words[i] != dropped]
    assert [got.vocab.words[i] for i in np.asarray(got.ids)] == expect  # the word's tokens are dropped
    assert got.num_words == full.num_words - int(full.vocab.counts[5])
    # --min-count applies to the file's counts; the same path with other contents prepares again
    path.write_text("".join(f"{w} {c}\n" for w, c in zip(full.vocab.words, full.vocab.counts)))
    again = prepare(corpus, work, min_count=2, read_vocab=str(path))
    assert again.vocab.words == full.vocab.words
    assert (tmp_path / "w" / "data" / "ids.u32").read_bytes() == (tmp_path / "full" / "data" / "ids.u32").read_bytes()


@pytest.mark.parametrize("content,needle", [
    (None, "does not exist"),
    ("the 5\nof 4 3\n", ":2: expected 'word count'"),
    ("the 5\nof four\n", ":2: expected 'word count'"),
    ("the 5\nof 1.5\n", ":2: expected 'word count'"),
    ("the 5\nof 4\nthe 3\n", ":3: 'the' is already on line 1"),
    ("\n\n", "holds no words"),
    ("the 5\nof 1\n", "at least 2 are needed"),  # min-count 2 leaves one word
])
def test_bad_vocabulary_files_are_one_line_and_write_nothing(head_corpus, tmp_path, capsys, content, needle):
    path = tmp_path / "bad.vocab"
    if content is not None:
        path.write_text(content)
    work = tmp_path / "w"
    rc = cli.main(["train", head_corpus(6_000), "--workdir", str(work), "--read-vocab", str(path),
                   "--min-count", "2", "--quiet", "--no-eval"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("w2vjax: error:"), err
    assert needle in err[0], err
    assert not work.exists()


_SHARDED = r"""
import os
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
import numpy as np
from w2vjax import make_config, sharding, step
cfg = make_config(dim=8, loss="ns")
layout = sharding.Layout(sharding.make_mesh(4), True, {"emb_in": 10, "emb_out": 10})
state = step.init_state(cfg, 10, layout)
before = layout.host_params(state.params)["emb_in"]
rows, values = np.array([1, 7, 9]), np.arange(24, dtype=np.float32).reshape(3, 8)
state = step.set_input_rows(state, rows, values)
after = layout.host_params(state.params)["emb_in"]
assert state.params["emb_in"].sharding.spec == layout.table_spec, state.params["emb_in"].sharding
assert np.array_equal(after[rows], values)
keep = [i for i in range(10) if i not in rows]
assert np.array_equal(after[keep], before[keep])
print("ok")
"""


def test_warm_start_rows_land_in_row_sharded_tables(tmp_path):
    """On 4 simulated devices with the tables sharded by rows, the copied rows land where they
    belong, the others keep their init, and the table keeps its sharding."""
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", _SHARDED], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
