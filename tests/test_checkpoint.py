"""Orbax checkpoints: an interrupted run resumed from its work dir ends with the same vectors."""

import pytest

from w2vjax import make_config
from w2vjax.config import ConfigError
from w2vjax.train import Interrupted, train_and_evaluate


@pytest.fixture
def corpus(head_corpus):
    return head_corpus(60_000)


def _train(cfg, workdir, corpus, **kw):
    return train_and_evaluate(cfg, str(workdir), corpus, evaluate=False, progress=False,
                              **kw)


def _vectors(workdir):
    return open(workdir / "vectors.bin", "rb").read()


@pytest.mark.parametrize("model,loss,stops,extra", [("skipgram", "ns", [3, 5], {}), ("cbow", "hs", [2], {}),
                                                    ("skipgram", "ns", [2, 3], {"device_windows": True}),
                                                    ("cbow", "ns", [2], {"cpu_kernel": False})])
def test_resumed_run_is_bitwise_identical(corpus, tmp_path, model, loss, stops, extra):
    """(On one CPU kernel thread, or the XLA engine: Hogwild threads, the default on several
    cores, race as word2vec.c's do, and no two runs are bitwise equal.)"""
    cfg = make_config(model=model, loss=loss, dim=16, epochs=3, batch_size=64, steps_per_call=8,
                      min_count=3, **dict({"threads": 1}, **extra))
    _train(cfg, tmp_path / "straight", corpus)
    resumed = tmp_path / "resumed"
    for k in stops:  # interrupted after k calls, then k more, ...
        with pytest.raises(Interrupted, match="run the same command to resume"):
            _train(cfg, resumed, corpus, stop_after_calls=k)
    summary = _train(cfg, resumed, corpus)
    assert summary["raw_words_this_run"] < summary["raw_words"]
    assert _vectors(resumed) == _vectors(tmp_path / "straight")
    # rerunning a finished run changes nothing
    _train(cfg, resumed, corpus)
    assert _vectors(resumed) == _vectors(tmp_path / "straight")


def test_workdir_with_other_settings_is_refused_unless_forced(corpus, tmp_path):
    cfg = make_config(model="cbow", dim=8, epochs=1, min_count=3)
    _train(cfg, tmp_path, corpus)
    other = make_config(model="cbow", dim=12, epochs=1, min_count=3)
    with pytest.raises(ConfigError, match="other settings.*dim.*--force"):
        _train(other, tmp_path, corpus)
    # runtime-only settings (logging, checkpoint cadence) do not count as other settings
    _train(make_config(model="cbow", dim=8, epochs=1, min_count=3, log_every_s=0.1, keep=1), tmp_path, corpus)
    _train(other, tmp_path, corpus, force=True)
    assert open(tmp_path / "vectors.txt").readline().split()[1] == "12"


def _cli(corpus, workdir):
    import sys
    return [sys.executable, "-m", "w2vjax", "train", corpus, "--workdir", str(workdir), "--model", "skipgram",
            "--dim", "16", "--epochs", "4", "--batch-size", "64", "--steps-per-call", "8", "--min-count", "3",
            "--checkpoint-every", "128", "--threads", "1", "--quiet", "--no-eval"]


def test_sigterm_saves_and_sigkill_at_random_moments_resumes_exactly(corpus, tmp_path):
    import random
    import signal
    import subprocess
    import time
    straight = tmp_path / "straight"
    assert subprocess.run(_cli(corpus, straight), capture_output=True).returncode == 0
    expect = _vectors(straight)
    work = tmp_path / "killed"
    rng = random.Random(1234)
    # SIGTERM during training: a clean stop with a checkpoint and a one-line message (sent once
    # the loop has opened metrics.jsonl; in start-up: the test below)
    p = subprocess.Popen(_cli(corpus, work), stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (work / "metrics.jsonl").exists() and p.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    err = p.communicate(timeout=120)[1]
    if p.returncode == 130:
        assert "run the same command to resume" in err and "Traceback" not in err
    else:  # it had already finished
        assert p.returncode == 0
    # SIGKILL at random moments (start-up, prepare, training, saving), then run to the end
    for trial in range(3):
        p = subprocess.Popen(_cli(corpus, work), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(2.0, 9.0))
        p.kill()
        p.wait()
    r = subprocess.run(_cli(corpus, work), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert _vectors(work) == expect
    assert not [d for d in (work / "checkpoints").iterdir() if "tmp" in d.name]


def test_damaged_latest_checkpoint_falls_back_to_an_older_one(corpus, tmp_path, caplog):
    cfg = make_config(model="skipgram", loss="ns", dim=16, epochs=3, batch_size=64, steps_per_call=8,
                      min_count=3, checkpoint_every=64, threads=1)
    _train(cfg, tmp_path / "straight", corpus)
    work = tmp_path / "damaged"
    with pytest.raises(Interrupted):
        _train(cfg, work, corpus, stop_after_calls=20)
    steps = sorted(int(d.name) for d in (work / "checkpoints").iterdir() if d.name.isdigit())
    assert len(steps) >= 2
    latest = work / "checkpoints" / str(steps[-1])
    damaged = [f for f in latest.rglob("*") if f.is_file() and f.stat().st_size > 0]
    for f in damaged:  # truncate every file of the latest checkpoint
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    caplog.set_level("WARNING", logger="w2vjax")
    train_and_evaluate(cfg, str(work), corpus, evaluate=False, progress=False)
    assert any("unreadable" in r.message for r in caplog.records if r.levelname == "WARNING"), caplog.messages
    assert _vectors(work) == _vectors(tmp_path / "straight")
    # every checkpoint of an unfinished run damaged: a clear error, nothing silently restarted
    # (a finished run's rerun reads its summary.json and trains nothing: so it is taken away)
    from w2vjax.checkpoint import CheckpointError
    (work / "summary.json").unlink()
    for f in (work / "checkpoints").rglob("*"):
        if f.is_file() and f.stat().st_size > 0:
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    with pytest.raises(CheckpointError, match="can be read.*delete that folder"):
        _train(cfg, work, corpus)


def test_full_disk_during_a_save_is_reported_and_the_run_resumes(corpus, tmp_path):
    """A real full disk: a 3 MB tmpfs (needs root; skipped where it cannot be mounted)."""
    import subprocess
    import sys
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        cmd = [sys.executable, "-m", "w2vjax", "train", corpus, "--workdir", str(disk / "wd"),
               "--model", "skipgram", "--epochs", "3", "--min-count", "3", "--threads", "1", "--quiet", "--no-eval"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode == 2
        # exactly one line: no absl log, no "Event loop is closed" traceback from tensorstore's threads
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr[-2000:]
        last = r.stderr.strip()
        assert last.startswith("w2vjax: error: saving a checkpoint"), r.stderr[-2000:]
        assert "disk is full" in last and "latest complete checkpoint is step" in last
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        assert "resuming from checkpoint" in r.stdout
        straight = tmp_path / "straight"
        cmd[cmd.index(str(disk / "wd"))] = str(straight)
        assert subprocess.run(cmd, capture_output=True).returncode == 0
        assert _vectors(disk / "wd") == _vectors(straight)
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def _steps(workdir):
    ckpts = workdir / "checkpoints"
    assert not [d for d in ckpts.iterdir() if "tmp" in d.name]  # no half-written checkpoint left
    return sorted(int(d.name) for d in ckpts.iterdir() if d.name.isdigit())


def test_checkpoint_every_updates_and_keep(corpus, tmp_path):
    base = dict(model="cbow", dim=16, epochs=2, batch_size=64, steps_per_call=8, min_count=3,
                checkpoint_minutes=0, checkpoint_every=100, threads=1)
    summary = _train(make_config(**base, keep=100), tmp_path / "all", corpus)
    steps, last = _steps(tmp_path / "all"), summary["steps"]
    # a save at the first call (8 updates) that is >= 100 updates after the previous save: every
    # 104 updates, plus one at each epoch end (the last epoch's end is the final save)
    assert steps[0] == 104 and steps[-1] == last and len(steps) >= last // 104, steps
    gaps = [b - a for a, b in zip(steps, steps[1:])]
    assert all(g == 104 or 0 < g < 104 for g in gaps) and sum(g != 104 for g in gaps) <= base["epochs"], steps
    # keep=2: only the last two remain, the latest is the final step; the cadence changes no value
    _train(make_config(**base, keep=2), tmp_path / "two", corpus)
    assert _steps(tmp_path / "two") == steps[-2:]
    assert _vectors(tmp_path / "two") == _vectors(tmp_path / "all")


def test_checkpoint_minutes(corpus, tmp_path, monkeypatch):
    # the trainer's clock advances a second each time it is read, so a cadence of 1/60 minute makes
    # every call (64 updates) due, however fast the machine; without it one epoch leaves 1 checkpoint
    import itertools
    import types

    from w2vjax import train as train_lib
    ticks = itertools.count(1_000_000.0)
    monkeypatch.setattr(train_lib, "time", types.SimpleNamespace(time=lambda: float(next(ticks))))
    cfg = make_config(model="cbow", dim=16, epochs=1, batch_size=64, steps_per_call=64, min_count=3,
                      checkpoint_minutes=1 / 60, keep=1000)
    summary = _train(cfg, tmp_path, corpus)
    assert summary["steps"] > 4 * 64
    assert _steps(tmp_path) == list(range(64, summary["steps"] + 1, 64))


def test_diverging_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(corpus, tmp_path):
    import json
    import re

    import jax
    import numpy as np

    from w2vjax import step as step_lib
    from w2vjax.checkpoint import Checkpoints
    from w2vjax.train import TrainingError
    from w2vjax.vocab import Vocab
    # lr 3 without the row-update cap overflows after a few dozen updates (step 40 here)
    cfg = make_config(model="cbow", dim=16, epochs=1, batch_size=64, steps_per_call=8, min_count=3, lr=3.0,
                      row_update_cap=0, log_every_s=0, checkpoint_every=8, keep=100, threads=1)
    with pytest.raises(TrainingError, match=r"loss became (nan|inf|-inf) at step \d+") as e:
        _train(cfg, tmp_path, corpus)
    bad_step = int(re.search(r"at step (\d+)", str(e.value)).group(1))
    steps = _steps(tmp_path)
    # a checkpoint after every good call (8 updates), none of the call that diverged
    assert steps and steps == list(range(8, bad_step, 8)), (steps, bad_step)
    ckpt = Checkpoints(str(tmp_path))
    try:
        template = step_lib.abstract_state_tree(cfg, len(Vocab.load(tmp_path / "vocab.txt")))
        for s in steps:  # each one restores to finite tables
            tree = ckpt.manager.restore(s).state
            assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(tree["params"])), s
        state, _, _, _ = ckpt.restore(template)
        assert int(state.step) == steps[-1]
    finally:
        ckpt.close()
    losses = [json.loads(line)["loss"] for line in open(tmp_path / "metrics.jsonl")]
    assert losses and all(np.isfinite(losses))  # no non-finite loss logged
    for name in ("vectors.txt", "vectors.bin", "summary.json", "vectors.txt.tmp"):
        assert not (tmp_path / name).exists(), name
    # rerunning resumes from the last good checkpoint and diverges at the same step again
    with pytest.raises(TrainingError, match=f"at step {bad_step} "):
        _train(cfg, tmp_path, corpus)


def test_a_state_that_is_not_finite_is_never_saved(corpus, tmp_path, monkeypatch):
    # the loss is finite but the last update of a call overflowed the tables: simulated
    import jax.numpy as jnp
    from w2vjax import train as train_lib
    monkeypatch.setattr(train_lib, "_all_finite", lambda params: jnp.asarray(False))
    cfg = make_config(model="cbow", dim=8, epochs=1, min_count=3, checkpoint_every=8, steps_per_call=8,
                      batch_size=256)
    with pytest.raises(train_lib.TrainingError, match="tables hold NaN or inf at step 8 .*checkpoints before it"):
        _train(cfg, tmp_path, corpus)
    ckpts = tmp_path / "checkpoints"
    assert not ckpts.exists() or not [d for d in ckpts.iterdir() if d.name.isdigit()]


def test_sigterm_in_start_up_is_one_line_and_exit_130(corpus, tmp_path):
    """SIGTERM as soon as the run has made its work dir (start-up, prepare): exit 130 and one
    line, like SIGINT, not the silent 143 of Python's default; nothing exported."""
    import signal
    import subprocess
    import time
    work = tmp_path / "w"
    p = subprocess.Popen(_cli(corpus, work), stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not work.exists() and p.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    p.send_signal(signal.SIGTERM)
    err = p.communicate(timeout=120)[1]
    assert p.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("w2vjax: ")
    assert not (work / "vectors.bin").exists()
