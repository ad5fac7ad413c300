import bz2
import gzip
import zipfile

import pytest

from w2vjax.prepare import CorpusError, prepare

TEXT = "the cat sat on the mat\nthe dog sat on the log\n\nthe end of the cat\n"


def _write(path, text, kind):
    data = text.encode()
    if kind == "gz":
        path = path.with_suffix(".gz"); path.write_bytes(gzip.compress(data))
    elif kind == "bz2":
        path = path.with_suffix(".bz2"); path.write_bytes(bz2.compress(data))
    elif kind == "zip":
        path = path.with_suffix(".zip")
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("corpus.txt", data)
    else:
        path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("kind", ["txt", "gz", "bz2", "zip", "txt-tiny-blocks"])
def test_formats_give_the_same_ids(tmp_path, kind, monkeypatch):
    if kind == "txt-tiny-blocks":  # ids remapped 3 tokens at a time: line breaks on block edges
        import sys
        monkeypatch.setattr(sys.modules["w2vjax.prepare"], "BLOCK_TOKENS", 3)
        kind = "txt"
    c = prepare(_write(tmp_path / "c.txt", TEXT, kind), str(tmp_path / "wd"), min_count=2)
    assert c.vocab.words == ("the", "cat", "sat", "on")  # ties keep first-occurrence order
    assert c.vocab.counts.tolist() == [6, 2, 2, 2]
    words = [c.vocab.words[i] for i in c.ids]
    assert words == ["the", "cat", "sat", "on", "the", "the", "sat", "on", "the", "the", "the", "cat"]
    # lines are sentences (the empty line makes none), bounds count in-vocabulary tokens
    assert c.sentences.tolist() == [0, 5, 9, 12]


def test_long_lines_are_cut_and_chunks_never_split_words(tmp_path, monkeypatch):
    import sys
    prep = sys.modules["w2vjax.prepare"]
    monkeypatch.setattr(prep, "CHUNK_BYTES", 7)  # tiny read chunks: words straddle chunk edges
    text = " ".join(["alpha", "beta", "gamma"] * 50)  # one 150-word line, no newline at the end
    c = prepare(_write(tmp_path / "c.txt", text, "txt"), str(tmp_path / "wd"), min_count=1,
                max_sentence_length=40)
    assert c.vocab.words == ("alpha", "beta", "gamma")
    assert c.num_words == 150
    assert c.sentences.tolist() == [0, 40, 80, 120, 150]
    assert [c.vocab.words[i] for i in c.ids[:4]] == ["alpha", "beta", "gamma", "alpha"]


def test_real_text8_head_statistics():
    c = prepare("../shared/data/corpora/text8_head.gz", "/tmp/w2vjax-test-text8", min_count=5)
    raw = gzip.open("../shared/data/corpora/text8_head.gz").read().split()
    from collections import Counter
    cnt = Counter(raw)
    kept = {w for w, n in cnt.items() if n >= 5}
    assert len(c.vocab) == len(kept)
    assert c.num_words == sum(cnt[w] for w in kept)
    assert c.vocab.words[:3] == ("the", "of", "and") or c.vocab.words[0] == "the"
    assert c.vocab.counts[0] == cnt[b"the"]
    first = [w for w in raw[:50] if w in kept][:20]
    assert [c.vocab.words[i] for i in c.ids[:20]] == [w.decode() for w in first]


def test_prepare_is_reused_when_nothing_changed(tmp_path):
    p = _write(tmp_path / "c.txt", TEXT, "txt")
    prepare(p, str(tmp_path / "wd"), min_count=1)
    ids = tmp_path / "wd" / "data" / "ids.u32"
    before = ids.stat().st_mtime_ns
    prepare(p, str(tmp_path / "wd"), min_count=1)
    assert ids.stat().st_mtime_ns == before
    c = prepare(p, str(tmp_path / "wd"), min_count=2)  # a different setting rebuilds
    assert len(c.vocab) == 4


@pytest.mark.parametrize("content,message", [
    (None, "does not exist"),
    (b"", "is empty"),
    (b"   \n\n  ", "holds no words"),
    (b"\x00\x01\x02binary\x00", "not a text file"),
    (b"caf\xe9 au lait " * 10, "not UTF-8"),
    (b"one two three four", "occurs 5 or more times"),
])
def test_bad_corpora_are_refused_with_a_clear_message(tmp_path, content, message):
    p = tmp_path / "bad.txt"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(CorpusError, match=message):
        prepare(str(p), str(tmp_path / "wd"))
    assert not (tmp_path / "wd" / "data" / "prepare.json").exists()
    leftovers = list((tmp_path / "wd" / "data").glob("*")) if (tmp_path / "wd" / "data").exists() else []
    assert leftovers == []  # nothing half-written


def test_bad_archives(tmp_path):
    z = tmp_path / "two.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("a.txt", "x y"); f.writestr("b.txt", "y z")
    with pytest.raises(CorpusError, match="exactly one"):
        prepare(str(z), str(tmp_path / "wd"))
    g = tmp_path / "trunc.gz"
    g.write_bytes(gzip.compress(b"word " * 100000)[:200])
    with pytest.raises(CorpusError, match="corrupt or truncated"):
        prepare(str(g), str(tmp_path / "wd"))
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"this is not a zip")
    with pytest.raises(CorpusError, match="not a valid zip"):
        prepare(str(fake), str(tmp_path / "wd"))


@pytest.mark.parametrize("byte", [0x01, 0x08, 0x0e, 0x1b, 0x1f, 0x7f])
def test_control_characters_are_refused_naming_the_byte_and_token(tmp_path, monkeypatch, byte):
    import w2vjax.prepare as prep
    monkeypatch.setattr(prep, "CHUNK_BYTES", 16)  # the bad token in a later chunk: the offset is the file's
    text = b"alpha beta gamma delta\nalpha beta ga" + bytes([byte]) + b"mma delta\n"
    (tmp_path / "c.txt").write_bytes(text)
    with pytest.raises(CorpusError) as e:
        prepare(str(tmp_path / "c.txt"), str(tmp_path / "wd"), min_count=1)
    msg = str(e.value)
    assert f"0x{byte:02x} at byte {text.index(bytes([byte]))} " in msg and "'ga" in msg and "mma'" in msg, msg
    assert not (tmp_path / "wd" / "data").exists()


def test_vertical_tab_and_form_feed_separate_words_and_the_vectors_load(tmp_path):
    """End to end: whitespace control bytes split tokens (as bytes.split does); a corpus cleaned
    with the refusal's tr command trains, and its vectors load with no control character in a word."""
    import subprocess
    from w2vjax import cli, export
    bad = (b"the cat\x0bsat on\x0cthe mat the d\x1bog sat \n") * 40
    (tmp_path / "bad.txt").write_bytes(bad)
    assert cli.main(["train", str(tmp_path / "bad.txt"), "--workdir", str(tmp_path / "wd"), "--min-count", "1",
                     "--quiet", "--no-eval"]) == 2
    cmd = "tr '\\001-\\010\\016-\\037\\177' ' '"  # the command the message gives
    clean = subprocess.run(cmd, shell=True, input=bad, capture_output=True, check=True).stdout
    (tmp_path / "clean.txt").write_bytes(clean)
    assert cli.main(["train", str(tmp_path / "clean.txt"), "--workdir", str(tmp_path / "wd"), "--min-count", "1",
                     "--dim", "4", "--epochs", "1", "--quiet", "--no-eval"]) == 0
    for name in ("vectors.bin", "vectors.txt"):
        v = export.load_vectors(tmp_path / "wd" / name)
        assert sorted(v.words) == sorted({"the", "cat", "sat", "on", "mat", "d", "og"}), v.words


@pytest.mark.parametrize("chunk_bytes", [None, 5])
def test_the_c_tokenizer_gives_the_python_first_pass_exactly(tmp_path, monkeypatch, chunk_bytes):
    """kernels/tokenize.cc against the Python fallback: the same provisional ids, words, line
    breaks and sha256, on text with every separator bytes.split knows, runs of them, empty and
    CRLF lines, non-ASCII words (NBSP and U+2028 are not separators) and many distinct words
    (the hash table grows), also read in 5-byte chunks."""
    import sys
    import numpy as np
    prep = sys.modules["w2vjax.prepare"]
    if prep._tokenizer() is None:
        pytest.skip("no C++ compiler: prepare runs the Python loop only")
    if chunk_bytes:
        monkeypatch.setattr(prep, "CHUNK_BYTES", chunk_bytes)
    rng = np.random.default_rng(0)
    seps = [" ", "\t", "\n", "\x0b", "\x0c", "\r", "\r\n", "\n\n", "  \n \t"]
    words = ["the", "cat", "caf\u00e9", "na\u00efve", "a\u00a0b", "x\u2028y", "\u65e5\u672c"] + [
        f"w{i}" for i in range(70000 if chunk_bytes is None else 300)]
    text = "\n\n" + "".join(words[int(rng.integers(len(words)))] + seps[int(rng.integers(len(seps)))]
                           for _ in range(200000 if chunk_bytes is None else 3000)) + "end"
    path = tmp_path / "c.txt"
    path.write_bytes(text.encode())
    out = {}
    for native in (True, False):
        with prep.open_corpus(str(path)) as stream:
            out[native] = prep._first_pass(stream, str(path), str(tmp_path / f"ids{native}"), native=native)
    (w1, b1, n1, h1), (w0, b0, n0, h0) = out[True], out[False]
    assert n1 == n0 == len(text.encode().split()) and w1 == w0 and h1 == h0
    assert b1.dtype == b0.dtype == np.int64 and b1.tolist() == b0.tolist() and len(b0) == text.count("\n")
    assert (tmp_path / "idsTrue").read_bytes() == (tmp_path / "idsFalse").read_bytes()
