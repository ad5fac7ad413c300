"""A sweep of bad inputs and faults through the CLI: each ends with exit 2 and one line on
stderr (no traceback), and leaves the work dir untouched (or usable).  In-process and before
training starts, so the sweep stays fast."""

import gzip
import io
import os
import signal
import zipfile

import pytest

from w2vjax import cli, export


def _corpora(d):
    good = b"alpha beta gamma delta " * 50
    files = {"good.txt": good, "empty.txt": b"", "nul.txt": b"alpha \0 beta " * 10,
             "latin1.txt": "caf\xe9 ".encode("latin-1") * 10,
             "control.txt": b"alpha be\x1bta gamma " * 10, "spaces.txt": b"   \n\t  \n",
             "badzip.zip": b"PK\x03\x04 not really a zip",
             "truncated.gz": gzip.compress(good)[:40]}
    raw = bytearray(gzip.compress(good * 40))
    raw[len(raw) // 2: len(raw) // 2 + 8] = b"\xff" * 8
    files["corrupt.gz"] = bytes(raw)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", good)
        z.writestr("b.txt", good)
    files["two.zip"] = buf.getvalue()
    for name, data in files.items():
        (d / name).write_bytes(data)
    (d / "adir").mkdir()
    os.mkfifo(d / "fifo")  # no writer: opening it would block
    # headers claiming more than the file holds (allocating [V, D] first would need 800 GB / 1.2 TB)
    (d / "huge.vec").write_text("10 100000000\nalpha 1 2\n")
    (d / "huge2.vec").write_text("2 100000000000\nalpha 1\nbeta 2\n")
    (d / "huge.bin").write_bytes(b"2 300000000000\nalpha \xff\xfe\x00\x81beta \xff\xfe\x00\x81\n")
    (d / "bad.vec").write_text("3 999999999999\nalpha 1 2\n")
    (d / "short.vec").write_text("2 3\nalpha 1 2 3\n")
    return d


SETTINGS = [["--dim", "0"], ["--dim", "x"], ["--window", "0"], ["--epochs", "0"], ["--epochs", "1.5"],
            ["--lr", "0"], ["--lr", "nan"], ["--lr", "inf"], ["--noise-exponent", "inf"],
            ["--noise-exponent", "-1"], ["--sample", "-1"], ["--sample", "nan"], ["--seed", "-1"],
            ["--seed", "1e20"], ["--min-count", "0"], ["--max-vocab", "1"], ["--negative", "-1"],
            ["--model", "glove"], ["--loss", "glove"], ["--loss", "nce", "--negative", "0"], ["--batch-size", "0"], ["--steps-per-call", "0"],
            ["--keep", "0"], ["--min-lr-ratio", "2"], ["--init-scale", "0"], ["--init-scale", "nan"], ["--max-sentence-length", "1"], ["--threads", "-1"],
            ["--pallas", "--cpu-kernel"], ["--no-such-flag"], ["--init-vectors", "missing.vec"],
            ["--init-vectors", "short.vec"], ["--read-vocab", "missing.vocab"], ["--read-vocab", "bad.vec"],
            ["--init-vectors", "fifo"], ["--init-vectors", "/dev/zero"], ["--init-vectors", "huge.bin"],
            ["--read-vocab", "fifo"], ["--read-vocab", "/dev/zero"], ["--window", "10000000"],
            ["--window", "10000000", "--model", "skipgram"], ["--window", "100000", "--steps-per-call", "100000"]]
CORPORA = ["missing.txt", "adir", "empty.txt", "nul.txt", "latin1.txt", "control.txt", "spaces.txt", "badzip.zip",
           "truncated.gz", "corrupt.gz", "two.zip", "fifo", "/dev/zero"]
VECTORS = [["neighbors", "bad.vec", "alpha"], ["neighbors", "short.vec", "alpha"],
           ["neighbors", "missing.vec", "alpha"], ["analogy", "missing.vec", "a", "b", "c"],
           ["eval", "/dev/zero"], ["eval", "fifo"], ["neighbors", "huge.vec", "alpha"],
           ["neighbors", "huge2.vec", "alpha"], ["neighbors", "huge.bin", "alpha"], ["eval", "adir"],
           ["eval", "huge.bin", "--analogies", "fifo"]]
CASES = ([("locked", ["good.txt"])] + [("settings", a) for a in SETTINGS] + [("corpus", [c]) for c in CORPORA]
         + [("vectors", v) for v in VECTORS])


class Hung(BaseException):
    pass


def _hung(signum, frame):
    raise Hung("cli.main blocked (reading a FIFO?)")


@pytest.mark.parametrize("kind,args", CASES, ids=["-".join(a) for _, a in CASES])
def test_bad_input_exits_2_with_one_line(kind, args, tmp_path, capsys, monkeypatch):
    d = _corpora(tmp_path)
    monkeypatch.chdir(d)
    work = d / "work"
    if kind == "settings":
        argv = ["train", "good.txt", "--workdir", str(work), "--quiet", "--no-eval"] + args
    elif kind == "corpus":
        argv = ["train", args[0], "--workdir", str(work), "--quiet", "--no-eval", "--min-count", "1"]
    else:
        argv = args
    if kind == "locked":  # another run holds the work dir
        from w2vjax.train import workdir_lock
        argv = ["train", "good.txt", "--workdir", str(work), "--quiet", "--no-eval", "--min-count", "1"]
        lock = workdir_lock(str(work))
        lock.__enter__()
    signal.signal(signal.SIGALRM, _hung)  # a FIFO opened for reading blocks: fail instead of hanging
    signal.alarm(30)
    try:
        rc = cli.main(argv)
    except SystemExit as e:  # argparse's own errors
        rc = e.code
    finally:
        signal.alarm(0)
        if kind == "locked":
            lock.__exit__(None, None, None)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, err
    assert len(lines) == 1 and "Traceback" not in err and lines[0].startswith(("w2vjax: error:", "usage:")) \
        or (len(lines) == 2 and lines[0].startswith("usage:")), err
    # nothing half-written: no checkpoints, no vectors, no config
    for name in ("checkpoints", "config.json", "vectors.bin", "vectors.txt"):
        assert not (work / name).exists(), (name, os.listdir(work))
    if kind == "corpus":  # a refused corpus leaves no (empty) data/ and no work dir of its own
        assert not work.exists(), os.listdir(work)
    if work.exists() and kind != "locked":  # what it left (prepared data) is usable: good settings train
        assert sorted(os.listdir(work)) == ["data", "lock", "vocab.txt"], os.listdir(work)
        assert cli.main(["train", "good.txt", "--workdir", str(work), "--quiet", "--no-eval", "--dim", "4",
                         "--epochs", "1"]) == 0, capsys.readouterr().err
        assert len(export.load_vectors(work / "vectors.bin")) == 4


def test_tables_beyond_the_host_memory_are_refused_before_work(tmp_path, capsys):
    (tmp_path / "c.txt").write_bytes(" ".join(f"w{i}" for i in range(3000)).encode() * 2)
    rc = cli.main(["train", str(tmp_path / "c.txt"), "--workdir", str(tmp_path / "w"), "--min-count", "1",
                   "--dim", "2000000", "--quiet", "--no-eval"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "GiB of host memory" in err[0] and "--dim" in err[0], err
    assert not (tmp_path / "w" / "checkpoints").exists()
