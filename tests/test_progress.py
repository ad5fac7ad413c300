"""The progress bar (rich in a terminal, plain lines otherwise) and metrics.jsonl's cadence."""

import io
import json
import re

from w2vjax.config import make_config
from w2vjax.progress import Progress
from w2vjax.train import train_and_evaluate


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_terminal_bar_shows_eta_epoch_and_ends_its_line():
    out = _Terminal()
    with Progress(1000, stream=out, epochs=2) as bar:
        bar.update(600, 12345.0, 0.0125, 2.5)
    out.write("next line")
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", out.getvalue())  # without the terminal codes
    for needle in ("epoch 2/2", "0:00<0:00", "12.3k words/s", "lr 0.012500", "loss 2.5000", "60%"):
        assert needle in text, needle
    assert "\nnext line" in text and "loss 2.5000next" not in text


def test_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    with Progress(100, stream=out, epochs=1) as bar:
        for done in range(5, 101, 5):
            bar.update(done, 1000.0, 0.01, 1.0, final=done == 100)
    lines = out.getvalue().splitlines()
    assert len(lines) == 10 and lines[-1].startswith("epoch 1/1  100.0%")


def test_metrics_every_percent_of_the_words(head_corpus, tmp_path):
    """Even a run far shorter than --log-every-s has a loss curve: a record per 1 % of the words."""
    cfg = make_config(model="skipgram", dim=8, epochs=2, batch_size=64, steps_per_call=4, threads=1,
                      min_count=2, log_every_s=1e9)
    summary = train_and_evaluate(cfg, str(tmp_path), head_corpus(10000), evaluate=False, progress=False)
    words = [r["words"] for r in map(json.loads, open(tmp_path / "metrics.jsonl")) if "loss" in r]
    total = summary["raw_words"]
    assert len(words) >= 60 and words[-1] == total
    assert max(b - a for a, b in zip([0] + words, words)) <= 0.02 * total
    assert any(w == total // 2 or abs(w - total // 2) < 0.01 * total for w in words)  # the first epoch's end
