"""A work dir's contents are checked before they are trusted: the corpus, vocabulary and
settings its checkpoints hold, the checkpoints' arrays, and the prepared data."""

import os
import shutil

import numpy as np
import pytest

from w2vjax import make_config
from w2vjax.checkpoint import IdentityError
from w2vjax.prepare import prepare
from w2vjax.train import Interrupted, train_and_evaluate


def _train(cfg, workdir, corpus, **kw):
    return train_and_evaluate(cfg, str(workdir), corpus, evaluate=False, progress=False, **kw)


@pytest.fixture
def cfg():
    return make_config(model="skipgram", dim=8, epochs=2, batch_size=64, steps_per_call=8, min_count=3, threads=1)


def _stopped(cfg, work, corpus, calls=3):
    with pytest.raises(Interrupted):
        _train(cfg, work, corpus, stop_after_calls=calls)


def test_another_corpus_in_a_work_dir_is_refused_unless_forced(cfg, head_corpus, tmp_path):
    work = tmp_path / "w"
    _stopped(cfg, work, head_corpus(20_000))
    smaller = head_corpus(6_000)
    with pytest.raises(IdentityError, match="another run.*corpus_sha256.*--force"):
        _train(cfg, work, smaller)
    _train(cfg, work, smaller, force=True)
    words = [line.split()[0] for line in open(work / "vectors.txt").readlines()[1:]]
    assert words == [line.split()[0] for line in open(work / "vocab.txt")]


def test_deleted_config_json_does_not_resume_other_settings(cfg, head_corpus, tmp_path):
    corpus = head_corpus(20_000)
    _stopped(cfg, tmp_path, corpus)
    os.remove(tmp_path / "config.json")
    other = make_config(model="skipgram", dim=9, epochs=2, batch_size=64, steps_per_call=8, min_count=3, threads=1)
    with pytest.raises(IdentityError, match="settings.model.dim: 8 -> 9"):
        _train(other, tmp_path, corpus)
    _train(other, tmp_path, corpus, force=True)
    assert open(tmp_path / "vectors.txt").readline().split() == [str(sum(1 for _ in open(tmp_path / "vocab.txt"))),
                                                                 "9"]


def test_a_flipped_byte_in_the_latest_checkpoint_is_skipped(cfg, head_corpus, tmp_path, caplog):
    corpus = head_corpus(20_000)
    cfg = make_config(model="skipgram", dim=8, epochs=2, batch_size=64, steps_per_call=8, min_count=3, threads=1,
                      checkpoint_every=16)
    _train(cfg, tmp_path / "straight", corpus)
    work = tmp_path / "w"
    _stopped(cfg, work, corpus, calls=6)
    steps = sorted(int(d.name) for d in (work / "checkpoints").iterdir() if d.name.isdigit())
    assert len(steps) >= 2
    # flip one bit of the largest array file of the latest checkpoint
    files = [f for f in (work / "checkpoints" / str(steps[-1]) / "state").rglob("*") if f.is_file()]
    target = max(files, key=lambda f: f.stat().st_size)
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 1
    target.write_bytes(bytes(raw))
    caplog.set_level("WARNING", logger="w2vjax")
    _train(cfg, work, corpus)
    assert any(f"checkpoint {steps[-1]}" in m and "unreadable" in m for m in caplog.messages), caplog.messages
    assert (work / "vectors.bin").read_bytes() == (tmp_path / "straight" / "vectors.bin").read_bytes()


def test_prepared_data_is_checked_against_its_hashes(head_corpus, tmp_path):
    src = head_corpus(6_000)
    corpus = tmp_path / "c.txt"
    shutil.copy(src, corpus)
    first = prepare(str(corpus), str(tmp_path / "w"), 3)
    # new content of the same size with the mtime kept (cp -p): prepared again
    text = corpus.read_bytes()
    st = os.stat(corpus)
    corpus.write_bytes(text.replace(b"the ", b"teh "))
    os.utime(corpus, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(corpus).st_size == st.st_size
    second = prepare(str(corpus), str(tmp_path / "w"), 3)
    assert second.corpus_sha256 != first.corpus_sha256 and "teh" in list(second.vocab.words)
    # an edited ids.u32 (ids beyond the vocabulary): prepared again, not trusted
    ids_path = tmp_path / "w" / "data" / "ids.u32"
    expected = np.array(second.ids)  # a copy: the edit below rewrites the mapped file in place
    ids = np.fromfile(ids_path, np.uint32)
    ids[5] = 10 ** 6
    ids.tofile(ids_path)
    third = prepare(str(corpus), str(tmp_path / "w"), 3)
    assert int(np.asarray(third.ids).max()) < len(third.vocab)
    assert np.array_equal(np.asarray(third.ids), expected)
    # an edited vocab.txt: prepared again
    (tmp_path / "w" / "vocab.txt").write_text("a 5\nb 4\n")
    assert list(prepare(str(corpus), str(tmp_path / "w"), 3).vocab.words) == list(second.vocab.words)


def test_a_second_run_on_a_locked_work_dir_is_refused_with_the_pid(head_corpus, tmp_path):
    import subprocess
    import sys
    from w2vjax.train import workdir_lock
    with workdir_lock(str(tmp_path)):
        r = subprocess.run([sys.executable, "-m", "w2vjax", "train", head_corpus(6_000), "--workdir", str(tmp_path),
                            "--min-count", "3", "--quiet", "--no-eval"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"w2vjax: error: work dir {str(tmp_path)!r} is in use by another w2vjax run (PID {os.getpid()}); "
        "wait for it to end or use another --workdir"]
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("kw,match", [({"epochs": 1.5}, "--epochs must be an integer"),
                                      ({"noise_exponent": float("inf")}, "--noise-exponent must be a finite"),
                                      ({"lr": float("nan")}, "--lr must be a finite"),
                                      ({"seed": -1}, "--seed must be in"), ({"seed": 10 ** 20}, "--seed must be in"),
                                      ({"dim": "20"}, "--dim must be a number")])
def test_settings_of_the_wrong_type_or_not_finite_are_refused(kw, match):
    from w2vjax.config import ConfigError
    with pytest.raises(ConfigError, match=match):
        make_config(**kw)


def test_a_large_noise_exponent_gives_a_distribution_not_nan():
    from w2vjax.vocab import Vocab
    vocab = Vocab(("a", "b", "c"), np.array([10 ** 6, 10 ** 5, 3]))
    p = vocab.noise_probs(300.0)
    assert np.isfinite(p).all() and p[0] == pytest.approx(1.0) and p.sum() == pytest.approx(1.0)
    assert np.array_equal(vocab.noise_probs(0.75), (vocab.counts ** 0.75) / (vocab.counts ** 0.75).sum())


def test_one_tokenizer_rule_bom_and_corrupt_deflate(tmp_path):
    import gzip
    import pathlib
    from w2vjax.prepare import CorpusError
    words = "alpha beta\u00a0gamma delta\u2028eps beta\u00a0gamma " * 4
    (tmp_path / "c.txt").write_text("\ufeff" + words + "\n" + words, encoding="utf-8")
    c = prepare(pathlib.Path(tmp_path / "c.txt"), str(tmp_path / "w"), 2)  # a Path corpus, too
    assert c.vocab.counts[c.vocab.words.index("alpha")] == 8  # the BOM is dropped, not part of the first word
    assert "beta\u00a0gamma" in c.vocab.words and "delta\u2028eps" in c.vocab.words  # not ASCII whitespace
    assert all("\ufeff" not in w for w in c.vocab.words)
    from w2vjax.vocab import Vocab
    assert Vocab.load(tmp_path / "w" / "vocab.txt").words == c.vocab.words  # the tool reads its own vocab.txt
    raw = gzip.compress(b"one two three " * 5000)
    bad = bytearray(raw)
    bad[len(bad) // 2: len(bad) // 2 + 8] = b"\xff" * 8
    (tmp_path / "bad.gz").write_bytes(bytes(bad))
    with pytest.raises(CorpusError, match="corrupt or truncated"):
        prepare(str(tmp_path / "bad.gz"), str(tmp_path / "w2"), 1)


@pytest.mark.parametrize("damage", ["data-is-a-file", "ids-is-a-dir", "meta-is-a-dir", "vocab-is-a-dir"])
def test_damaged_prepared_data_is_made_again_from_the_corpus(head_corpus, tmp_path, damage):
    corpus, work = head_corpus(6_000), tmp_path / "w"
    first = prepare(corpus, str(work), 3)
    expected = np.array(first.ids)
    target = {"data-is-a-file": work / "data", "ids-is-a-dir": work / "data" / "ids.u32",
              "meta-is-a-dir": work / "data" / "prepare.json", "vocab-is-a-dir": work / "vocab.txt"}[damage]
    shutil.rmtree(target) if target.is_dir() else os.remove(target)
    target.write_text("x") if damage == "data-is-a-file" else target.mkdir()
    again = prepare(corpus, str(work), 3)  # (was: [Errno 17] File exists / [Errno 21] Is a directory)
    assert np.array_equal(np.asarray(again.ids), expected) and again.vocab.words == first.vocab.words


@pytest.mark.parametrize("content", ["{bad", "[1, 2]", '{"train": 3}'])
def test_an_unreadable_config_json_is_named_with_force(cfg, head_corpus, tmp_path, capsys, content):
    from w2vjax import cli
    corpus = head_corpus(6_000)
    argv = ["train", corpus, "--workdir", str(tmp_path), "--quiet", "--no-eval", "--dim", "4", "--min-count", "3",
            "--epochs", "1", "--keep-after", "all"]
    assert cli.main(argv) == 0
    (tmp_path / "config.json").write_text(content)
    capsys.readouterr()
    assert cli.main(argv[:-4] + ["--epochs", "2", "--keep-after", "all"]) == 2  # (more epochs read config.json too)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "config.json is unreadable" in err[0] and "--force" in err[0] and "->" not in err[0], err
    assert cli.main(argv + ["--force"]) == 0


def test_a_failed_write_names_the_file_and_leaves_no_temporary(tmp_path):
    import errno
    from w2vjax import export

    def chunks():
        yield b"2 3\n"
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as e:
        export.atomic_write(tmp_path / "vectors.bin", chunks())
    assert str(e.value) == f"cannot write {tmp_path / 'vectors.bin'}: No space left on device"
    assert e.value.errno == errno.ENOSPC and os.listdir(tmp_path) == []
