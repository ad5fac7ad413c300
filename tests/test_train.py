"""Short real trainings: every model x loss learns, and the work dir holds what it should."""

import json
import os

import numpy as np
import pytest

from w2vjax import make_config
from w2vjax.prepare import prepare
from w2vjax.train import run_training, train_and_evaluate

NUMBERS = {"zero", "one", "three", "four", "five", "six", "seven", "eight", "nine"}
MONTHS = {"february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december"}


@pytest.fixture
def small_corpus(head_corpus):
    return head_corpus(300_000)


def _top(vectors, vocab, word, n=10):
    v = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    order = np.argsort(-(v @ v[vocab.index[word]]))
    return [vocab.words[i] for i in order[1: n + 1]]


@pytest.mark.parametrize("model", ["skipgram", "cbow"])
@pytest.mark.parametrize("loss", ["ns", "hs", "softmax", "nce", "sampled-softmax"])
def test_every_model_and_loss_learns_related_words(small_corpus, tmp_path, model, loss):
    # full softmax is O(V) per example: cap the vocabulary so the test stays fast
    extra = {"max_vocab": 1500} if loss == "softmax" else {}
    cfg = make_config(model=model, loss=loss, dim=50, epochs=2, seed=1, log_every_s=0.0, **extra)
    corpus = prepare(small_corpus, str(tmp_path), cfg.data.min_count, cfg.data.max_vocab)
    summary = run_training(cfg, corpus, str(tmp_path), progress=False)
    vectors = summary["_vectors"]
    assert np.isfinite(summary["final_loss"])
    assert summary["step_compilations"] == 1  # 2 epochs and a padded last batch, one program
    two, january = _top(vectors, corpus.vocab, "two"), _top(vectors, corpus.vocab, "january")
    assert len(NUMBERS & set(two)) >= 2, two
    assert len(MONTHS & set(january)) >= 1, january
    # the loss went down
    first = json.loads(open(tmp_path / "metrics.jsonl").readline())
    assert summary["final_loss"] < first["loss"]


@pytest.mark.parametrize("model,loss", [("skipgram", "ns"), ("cbow", "hs")])
def test_device_prep_path_learns_too(small_corpus, tmp_path, model, loss):
    """The XLA engine on CPU (--no-cpu-kernel): row touches counted on
    the device, as the tests above do on the host (the CPU default)."""
    cfg = make_config(model=model, loss=loss, dim=50, epochs=2, log_every_s=0.0, cpu_kernel=False)
    corpus = prepare(small_corpus, str(tmp_path), cfg.data.min_count)
    summary = run_training(cfg, corpus, str(tmp_path), progress=False)
    assert summary["engine"] == "xla" and summary["step_compilations"] == 1
    assert len(NUMBERS & set(_top(summary["_vectors"], corpus.vocab, "two"))) >= 2
    assert len(MONTHS & set(_top(summary["_vectors"], corpus.vocab, "january"))) >= 1


@pytest.mark.parametrize("model,loss", [("skipgram", "ns"), ("cbow", "hs"), ("skipgram", "nce"),
                                        ("cbow", "sampled-softmax")])
def test_device_windows_learn_too(small_corpus, tmp_path, model, loss):
    """device_windows=True (the accelerator default): the host sends rows of token ids and the
    step subsamples, draws the windows and noise words, and makes the examples itself."""
    cfg = make_config(model=model, loss=loss, dim=50, epochs=2, log_every_s=0.0, device_windows=True)
    corpus = prepare(small_corpus, str(tmp_path), cfg.data.min_count)
    summary = run_training(cfg, corpus, str(tmp_path), progress=False)
    assert summary["device_windows"] is True and summary["engine"] == "xla"
    assert summary["step_compilations"] == 1
    assert summary["raw_words"] == 2 * corpus.num_words
    # about as many examples as the host stream makes (less the pairs crossing a row edge)
    per_epoch = summary["examples"] / 2
    expected = corpus.num_words * summary["subsample_keep_rate"] * (6 if model == "skipgram" else 1)
    assert 0.85 * expected < per_epoch < 1.05 * expected
    assert len(NUMBERS & set(_top(summary["_vectors"], corpus.vocab, "two"))) >= 2
    assert len(MONTHS & set(_top(summary["_vectors"], corpus.vocab, "january"))) >= 1


def test_shared_negatives_learns_related_words(small_corpus, tmp_path):
    cfg = make_config(model="skipgram", loss="ns", shared_negatives=True, dim=50, epochs=2, log_every_s=0.0)
    corpus = prepare(small_corpus, str(tmp_path), cfg.data.min_count)
    summary = run_training(cfg, corpus, str(tmp_path), progress=False)
    assert len(NUMBERS & set(_top(summary["_vectors"], corpus.vocab, "two"))) >= 2
    assert len(MONTHS & set(_top(summary["_vectors"], corpus.vocab, "january"))) >= 1


def test_workdir_outputs_load_in_gensim(small_corpus, tmp_path):
    gensim = pytest.importorskip("gensim")
    cfg = make_config(model="skipgram", loss="ns", dim=16, epochs=1, log_every_s=0.0)
    summary = train_and_evaluate(cfg, str(tmp_path), small_corpus, progress=False)
    for name in ("config.json", "vocab.txt", "metrics.jsonl", "vectors.txt", "vectors.bin", "summary.json"):
        assert os.path.getsize(tmp_path / name) > 0, name
    assert not list(tmp_path.glob("*.tmp"))
    txt = gensim.models.KeyedVectors.load_word2vec_format(str(tmp_path / "vectors.txt"), binary=False)
    binv = gensim.models.KeyedVectors.load_word2vec_format(str(tmp_path / "vectors.bin"), binary=True)
    assert len(txt) == len(binv) == summary["vocab_size"] and txt.vector_size == 16
    np.testing.assert_allclose(txt["the"], binv["the"], rtol=1e-6)
    # fixed shapes: the step compiled once for the whole run, padded last batch included
    assert summary["step_compilations"] == 1
    assert txt.index_to_key[:3] == ["the", "of", "and"]
    lines = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
    assert len(lines) >= 2
    for rec in lines:
        assert {"step", "words", "raw_words_per_s", "effective_words_per_s", "lr", "loss"} <= set(rec)
    assert [r["words"] for r in lines] == sorted(r["words"] for r in lines)
    assert lines[-1]["words"] == summary["raw_words"]
    assert lines[0]["lr"] > lines[-1]["lr"]
    saved = json.load(open(tmp_path / "summary.json"))
    for key in ("total_seconds", "raw_words_per_s", "vocab_size", "final_loss"):
        assert key in saved
    assert "analogy_total" in saved["eval"] and "ws353_spearman" in saved["eval"]
    assert json.load(open(tmp_path / "config.json"))["model"]["model"] == "skipgram"


def test_same_seed_same_vectors(small_corpus, tmp_path):
    cfg = make_config(model="cbow", loss="ns", dim=8, epochs=1)
    corpus = prepare(small_corpus, str(tmp_path), 5)
    a = run_training(cfg, corpus, str(tmp_path), progress=False)["_vectors"]
    b = run_training(cfg, corpus, str(tmp_path), progress=False)["_vectors"]
    np.testing.assert_array_equal(a, b)


def test_eval_every_logs_quality_during_training(small_corpus, tmp_path):
    cfg = make_config(model="cbow", loss="ns", dim=16, epochs=2, eval_every=0.5, log_every_s=0.0,
                      steps_per_call=16)
    corpus = prepare(small_corpus, str(tmp_path), cfg.data.min_count)
    summary = run_training(cfg, corpus, str(tmp_path), progress=False)
    lines = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
    evals = [r for r in lines if "eval" in r]
    # at 0.5, 1.0 and 1.5 epochs (the end of training is evaluated by train_and_evaluate)
    assert len(evals) == 3, [r["epochs_done"] for r in evals]
    for want, rec in zip((0.5, 1.0, 1.5), evals):
        assert want <= rec["epochs_done"] < want + 0.1
        assert {"analogy_total", "ws353_spearman", "simlex999_spearman"} <= set(rec["eval"])
    assert [r["words"] for r in lines] == sorted(r["words"] for r in lines)
    assert summary["eval_seconds_during_training"] > 0
    # the loss records are still there, between the evaluations
    assert sum("loss" in r for r in lines) >= 4


def test_summary_times_every_part_of_the_run(head_corpus, tmp_path):
    """summary.json's ``timings``: every named part of the run, which together make its total
    (what no part names, ``other``, stays small)."""
    from w2vjax.train import format_timings
    cfg = make_config(dim=20, epochs=1, checkpoint_every=2, steps_per_call=1)
    summary = train_and_evaluate(cfg, str(tmp_path), head_corpus(20_000), evaluate=False, progress=False)
    t = json.load(open(tmp_path / "summary.json"))["timings"]
    assert t == summary["timings"]
    parts = {"imports", "backend", "prepare", "setup", "first_call", "loop", "checkpoints",
             "eval_during_training", "vectors_to_host", "export_text", "export_binary", "other", "total"}
    assert set(t) == parts
    assert all(v >= 0 for v in t.values())
    assert t["first_call"] > 0 and t["checkpoints"] > 0 and t["export_text"] > 0
    named = sum(v for k, v in t.items() if k not in ("total", "other"))
    assert abs(named + t["other"] - t["total"]) < 0.05 * t["total"] + 0.05
    assert t["other"] < 0.1 * t["total"] + 0.2
    assert t["total"] >= summary["total_seconds"]
    assert "first_call" in format_timings(t)


@pytest.mark.parametrize("loss", ["nce", "hs"])
def test_save_output_writes_the_output_table_or_says_why_not(head_corpus, tmp_path, loss, caplog):
    """--save-output: vectors_out.txt/.bin hold emb_out's word rows (NS, NCE, sampled softmax,
    softmax); for HS they are inner nodes, so nothing is written and the summary says so."""
    from w2vjax import export
    cfg = make_config(model="cbow", loss=loss, dim=20, epochs=1, log_every_s=0.0, save_output=True)
    caplog.set_level("INFO", logger="w2vjax")
    summary = train_and_evaluate(cfg, str(tmp_path), head_corpus(50_000), evaluate=False, progress=False)
    if loss == "hs":
        assert not (tmp_path / "vectors_out.txt").exists() and "inner nodes" in summary["output_vectors"]
        assert any("--save-output: skipped" in line for line in caplog.messages)
        return
    out_txt, out_bin = export.load_vectors(tmp_path / "vectors_out.txt"), export.load_vectors(tmp_path / "vectors_out.bin")
    inp = export.load_vectors(tmp_path / "vectors.txt")
    assert out_txt.words == inp.words and out_txt.vectors.shape == inp.vectors.shape
    np.testing.assert_allclose(out_txt.vectors, out_bin.vectors, rtol=1e-6)
    assert np.abs(out_txt.vectors).max() > 0  # trained rows (emb_out starts at zero), not the input table
    assert not np.allclose(out_txt.vectors, inp.vectors)
    assert json.load(open(tmp_path / "summary.json"))["output_vectors"] == "vectors_out.txt, vectors_out.bin"
