"""word2vec text/binary files, .npy, and the Vectors queries (brute force and gensim as references)."""

import os

import numpy as np
import pytest

from w2vjax.export import (Vectors, VectorsError, load_npy, load_vectors, save_npy, save_word2vec_binary,
                           save_word2vec_text, top_indices)

WORDS = ["the", "of", "and", "héllo", "naïve", "日本", "king", "queen", "man", "woman", "x"]


def random_vectors(n=len(WORDS), dim=7, seed=0):
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    vecs[1, 0] = 1e-30  # tiny, huge and exactly representable values survive the text format
    vecs[2, 1] = 3.0e38
    vecs[3, 2] = 0.0
    vecs[4, 3] = -0.0
    return vecs


@pytest.fixture
def small():
    return list(WORDS), random_vectors()


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


# ------------------------------------------------------------------ round trips


def test_binary_round_trip_is_exact(tmp_path, small):
    words, vecs = small
    p = str(tmp_path / "v.bin")
    save_word2vec_binary(p, words, vecs)
    v = load_vectors(p)
    assert v.words == words
    assert v.vectors.dtype == np.float32
    np.testing.assert_array_equal(v.vectors, vecs)


def test_binary_layout_is_word2vec_c(tmp_path):
    p = str(tmp_path / "v.bin")
    vecs = np.array([[1.0, -2.0], [0.5, 0.25]], np.float32)
    save_word2vec_binary(p, ["a", "bé"], vecs)
    data = read_bytes(p)
    expected = (b"2 2\n" + b"a " + vecs[0].astype("<f4").tobytes() + b"\n"
                + "bé".encode() + b" " + vecs[1].astype("<f4").tobytes() + b"\n")
    assert data == expected


def test_text_round_trip_is_exact_with_default_precision(tmp_path, small):
    words, vecs = small
    p = str(tmp_path / "v.txt")
    save_word2vec_text(p, words, vecs)
    lines = read_bytes(p).decode("utf-8").split("\n")
    assert lines[0] == f"{len(words)} {vecs.shape[1]}"
    assert lines[1].startswith("the ") and not lines[1].endswith(" ")
    assert lines[-1] == "" and len(lines) == len(words) + 2
    v = load_vectors(p)
    assert v.words == words
    np.testing.assert_array_equal(v.vectors, vecs)


def test_text_precision_6_is_close(tmp_path, small):
    words, vecs = small
    p = str(tmp_path / "v.txt")
    save_word2vec_text(p, words, vecs, precision=6)
    v = load_vectors(p)
    np.testing.assert_allclose(v.vectors, vecs, rtol=5.1e-6, atol=0)


def test_larger_round_trip_both_formats(tmp_path):
    rng = np.random.default_rng(3)
    vecs = (rng.standard_normal((5000, 30)) * rng.lognormal(0, 3, (5000, 1))).astype(np.float32)
    words = [f"w{i}" for i in range(5000)]  # more rows than one write/parse chunk
    for fmt, save in (("txt", save_word2vec_text), ("bin", save_word2vec_binary)):
        p = str(tmp_path / f"v.{fmt}")
        save(p, words, vecs)
        v = load_vectors(p)
        assert v.words == words
        np.testing.assert_array_equal(v.vectors, vecs)


def test_npy_round_trip(tmp_path, small):
    words, vecs = small
    npy, wtxt = save_npy(tmp_path / "emb", words, vecs)
    assert npy.endswith("emb.npy") and wtxt.endswith("emb.words.txt")
    for arg in (tmp_path / "emb", npy):
        v = load_npy(arg)
        assert v.words == words
        np.testing.assert_array_equal(v.vectors, vecs)
    np.testing.assert_array_equal(load_vectors(npy).vectors, vecs)


def test_empty_vocabulary_round_trip(tmp_path):
    for save in (save_word2vec_text, save_word2vec_binary):
        p = str(tmp_path / "empty")
        save(p, [], np.zeros((0, 4), np.float32))
        v = load_vectors(p)
        assert len(v) == 0 and v.vectors.shape == (0, 4)


def test_reads_word2vec_c_text_and_binary_variants(tmp_path):
    # word2vec.c's text writer ends each number with a space ("%lf "); Windows tools add CRLF;
    # some binary writers leave out the newline after each vector.
    vecs = np.array([[1.5, -2.0, 0.25], [3.0, 4.0, -5.0]], np.float32)
    text = "2 3\r\nab 1.500000 -2.000000 0.250000 \r\ncd 3.000000\t4.000000  -5.000000 \r\n\n"
    v = load_vectors(write_bytes(tmp_path / "c.txt", text.encode()))
    assert v.words == ["ab", "cd"]
    np.testing.assert_array_equal(v.vectors, vecs)
    raw = b"2 3\n" + b"ab " + vecs[0].tobytes() + b"cd " + vecs[1].tobytes()
    v = load_vectors(write_bytes(tmp_path / "c.bin", raw))
    assert v.words == ["ab", "cd"]
    np.testing.assert_array_equal(v.vectors, vecs)


def test_binary_detection_with_newline_and_space_bytes_in_floats(tmp_path):
    # float bytes that happen to be b"\n" or b" " must not confuse the reader
    vecs = np.frombuffer(b"\n\n\n\n    \n 1 " + b"\x00\x00\x80\x3f", dtype="<f4").reshape(1, 4).copy()
    p = str(tmp_path / "odd.bin")
    save_word2vec_binary(p, ["w"], vecs)
    np.testing.assert_array_equal(load_vectors(p).vectors, vecs)


def test_atomic_write_leaves_no_temp_and_keeps_old_file_on_error(tmp_path, small):
    words, vecs = small
    p = str(tmp_path / "v.bin")
    save_word2vec_binary(p, words, vecs)
    before = read_bytes(p)
    with pytest.raises(VectorsError, match="whitespace"):
        save_word2vec_binary(p, words[:-1] + ["two words"], vecs)
    with pytest.raises(VectorsError):
        save_word2vec_text(p, words[:-1], vecs)
    assert read_bytes(p) == before
    assert os.listdir(tmp_path) == ["v.bin"]
    save_word2vec_text(p, words, vecs * 0.5)  # replaces the existing file
    np.testing.assert_array_equal(load_vectors(p).vectors, vecs * 0.5)
    assert os.listdir(tmp_path) == ["v.bin"]


@pytest.mark.parametrize("bad", ["", "a b", "tab\there", "new\nline"])
def test_unwritable_words_are_rejected(tmp_path, bad):
    with pytest.raises(VectorsError, match="word 1"):
        save_word2vec_text(str(tmp_path / "v.txt"), ["ok", bad], np.zeros((2, 3), np.float32))


# ------------------------------------------------------------------ gensim interop


def test_gensim_loads_our_files(tmp_path, small):
    KeyedVectors = pytest.importorskip("gensim.models").KeyedVectors
    words, vecs = small
    pb, pt = str(tmp_path / "v.bin"), str(tmp_path / "v.txt")
    save_word2vec_binary(pb, words, vecs)
    save_word2vec_text(pt, words, vecs)
    kb = KeyedVectors.load_word2vec_format(pb, binary=True)
    assert kb.index_to_key == words
    np.testing.assert_array_equal(kb.vectors, vecs)
    kt = KeyedVectors.load_word2vec_format(pt, binary=False)
    assert kt.index_to_key == words
    np.testing.assert_allclose(kt.vectors, vecs, rtol=1e-7, atol=0)
    save_word2vec_text(pt, words, vecs, precision=6)
    kt = KeyedVectors.load_word2vec_format(pt, binary=False)
    np.testing.assert_allclose(kt.vectors, vecs, rtol=5.1e-6, atol=0)


def test_we_load_gensim_files(tmp_path, small):
    KeyedVectors = pytest.importorskip("gensim.models").KeyedVectors
    words, vecs = small
    kv = KeyedVectors(vecs.shape[1])
    kv.add_vectors(words, vecs)
    for binary in (True, False):
        p = str(tmp_path / f"g{binary}")
        kv.save_word2vec_format(p, binary=binary)
        v = load_vectors(p)
        assert v.words == words
        np.testing.assert_array_equal(v.vectors, vecs)


def test_queries_match_gensim():
    KeyedVectors = pytest.importorskip("gensim.models").KeyedVectors
    rng = np.random.default_rng(5)
    words = [f"w{i}" for i in range(400)]
    vecs = rng.standard_normal((400, 16)).astype(np.float32)
    v = Vectors(words, vecs)
    kv = KeyedVectors(16)
    kv.add_vectors(words, vecs)
    for w in ("w0", "w17", "w399"):
        ours = v.most_similar(w, topn=8)
        theirs = kv.most_similar(w, topn=8)
        assert [x for x, _ in ours] == [x for x, _ in theirs]
        np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-5)
    for a, b, c in (("w1", "w2", "w3"), ("w10", "w300", "w42")):
        ours = v.analogy(a, b, c, topn=5)
        theirs = kv.most_similar(positive=[b, c], negative=[a], topn=5)
        assert [x for x, _ in ours] == [x for x, _ in theirs]
        np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-5)


# ------------------------------------------------------------------ Vectors queries


def test_vectors_basics_and_brute_force_neighbours(small):
    words, vecs = small
    v = Vectors(words, vecs, name="small.bin")
    assert len(v) == len(words) and v.dim == 7
    assert "king" in v and "kong" not in v
    np.testing.assert_array_equal(v["queen"], vecs[7])
    v64 = vecs.astype(np.float64)  # (one entry is 3e38: its square overflows float32)
    unit = v64 / np.linalg.norm(v64, axis=1, keepdims=True)
    np.testing.assert_allclose(np.linalg.norm(v.unit.astype(np.float64), axis=1), 1.0, rtol=1e-6)
    cos = unit @ unit[6]
    cos[6] = -np.inf
    expect = np.argsort(-cos)[:4]
    got = v.most_similar("king", topn=4)
    assert [w for w, _ in got] == [words[i] for i in expect]
    np.testing.assert_allclose([s for _, s in got], cos[expect], rtol=1e-5)
    assert all(w != "king" for w, _ in v.most_similar("king", topn=100))
    assert len(v.most_similar("king", topn=100)) == len(words) - 1
    assert [w for w, _ in v.most_similar("king", topn=3, restrict_vocab=5)] == \
        [words[i] for i in np.argsort(-cos[:5])[:3]]


def test_analogy_3cosadd_excludes_inputs():
    words = ["man", "woman", "king", "queen", "prince", "apple"]
    vecs = np.array([[1, 0, 0], [1, 1, 0], [3, 0, 1], [3, 3, 1], [3, 0.2, 1.1], [0, 0, 1]], np.float32)
    v = Vectors(words, vecs)
    assert v.analogy("man", "woman", "king")[0][0] == "queen"
    got = [w for w, _ in v.analogy("man", "woman", "king", topn=10)]
    assert set(got) == {"queen", "prince", "apple"}
    u = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    q = u[1] - u[0] + u[2]
    q /= np.linalg.norm(q)
    assert v.analogy("man", "woman", "king")[0][1] == pytest.approx(float(u[3] @ q), rel=1e-5)


def test_unknown_word_raises_with_the_vocabulary_named(small):
    v = Vectors(*small, name="vectors.bin")
    with pytest.raises(VectorsError, match=r"word 'xyz' is not in the vocabulary of vectors.bin"):
        v.most_similar("xyz")
    with pytest.raises(VectorsError, match="'nope'"):
        v.analogy("king", "nope", "man")
    with pytest.raises(VectorsError):
        v["xyz"]


def test_zero_vector_and_duplicates():
    v = Vectors(["a", "b", "a", "z"], np.array([[1, 0], [0, 1], [5, 5], [0, 0]], np.float32))
    assert v.index["a"] == 0  # first occurrence wins
    assert np.all(np.isfinite(v.unit)) and not v.unit[3].any()
    assert v.most_similar("z", topn=1)[0][1] == 0.0


def test_top_indices_ties_go_to_lower_index():
    s = np.array([0.5, 0.9, 0.9, 0.1, 0.9])
    assert top_indices(s, 2).tolist() == [1, 2]
    assert top_indices(s, 10).tolist() == [1, 2, 4, 0, 3]
    assert top_indices(s, 0).tolist() == []


def test_vectors_shape_mismatch():
    with pytest.raises(VectorsError, match="3 words but 2 vectors"):
        Vectors(["a", "b", "c"], np.zeros((2, 4)))
    with pytest.raises(VectorsError, match="matrix"):
        Vectors(["a"], np.zeros(4))


# ------------------------------------------------------------------ malformed files


def _one_line(e):
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_missing_empty_and_directory(tmp_path):
    with pytest.raises(VectorsError, match="no such file") as e:
        load_vectors(str(tmp_path / "nope.bin"))
    assert "nope.bin" in _one_line(e)
    with pytest.raises(VectorsError, match="empty.bin: empty file"):
        load_vectors(write_bytes(tmp_path / "empty.bin", b""))
    with pytest.raises(VectorsError, match="directory"):
        load_vectors(str(tmp_path))


@pytest.mark.parametrize("content", [b"hello world\nx 1 2\n", b"3\n", b"-1 5\n", b"2 0\n", b"1 2 3\n",
                                     b"\n", b"a" * 1000])
def test_bad_header(tmp_path, content):
    with pytest.raises(VectorsError, match="bad header") as e:
        load_vectors(write_bytes(tmp_path / "v.txt", content))
    assert _one_line(e).startswith("v.txt: ")


def test_truncated_text(tmp_path, small):
    words, vecs = small
    p = str(tmp_path / "vectors.txt")
    save_word2vec_text(p, words, vecs)
    data = read_bytes(p)
    lines = data.split(b"\n")
    cut_at_line = b"\n".join(lines[:5]) + b"\n"  # header + 4 records
    with pytest.raises(VectorsError) as e:
        load_vectors(write_bytes(p, cut_at_line))
    assert _one_line(e) == f"vectors.txt: truncated: header says {len(words)} words of dim 7, found 4"
    mid_line = cut_at_line + lines[5][:10]
    with pytest.raises(VectorsError, match="found 4"):
        load_vectors(write_bytes(p, mid_line))


def test_every_truncation_of_a_binary_file_is_reported(tmp_path, small):
    words, vecs = small
    p = str(tmp_path / "vectors.bin")
    save_word2vec_binary(p, words, vecs)
    data = read_bytes(p)
    q = str(tmp_path / "cut.bin")
    for n in range(1, len(data) - 1):  # the last byte is the optional final newline
        with pytest.raises(VectorsError) as e:
            load_vectors(write_bytes(q, data[:n]))
        _one_line(e)
    with pytest.raises(VectorsError) as e:
        load_vectors(write_bytes(q, data[:len(data) // 2]))
    assert _one_line(e).startswith(f"cut.bin: truncated: header says {len(words)} words of dim 7, found ")


def test_every_truncation_of_a_text_file_is_reported(tmp_path, small):
    words, vecs = small
    p = str(tmp_path / "vectors.txt")
    save_word2vec_text(p, words, vecs)
    data = read_bytes(p)
    last_line_start = data.rindex(b"\n", 0, len(data) - 1) + 1
    q = str(tmp_path / "cut.txt")
    for n in range(1, len(data) - 1):
        try:
            load_vectors(write_bytes(q, data[:n]))
        except VectorsError as e:
            assert "\n" not in str(e)
        else:  # only a cut inside the last number can still parse (as a shorter number)
            assert n > last_line_start


def test_wrong_number_count_and_bad_numbers(tmp_path):
    p = tmp_path / "v.txt"
    with pytest.raises(VectorsError) as e:
        load_vectors(write_bytes(p, b"2 3\na 1 2 3\nb 1 2\n"))
    assert _one_line(e) == ("v.txt: line 3 (word 'b'): expected a word and 3 numbers, found 2 numbers "
                            "(truncated?)")
    with pytest.raises(VectorsError, match=r"line 2 \(word 'a'\): expected a word and 3 numbers, found 4"):
        load_vectors(write_bytes(p, b"2 3\na 1 2 3 4\nb 1 2 3\n"))
    with pytest.raises(VectorsError, match=r"line 3 \(word 'b'\): not a number: '2,5'"):
        load_vectors(write_bytes(p, b"2 3\na 1 2 3\nb 1 2,5 3\n"))
    with pytest.raises(VectorsError, match="line 4 holds another record"):
        load_vectors(write_bytes(p, b"2 3\na 1 2 3\nb 1 2 3\nc 1 2 3\n"))
    with pytest.raises(VectorsError, match="NaN or inf.*'b'"):
        load_vectors(write_bytes(p, b"2 3\na 1 2 3\nb 1 nan 3\n"))


def test_non_utf8_words(tmp_path):
    vec = np.ones(3, np.float32).tobytes()
    with pytest.raises(VectorsError, match=r"v.bin: record 2 .*not valid UTF-8"):
        load_vectors(write_bytes(tmp_path / "v.bin", b"2 3\nab " + vec + b"\n\xff\xfe " + vec + b"\n"))
    with pytest.raises(VectorsError, match=r"v.txt: line 3: not valid UTF-8"):
        load_vectors(write_bytes(tmp_path / "v.txt", b"2 3\na 1 2 3\n\xe9t\xe9 1 2 3\n"))


def test_binary_with_trailing_garbage_or_wrong_header(tmp_path, small):
    words, vecs = small
    p = str(tmp_path / "v.bin")
    save_word2vec_binary(p, words, vecs)
    data = read_bytes(p)
    with pytest.raises(VectorsError, match="more bytes follow the last record"):
        load_vectors(write_bytes(p, data + b"extra " + vecs[0].tobytes()))
    body = data[data.index(b"\n") + 1:]
    with pytest.raises(VectorsError):  # dimension in the header too large: records misalign
        load_vectors(write_bytes(p, f"{len(words)} 8\n".encode() + body))


def test_corrupted_binary_never_crashes_differently(tmp_path, small):
    words, vecs = small
    p = str(tmp_path / "v.bin")
    save_word2vec_binary(p, words, vecs)
    data = bytearray(read_bytes(p))
    rng = np.random.default_rng(0)
    q = str(tmp_path / "bad.bin")
    errors = 0
    for _ in range(300):
        bad = bytearray(data)
        for i in rng.integers(0, len(bad), size=3):
            bad[i] = int(rng.integers(0, 256))
        if rng.random() < 0.5:  # also drop a byte: misaligns every later record
            del bad[int(rng.integers(4, len(bad)))]
        try:
            load_vectors(write_bytes(q, bytes(bad)))
        except VectorsError as e:
            errors += 1
            assert "\n" not in str(e) and str(e).startswith("bad.bin: ")
    assert errors > 100


def test_text_export_and_import_chunk_by_numbers_not_rows(tmp_path, monkeypatch):
    """A chunk holds at most _CHUNK_FLOATS numbers (4096 rows of --dim 100000 were 13 GB of Python
    floats): memory stays bounded at a large dim, and rows cut across chunks round-trip exactly."""
    import tracemalloc
    import w2vjax.export as ex
    monkeypatch.setattr(ex, "_CHUNK_FLOATS", 1 << 14)
    vecs = np.random.default_rng(0).standard_normal((64, 4096)).astype(np.float32)
    words = [f"w{i}" for i in range(64)]
    tracemalloc.start()
    ex.save_word2vec_text(tmp_path / "v.txt", words, vecs)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 3 << 20, peak  # 64 rows at once: ~12 MB of floats and text
    back = ex.load_vectors(tmp_path / "v.txt")
    assert back.words == words and np.array_equal(back.vectors, vecs)
