"""The command line: outputs, queries, and one-line errors for bad input."""

import re
import subprocess
import sys

import pytest

from w2vjax.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    corpus = d / "c.txt"
    corpus.write_text(("the king rules the land and the queen rules the land too " * 400 + "\n") * 3)
    assert main(["train", str(corpus), "--workdir", str(d / "wd"), "--dim", "8", "--epochs", "1",
                 "--min-count", "2", "--quiet", "--no-eval"]) == 0
    return d / "wd"


def test_queries(trained, capsys):
    capsys.readouterr()
    assert main(["neighbors", str(trained / "vectors.bin"), "king", "--topn", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("king:") and len(out.strip().splitlines()) == 4
    assert main(["analogy", str(trained / "vectors.txt"), "king", "queen", "land", "--topn", "2"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    assert main(["eval", str(trained / "vectors.bin")]) == 0
    report = capsys.readouterr().out
    assert "capital-common-countries" in report and "total" in report and "ws353" in report


def _err(argv, capsys, code=2):
    got = main(argv)
    err = capsys.readouterr().err.strip()
    assert got == code, (got, err)
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("flags,needle", [
    (["--dim", "0"], "--dim"),
    (["--window", "0"], "--window"),
    (["--negative", "-1"], "--negative"),
    (["--negative", "0", "--loss", "ns"], "--negative"),
    (["--epochs", "0"], "--epochs"),
    (["--lr", "-0.1"], "--lr"),
    (["--min-count", "0"], "--min-count"),
    (["--sample", "-1"], "--sample"),
    (["--batch-size", "0"], "--batch-size"),
])
def test_impossible_settings(tmp_path, capsys, flags, needle):
    c = tmp_path / "c.txt"
    c.write_text("a b c " * 10)
    err = _err(["train", str(c), "--workdir", str(tmp_path / "wd")] + flags, capsys)
    assert needle in err
    assert not (tmp_path / "wd").exists()  # nothing written for a refused config


def test_bad_corpora(tmp_path, capsys):
    assert "does not exist" in _err(["train", str(tmp_path / "nope.txt"), "--workdir", str(tmp_path / "w")], capsys)
    (tmp_path / "empty.txt").write_text("")
    assert "empty" in _err(["train", str(tmp_path / "empty.txt"), "--workdir", str(tmp_path / "w")], capsys)
    (tmp_path / "bin.dat").write_bytes(bytes(range(256)) * 10)
    assert "not a text file" in _err(["train", str(tmp_path / "bin.dat"), "--workdir", str(tmp_path / "w")], capsys)
    (tmp_path / "rare.txt").write_text("every word here is different from all others")
    assert "--min-count" in _err(["train", str(tmp_path / "rare.txt"), "--workdir", str(tmp_path / "w")], capsys)
    assert not (tmp_path / "w" / "vectors.txt").exists()


def test_bad_vector_files(tmp_path, capsys, trained):
    (tmp_path / "v.txt").write_text("3 4\nthe 1 2 3\n")
    assert "v.txt" in _err(["neighbors", str(tmp_path / "v.txt"), "the"], capsys)
    data = (trained / "vectors.bin").read_bytes()
    (tmp_path / "t.bin").write_bytes(data[: len(data) // 2])
    assert "truncated" in _err(["eval", str(tmp_path / "t.bin")], capsys)
    assert "not in the vocabulary" in _err(["neighbors", str(trained / "vectors.bin"), "zebra"], capsys)


def test_diverging_loss_is_one_line_naming_the_step(tmp_path, capsys, head_corpus):
    err = _err(["train", head_corpus(60_000), "--workdir", str(tmp_path / "wd"), "--model", "cbow", "--dim", "16",
                "--epochs", "1", "--batch-size", "64", "--steps-per-call", "8", "--min-count", "3", "--lr", "3",
                "--row-update-cap", "0", "--checkpoint-every", "8", "--quiet", "--no-eval"], capsys)
    assert re.fullmatch(r"w2vjax: error: loss became (nan|inf|-inf) at step \d+ .*lower --lr.*", err), err
    assert not (tmp_path / "wd" / "vectors.txt").exists()


def test_module_entry_point_exits_nonzero_without_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "w2vjax", "train", str(tmp_path / "missing.txt"),
                        "--workdir", str(tmp_path / "wd")], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("w2vjax: error:") and "Traceback" not in r.stderr
