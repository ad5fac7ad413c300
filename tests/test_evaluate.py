"""Analogy and similarity evaluation: small hand-made cases, brute force, and gensim 4.4 as the reference."""

import json

import numpy as np
import pytest

from w2vjax import evaluate as ev
from w2vjax.export import Vectors


def write(path, text, newline="\n"):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text.replace("\n", newline))
    return str(path)


# ------------------------------------------------------------------ reading the files


def test_shipped_analogies():
    sections = ev.load_analogies()
    assert len(sections) == 14
    assert sections[0][0] == "capital-common-countries"
    assert sections[0][1][0] == ("Athens", "Greece", "Baghdad", "Iraq")
    assert sum(len(q) for _, q in sections) == 19544
    semantic = sum(len(q) for name, q in sections if not name.startswith("gram"))
    assert semantic == 8869


def test_shipped_similarity_sets():
    for key, n in (("ws353", 353), ("simlex999", 999)):
        _, pairs = ev.load_similarity(ev.data_file(ev.SIMILARITY_FILES[key]))
        assert len(pairs) == n
    _, pairs = ev.load_similarity(ev.data_file("wordsim353.tsv"))
    assert pairs[0] == ("love", "sex", 6.77)


def test_similarity_formats(tmp_path):
    body = "# comment\n\nlove\tsex\t6.77\ntiger\tcat\t7.35\n"
    expect = [("love", "sex", 6.77), ("tiger", "cat", 7.35)]
    assert ev.load_similarity(write(tmp_path / "a.tsv", body))[1] == expect
    assert ev.load_similarity(write(tmp_path / "b.txt", body, "\r\n"))[1] == expect  # Faruqui: CRLF
    spaced = "love sex  6.77\r\ntiger   cat 7.35"  # whitespace-separated, no final newline
    assert ev.load_similarity(write(tmp_path / "c.txt", spaced))[1] == expect


@pytest.mark.parametrize("text,line,what", [
    ("a\tb\t1\nc\td\n", 2, "expected 'word1 word2 score'"),
    ("# x\na b c d\n", 2, "found 4 fields"),
    ("a\tb\tlots\n", 1, "is not a number"),
    ("a b nan\n", 1, "not finite"),
])
def test_malformed_similarity_file(tmp_path, text, line, what):
    p = write(tmp_path / "sim.txt", text)
    with pytest.raises(ev.EvalDataError, match=what) as e:
        ev.load_similarity(p)
    assert isinstance(e.value, ValueError)
    assert str(e.value).startswith(f"{p}: line {line}: ") and "\n" not in str(e.value)


@pytest.mark.parametrize("text,line,what", [
    ("a b c d\n", 1, "before the first"),
    (": s\na b c\n", 2, "expected 4 words"),
    (": s\na b c d e\n", 2, "found 5 fields"),
    (":\na b c d\n", 1, "without a name"),
])
def test_malformed_analogy_file(tmp_path, text, line, what):
    p = write(tmp_path / "q.txt", text)
    with pytest.raises(ev.EvalDataError, match=what) as e:
        ev.load_analogies(p)
    assert str(e.value).startswith(f"{p}: line {line}: ") and "\n" not in str(e.value)


def test_unreadable_eval_files(tmp_path):
    with pytest.raises(ev.EvalDataError, match="no such file"):
        ev.load_analogies(str(tmp_path / "nope.txt"))
    p = tmp_path / "bad.txt"
    p.write_bytes(b": s\na b c d\n\xff b c d\n")
    with pytest.raises(ev.EvalDataError, match="line 3: not valid UTF-8"):
        ev.load_analogies(str(p))
    with pytest.raises(ev.EvalDataError, match="no 'word1 word2 score' lines"):
        ev.load_similarity(write(tmp_path / "empty.txt", "# only a comment\n"))
    with pytest.raises(ev.EvalDataError, match="no ': section' header"):
        ev.load_analogies(write(tmp_path / "empty.txt", "\n\n"))


def test_analogy_sections_blank_lines_and_headers(tmp_path):
    p = write(tmp_path / "q.txt", ": first one\n\na b c d\n: gram-x\ne f g h\r\ni j k l\n")
    assert ev.load_analogies(p) == [("first one", [("a", "b", "c", "d")]),
                                    ("gram-x", [("e", "f", "g", "h"), ("i", "j", "k", "l")])]


# ------------------------------------------------------------------ correlations


def test_rank_average_and_spearman_by_hand():
    np.testing.assert_array_equal(ev._rank_average([10, 20, 20, 5, 20]), [2, 4, 4, 1, 4])
    assert ev.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert ev.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert ev.spearman([1, 2, 3], [5, 5, 5]) is None
    assert ev.spearman([1], [2]) is None
    # ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4): r = 4.5 / sqrt(4.5 * 5)
    assert ev.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / np.sqrt(4.5 * 5.0))


def test_spearman_and_pearson_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(3, 60))
        x = rng.integers(0, 6, n).astype(float)  # many ties
        y = rng.standard_normal(n).round(1)
        assert ev.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
        assert ev.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)


# ------------------------------------------------------------------ analogies on hand-made vectors


def toy_vectors():
    # "man:woman :: king:queen" is solvable; "paris:france :: rome:?" has its answer out of vocabulary
    words = ["man", "woman", "king", "queen", "paris", "france", "rome", "boy", "girl", "italy"]
    rng = np.random.default_rng(1)
    base = rng.standard_normal((len(words), 8)).astype(np.float32)
    g = rng.standard_normal(8).astype(np.float32) * 3
    i = {w: k for k, w in enumerate(words)}
    for a, b in (("man", "woman"), ("king", "queen"), ("boy", "girl")):
        base[i[b]] = base[i[a]] + g
    return Vectors(words, base)


def test_evaluate_analogies_toy(tmp_path):
    v = toy_vectors()
    p = write(tmp_path / "q.txt", ": family\nman woman king queen\nMAN Woman Boy GIRL\nking queen man woman\n"
              ": capital\nparis france rome italy\nparis france rome spain\n"
              ": gram-empty\nfoo bar baz qux\n")
    r = ev.evaluate_analogies(v, p)
    assert r["sections"]["family"] == {"correct": 3, "total": 3, "accuracy": 1.0, "skipped": 0}
    assert r["sections"]["capital"]["total"] == 1 and r["sections"]["capital"]["skipped"] == 1
    assert r["sections"]["gram-empty"] == {"correct": 0, "total": 0, "accuracy": 0.0, "skipped": 1}
    assert r["semantic"]["total"] == 4 and r["syntactic"]["total"] == 0
    assert r["syntactic"]["accuracy"] == 0.0
    assert r["total"]["total"] == 4 and r["questions"] == 6 and r["skipped"] == 2
    # restricting the candidates to the first 4 words skips every question using a later word
    r = ev.evaluate_analogies(v, p, restrict_vocab=4)
    assert r["total"] == {"correct": 2, "total": 2, "accuracy": 1.0} and r["restrict_vocab"] == 4
    # case-sensitive: upper-case words are unknown
    r = ev.evaluate_analogies(v, p, case_insensitive=False)
    assert r["sections"]["family"]["total"] == 2
    # the already parsed sections can be passed instead of a path
    assert ev.evaluate_analogies(v, ev.load_analogies(p)) == ev.evaluate_analogies(v, p)


def test_case_variant_of_an_input_word_is_not_an_answer():
    # "Man" (a case variant of the input "man", later in the vocabulary) is closest to the query
    # but must be skipped like "man" itself; "queen" comes next.
    words = ["man", "woman", "king", "queen", "Man"]
    vecs = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1], [-0.2, 0.7, 1.0]], np.float32)
    v = Vectors(words, vecs)
    sections = [("s", [("man", "woman", "king", "queen")])]
    assert ev.evaluate_analogies(v, sections)["total"]["correct"] == 1
    assert ev.evaluate_analogies(v, sections, case_insensitive=False)["total"]["correct"] == 0


def test_predict_analogies_matches_brute_force():
    rng = np.random.default_rng(2)
    n, d = 300, 12
    unit = ev._unit(rng.standard_normal((n, d)).astype(np.float32))
    canon = np.arange(n)
    abc = rng.integers(0, n, size=(500, 3))
    pred = ev.predict_analogies(unit, canon, abc, batch_size=64)
    for (a, b, c), p in zip(abc, pred):
        q = unit[b] - unit[a] + unit[c]
        s = unit @ (q / np.linalg.norm(q))
        s[[a, b, c]] = -np.inf
        assert p == int(np.argmax(s))


# ------------------------------------------------------------------ gensim as the reference


def structured_vectors():
    """~3000 words: the words of the shipped evaluation sets (lowercased, most frequent first, some
    beyond a 2000-word cut-off) mixed with filler words, plus case variants.  Vectors are random but
    each analogy section shares an offset, so that about half of the questions are answered
    correctly and the comparison is not dominated by 0 % sections."""
    rng = np.random.default_rng(1)
    counts = {}
    for _, questions in ev.load_analogies():
        for q in questions:
            for w in q:
                counts[w.lower()] = counts.get(w.lower(), 0) + 1
    for f in ev.SIMILARITY_FILES.values():
        for a, b, _ in ev.load_similarity(ev.data_file(f))[1]:
            for w in (a, b):
                counts[w.lower()] = counts.get(w.lower(), 0) + 1
    eval_words = sorted(counts, key=lambda w: (-counts[w], w))
    words = eval_words[:1500] + [f"filler{i}" for i in range(800)]
    rng.shuffle(words)
    words = ["Paris"] + words + eval_words[1500:]  # "Paris" comes before "paris": it is the canonical one
    words.insert(1700, "KING")
    words.insert(1200, "Athens")
    dim = 32
    vecs = rng.standard_normal((len(words), dim)).astype(np.float32)
    index = {w: i for i, w in enumerate(words)}
    done = set()
    for _, questions in ev.load_analogies():
        offset = rng.standard_normal(dim).astype(np.float32) * 1.5
        for q in questions:
            for x, y in ((q[0], q[1]), (q[2], q[3])):
                x, y = x.lower(), y.lower()
                if x in index and y in index and y not in done:
                    vecs[index[y]] = vecs[index[x]] + offset + 1.5 * rng.standard_normal(dim)
                    done.add(y)
    for variant in ("Paris", "KING", "Athens"):  # near-copies: they crowd the top candidates
        vecs[index[variant]] = vecs[index[variant.lower()]] + 0.01 * rng.standard_normal(dim)
    return words, vecs


@pytest.fixture(scope="module")
def structured():
    return structured_vectors()


@pytest.fixture(scope="module")
def gensim_kv(structured):
    KeyedVectors = pytest.importorskip("gensim.models").KeyedVectors
    words, vecs = structured
    kv = KeyedVectors(vecs.shape[1])
    kv.add_vectors(words, vecs)
    return kv


@pytest.mark.parametrize("restrict", [2000, 30000])
def test_analogies_match_gensim(structured, gensim_kv, restrict):
    words, vecs = structured
    path = str(ev.data_file(ev.ANALOGIES_FILE))
    ours = ev.evaluate_analogies(Vectors(words, vecs), path, restrict_vocab=restrict)
    score, sections = gensim_kv.evaluate_word_analogies(path, restrict_vocab=restrict, case_insensitive=True,
                                                        dummy4unknown=False)
    total = sections.pop()
    assert total["section"] == "Total accuracy"
    assert [s["section"] for s in sections] == list(ours["sections"])
    for s in sections:
        got = ours["sections"][s["section"]]
        assert (got["correct"], got["total"]) == (len(s["correct"]), len(s["correct"]) + len(s["incorrect"]))
    assert ours["total"]["accuracy"] == pytest.approx(score, abs=1e-15)
    assert ours["total"]["correct"] == len(total["correct"])
    assert ours["total"]["total"] == len(total["correct"]) + len(total["incorrect"])
    assert ours["questions"] == 19544
    assert ours["skipped"] == 19544 - ours["total"]["total"]
    assert 0.3 < score < 0.7
    if restrict == 2000:
        assert 0 < ours["skipped"] < 19544
    else:
        assert ours["skipped"] == 0


def test_similarity_matches_gensim(structured, gensim_kv, tmp_path):
    words, vecs = structured
    v = Vectors(words, vecs)
    lines = ev.data_file("wordsim353.tsv").read_text(encoding="utf-8").split("\n")
    crlf = write(tmp_path / "EN-WS-353-ALL.txt", "\n".join(l for l in lines if l and not l.startswith("#")),
                 "\r\n")  # the Faruqui copy's format: no header, CRLF, no final newline
    paths = [str(ev.data_file(f)) for f in ev.SIMILARITY_FILES.values()] + [crlf]
    for path in paths:
        for restrict in (300000, 1000):
            ours = ev.evaluate_similarity(v, path, restrict_vocab=restrict)
            pearson, spearman, oov = gensim_kv.evaluate_word_pairs(path, restrict_vocab=restrict)
            assert ours["spearman"] == pytest.approx(spearman[0], abs=1e-9)
            assert ours["pearson"] == pytest.approx(pearson[0], abs=1e-6)  # gensim: float32 inputs
            assert ours["oov_percent"] == pytest.approx(oov, abs=1e-12)
            assert ours["pairs"] + ours["skipped"] == (353 if "353" in path else 999)
    ws = ev.evaluate_similarity(v, paths[0])
    assert ws == ev.evaluate_similarity(v, crlf)


def test_evaluate_all_and_report(structured):
    words, vecs = structured
    r = ev.evaluate_all(Vectors(words, vecs))
    assert json.loads(json.dumps(r)) == r
    for key in ("analogy_total", "analogy_semantic", "analogy_syntactic", "analogy_questions",
                "analogy_skipped", "ws353_spearman", "ws353_pairs", "simlex999_spearman", "simlex999_pairs"):
        assert key in r
    assert set(r["analogy_sections"]) >= {"capital-common-countries", "gram9-plural-verbs"}
    assert r["analogy_questions"] == 19544 and r["analogy_restrict_vocab"] == len(words) < 30000
    assert r["ws353_pairs"] == 353 and r["simlex999_pairs"] + r["simlex999_skipped"] == 999
    report = ev.format_report(r)
    for text in ("capital-common-countries", "semantic", "syntactic", "total", "ws353", "simlex999",
                 f"{100 * r['analogy_total']:.1f}%", f"{r['ws353_spearman']:.3f}"):
        assert text in report


def test_evaluate_all_options_and_unknown_words(tmp_path):
    v = Vectors(["zzz", "yyy"], np.eye(2, dtype=np.float32))
    sim = write(tmp_path / "s.txt", "zzz yyy 1\na b 2\n")
    r = ev.evaluate_all(v, analogies=False, similarity={"mine": sim})
    assert r == {"mine_spearman": None, "mine_pearson": None, "mine_pairs": 1, "mine_skipped": 1,
                 "mine_oov_percent": 50.0}
    assert "mine" in ev.format_report(r)
    r = ev.evaluate_all(v, restrict_vocab=1)
    assert r["analogy_total"] == 0.0 and r["analogy_skipped"] == r["analogy_questions"] == 19544
    assert r["ws353_pairs"] == 0 and r["ws353_spearman"] is None
    assert "skipped" in ev.format_report(r)
