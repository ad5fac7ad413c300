"""Reruns of a work dir: a finished run is left as it is, more epochs continue it; the run's
reproducibility record (config.json's resolved values, summary.json's environment)."""

import json
import logging
import os

import numpy as np

from w2vjax import cli
from w2vjax.config import make_config
from w2vjax.export import load_vectors
from w2vjax.train import train_and_evaluate

SMALL = dict(model="skipgram", loss="ns", dim=8, epochs=1, threads=1, log_every_s=0.0, min_count=2)


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def _run(corpus, workdir, **kw):
    """Train through the API; returns the summary and the messages of the "w2vjax" logger."""
    logger, handler = logging.getLogger("w2vjax"), _Lines()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        summary = train_and_evaluate(make_config(**{**SMALL, **kw}), str(workdir), corpus, evaluate=False,
                                     progress=False)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return summary, handler.lines


def test_finished_rerun_leaves_summary_and_more_epochs_continue(head_corpus, tmp_path):
    corpus = head_corpus(20000)
    first, _ = _run(corpus, tmp_path)
    before = (tmp_path / "summary.json").read_bytes()
    again, logs = _run(corpus, tmp_path)
    assert any("finished run" in line for line in logs)
    assert (tmp_path / "summary.json").read_bytes() == before
    assert again["train_seconds"] == first["train_seconds"] and again["raw_words_per_s"] > 0

    v1 = load_vectors(str(tmp_path / "vectors.bin")).vectors
    more, logs = _run(corpus, tmp_path, epochs=2)
    assert any("continuing the finished 1-epoch run" in line for line in logs)
    assert more["raw_words"] == 2 * first["raw_words"] and more["raw_words_this_run"] == first["raw_words"]
    assert json.load(open(tmp_path / "config.json"))["train"]["epochs"] == 2
    v2 = load_vectors(str(tmp_path / "vectors.bin")).vectors
    # the rate follows the linear schedule over the new total: up from the first run's floor
    recs = [r for r in map(json.loads, open(tmp_path / "metrics.jsonl")) if "lr" in r]
    total, old = more["raw_words"], [r for r in recs if r["words"] <= first["raw_words"]]
    cont = [r for r in recs if r["words"] > first["raw_words"]]
    assert cont and cont[0]["lr"] > 10 * old[-1]["lr"]
    for r in cont:
        assert abs(r["lr"] - 0.025 * max(1 - r["words"] / total, 1e-4)) < 0.025 * 0.05, r
    assert not np.array_equal(v1, v2)
    # the same two epochs from scratch: the same words seen, from the same start
    scratch, _ = _run(corpus, tmp_path / "scratch", epochs=2)
    assert scratch["raw_words"] == more["raw_words"]


def test_metadata_and_keep_after(head_corpus, tmp_path):
    summary, _ = _run(head_corpus(20000), tmp_path, keep_after="final")
    config = json.load(open(tmp_path / "config.json"))
    assert config["train"]["lr"] is None  # as given: by default
    resolved = config["resolved"]
    for key in ("lr", "batch_size", "row_update_cap", "threads", "engine"):
        assert resolved[key] is not None, key
    assert resolved["lr"] == 0.025 and resolved["batch_size"] == 1 and resolved["threads"] == 1
    env = summary["environment"]
    for pkg in ("w2vjax", "jax", "jaxlib", "optax", "orbax-checkpoint", "numpy"):
        assert env["versions"][pkg], pkg
    assert env["device_kind"] and env["device_count"] >= 1
    assert len(summary["corpus"]["sha256"]) == 64 and summary["corpus"]["bytes"] == os.path.getsize(head_corpus(20000))
    assert summary["resolved"]["engine"] == summary["engine"]
    assert len(os.listdir(tmp_path / "checkpoints")) == 1


def test_a_finished_run_rerun_on_another_corpus_is_not_called_finished(head_corpus, tmp_path):
    """The same settings on another text: not "finished" (its vectors would be the old corpus's);
    the checkpoints of the other corpus are refused, and --force trains afresh."""
    import pytest

    from w2vjax.checkpoint import IdentityError
    _run(head_corpus(20000), tmp_path)
    other = tmp_path.parent / "other.txt"
    other.write_text(open(head_corpus(30000)).read())
    with pytest.raises(IdentityError, match="corpus"):
        _run(str(other), tmp_path)
    summary = train_and_evaluate(make_config(**SMALL), str(tmp_path), str(other), evaluate=False, progress=False,
                                 force=True)
    assert summary["raw_words_this_run"] == summary["raw_words"] > 0  # trained from the start


def test_the_cli_says_a_finished_run_is_finished(head_corpus, tmp_path, capsys):
    """A rerun of a finished command says so; it does not reprint the old "trained ..." line."""
    argv = ["train", head_corpus(20000), "--workdir", str(tmp_path), "--dim", "8", "--epochs", "1",
            "--min-count", "2", "--threads", "1", "--quiet", "--no-eval"]
    assert cli.main(argv) == 0
    first = capsys.readouterr().out
    assert "trained " in first and "finished run" not in first
    assert cli.main(argv) == 0
    again = capsys.readouterr().out
    assert "holds a finished run of these settings: nothing to train" in again
    assert "trained " not in again and "wrote " not in again
