"""Evaluation of word vectors: Google analogies (3CosAdd) and word-similarity correlations.

NumPy only.  The numbers match gensim 4.4's ``KeyedVectors.evaluate_word_analogies`` and
``evaluate_word_pairs`` (with ``dummy4unknown=False``), including their conventions:

* Only the first ``restrict_vocab`` words (the vocabulary is in frequency order) count.
  An analogy question with any of its four words outside them is skipped, not counted wrong.
* ``case_insensitive``: words are compared upper-cased (as gensim does; our corpora are
  lowercase anyway); when several vocabulary words share a case-folded form, the first
  (most frequent) one stands for it.
* 3CosAdd: the answer is the word, among those allowed, with the highest cosine to
  ``unit(b) - unit(a) + unit(c)``; ``a``, ``b`` and ``c`` themselves are never answers.
  Like gensim, only the five best other candidates are looked at when skipping case
  variants of ``a``, ``b``, ``c``.  Ties go to the more frequent word.
* Accuracy of a section with no answerable question is 0.0; "semantic" sections are those
  whose name does not start with ``gram``, "syntactic" those that do.
* Similarity: Spearman's rho (average ranks for ties) and Pearson's r between the human
  scores and the cosines of the pairs whose two words are both known.

The evaluation sets shipped in ``w2vjax/data`` (see its README for sources and licences):
``questions-words.txt`` (19,544 questions, 14 sections), ``wordsim353.tsv`` (353 pairs) and
``simlex999.txt`` (999 pairs).
"""

from __future__ import annotations

import importlib.resources
import os
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from .export import regular_size, unit_rows

ANALOGIES_FILE = "questions-words.txt"
SIMILARITY_FILES = {"ws353": "wordsim353.tsv", "simlex999": "simlex999.txt"}
TOP_CANDIDATES = 5  # gensim looks at most_similar(..., topn=5) when skipping the question words


class EvalDataError(ValueError):
    """A malformed evaluation file; the one-line message names the file and the line."""


def data_file(name: str):
    """A file shipped in ``w2vjax/data`` (an ``importlib.resources`` Traversable)."""
    return importlib.resources.files("w2vjax") / "data" / name


# --------------------------------------------------------------------------------------------
# Reading evaluation files
# --------------------------------------------------------------------------------------------


def _read_lines(path) -> tuple[str, list]:
    """``(display name, lines)`` of a UTF-8 text file given as a path or a Traversable."""
    name = os.fspath(path) if isinstance(path, (str, os.PathLike)) else str(path)
    try:
        if isinstance(path, (str, os.PathLike)):
            regular_size(path, EvalDataError, "an evaluation file")
            with open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except FileNotFoundError:
        raise EvalDataError(f"{name}: no such file") from None
    except OSError as e:
        raise EvalDataError(f"{name}: cannot read: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise EvalDataError(f"{name}: line {line}: not valid UTF-8") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return name, lines


def load_analogies(path=None) -> list:
    """Read an analogy file in questions-words format: ``: section`` lines, then ``a b c d`` lines.

    ``path`` defaults to the Google set shipped with the package.  Returns
    ``[(section name, [(a, b, c, d), ...]), ...]`` in file order, words as written.
    Blank lines are ignored; anything else malformed raises :class:`EvalDataError`.
    """
    name, lines = _read_lines(data_file(ANALOGIES_FILE) if path is None else path)
    sections: list = []
    for no, line in enumerate(lines, start=1):
        s = line.strip()
        if not s:
            continue
        if s.startswith(":"):
            title = s.lstrip(": ").strip()
            if not title:
                raise EvalDataError(f"{name}: line {no}: section header without a name")
            sections.append((title, []))
            continue
        words = s.split()
        if len(words) != 4:
            raise EvalDataError(f"{name}: line {no}: expected 4 words 'a b c d' or a ': section' header, "
                                f"found {len(words)} fields: {s[:60]!r}")
        if not sections:
            raise EvalDataError(f"{name}: line {no}: question before the first ': section' header")
        sections[-1][1].append(tuple(words))
    if not sections:
        raise EvalDataError(f"{name}: no ': section' header and no questions; not an analogy file?")
    return sections


def load_similarity(path) -> tuple[str, list]:
    """Read a word-similarity file: lines ``word1 word2 score``, tab- or whitespace-separated.

    ``#`` comment lines and blank lines are skipped; CRLF line endings are fine.  Returns
    ``(display name, [(word1, word2, score), ...])``.
    """
    name, lines = _read_lines(path)
    pairs: list = []
    for no, line in enumerate(lines, start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        fields = [f.strip() for f in s.split("\t")] if "\t" in s else s.split()
        if len(fields) != 3 or not fields[0] or not fields[1]:
            raise EvalDataError(f"{name}: line {no}: expected 'word1 word2 score', found {len(fields)} "
                                f"fields: {s[:60]!r}")
        try:
            score = float(fields[2])
        except ValueError:
            raise EvalDataError(f"{name}: line {no}: score {fields[2][:30]!r} is not a number") from None
        if not np.isfinite(score):
            raise EvalDataError(f"{name}: line {no}: score {fields[2][:30]!r} is not finite")
        pairs.append((fields[0], fields[1], score))
    if not pairs:
        raise EvalDataError(f"{name}: no 'word1 word2 score' lines; not a similarity file?")
    return name, pairs


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _words_and_matrix(vectors) -> tuple[list, np.ndarray]:
    """Accept :class:`w2vjax.export.Vectors` or anything with ``words`` and ``vectors``."""
    try:
        words, matrix = vectors.words, vectors.vectors
    except AttributeError:
        raise TypeError("expected word vectors with .words and .vectors (w2vjax.export.Vectors), got "
                        f"{type(vectors).__name__}") from None
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != len(words):
        raise ValueError(f"{len(words)} words but vectors of shape {matrix.shape}")
    return list(words), matrix


def _known_words(words: Sequence[str], restrict_vocab: Optional[int], case_insensitive: bool):
    """``(n, lookup)``: the first ``n`` words are allowed; ``lookup`` maps a (case-folded) word to
    the row of its first occurrence among them."""
    n = len(words) if restrict_vocab is None else max(0, min(int(restrict_vocab), len(words)))
    lookup: dict = {}
    for i in range(n):
        w = words[i].upper() if case_insensitive else words[i]
        lookup.setdefault(w, i)
    return n, lookup


_unit = unit_rows


def _rank_average(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x``, tied values sharing the average of their ranks (scipy's 'average')."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    new_group = np.r_[True, xs[1:] != xs[:-1]]
    group = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    ends = np.r_[starts[1:], len(x)]  # exclusive
    avg = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = avg[group]
    return ranks


def pearson(x, y) -> Optional[float]:
    """Pearson's r; ``None`` when undefined (fewer than 2 values, or a constant input)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length: {len(x)} != {len(y)}")
    if len(x) < 2:
        return None
    dx, dy = x - x.mean(), y - y.mean()
    den = np.sqrt(np.dot(dx, dx) * np.dot(dy, dy))
    if not den > 0:
        return None
    return float(np.clip(np.dot(dx, dy) / den, -1.0, 1.0))


def spearman(x, y) -> Optional[float]:
    """Spearman's rho: Pearson's r of the average ranks; ``None`` when undefined."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length: {len(x)} != {len(y)}")
    return pearson(_rank_average(x), _rank_average(y))


def _accuracy(correct: int, total: int) -> dict:
    return {"correct": int(correct), "total": int(total),
            "accuracy": float(correct / total) if total else 0.0}


# --------------------------------------------------------------------------------------------
# Analogies
# --------------------------------------------------------------------------------------------


def predict_analogies(unit: np.ndarray, canon: np.ndarray, abc: np.ndarray,
                      batch_size: Optional[int] = None) -> np.ndarray:
    """3CosAdd answers for many questions at once.

    unit:  ``[N, D]`` float32 unit rows of the candidate words.
    canon: ``[N]`` int, the row standing for each row's case-folded form (``canon[i] == i``
           unless row ``i`` is a case variant of an earlier word).
    abc:   ``[Q, 3]`` int rows (canonical) of ``a``, ``b``, ``c``.
    Returns ``[Q]`` int: the predicted row, or -1 when there is no candidate at all.

    The query ``unit[b] - unit[a] + unit[c]`` is normalised and scored against every row
    (``[batch, N]`` matmul); the rows ``a``, ``b``, ``c`` are masked out; then, as gensim
    does, the first of the 5 best remaining candidates whose canonical row is not one of
    ``a``, ``b``, ``c`` is the answer, else the 5th (or last) of them.
    """
    n = unit.shape[0]
    q = abc.shape[0]
    pred = np.full(q, -1, dtype=np.int64)
    if n == 0 or q == 0:
        return pred
    if batch_size is None:
        batch_size = int(max(16, min(2048, (1 << 24) // n)))  # keep the score block near 64 MB
    for s in range(0, q, batch_size):
        a, b, c = (abc[s:s + batch_size, k] for k in range(3))
        rows = np.arange(len(a))
        query = unit[b] - unit[a] + unit[c]
        query = _unit(query)
        scores = query @ unit.T  # [batch, N]
        for col in (a, b, c):
            scores[rows, col] = -np.inf
        out = np.full(len(a), -1, dtype=np.int64)
        resolved = np.zeros(len(a), dtype=bool)
        for _ in range(min(TOP_CANDIDATES, n)):
            best = scores.argmax(axis=1)  # ties: the lower (more frequent) row
            valid = scores[rows, best] > -np.inf
            take = ~resolved & valid
            out[take] = best[take]
            cb = canon[best]
            resolved |= take & (cb != a) & (cb != b) & (cb != c)
            if resolved.all() or not valid.any():
                break
            scores[rows, best] = -np.inf
        pred[s:s + batch_size] = out
    return pred


def evaluate_analogies(vectors, path=None, restrict_vocab: Optional[int] = 30000,
                       case_insensitive: bool = True, batch_size: Optional[int] = None) -> dict:
    """Accuracy on analogy questions with 3CosAdd, as gensim's ``evaluate_word_analogies``.

    ``path``: a questions-words file, or the output of :func:`load_analogies`; defaults to the
    shipped Google set.  Returns::

        {"sections": {name: {"correct", "total", "accuracy", "skipped"}, ...},
         "semantic": {"correct", "total", "accuracy"}, "syntactic": {...}, "total": {...},
         "questions": all questions read, "skipped": questions with a word outside the
         first restrict_vocab words, "restrict_vocab": the number of candidate words}

    ``total`` counts answered questions only (gensim's "Total accuracy").
    """
    sections = load_analogies(path) if path is None or isinstance(path, (str, os.PathLike)) else path
    words, matrix = _words_and_matrix(vectors)
    n, lookup = _known_words(words, restrict_vocab, case_insensitive)
    fold = str.upper if case_insensitive else (lambda w: w)
    canon = np.array([lookup[fold(w)] for w in words[:n]], dtype=np.int64)

    quads, owner, per_section = [], [], []
    n_questions = 0
    for si, (title, questions) in enumerate(sections):
        skipped = 0
        for question in questions:
            n_questions += 1
            ids = [lookup.get(fold(w)) for w in question]
            if None in ids:
                skipped += 1
            else:
                quads.append(ids)
                owner.append(si)
        per_section.append((title, skipped))
    quads_arr = np.array(quads, dtype=np.int64).reshape(-1, 4)
    owner_arr = np.array(owner, dtype=np.int64)

    pred = predict_analogies(_unit(matrix[:n]), canon, quads_arr[:, :3], batch_size)
    hit = (pred >= 0) & (canon[np.maximum(pred, 0)] == quads_arr[:, 3]) if len(pred) else np.zeros(0, bool)
    correct = np.bincount(owner_arr, weights=hit, minlength=len(sections)).astype(np.int64)
    answered = np.bincount(owner_arr, minlength=len(sections)).astype(np.int64)

    result_sections: dict = {}
    groups = {"semantic": [0, 0], "syntactic": [0, 0], "total": [0, 0]}
    for si, (title, skipped) in enumerate(per_section):
        c, t = int(correct[si]), int(answered[si])
        if title in result_sections:  # a repeated section name: merge
            prev = result_sections[title]
            c, t, skipped = c + prev["correct"], t + prev["total"], skipped + prev["skipped"]
        result_sections[title] = {**_accuracy(c, t), "skipped": int(skipped)}
        kind = "syntactic" if title.startswith("gram") else "semantic"
        for g in (kind, "total"):
            groups[g][0] += int(correct[si])
            groups[g][1] += int(answered[si])
    return {
        "sections": result_sections,
        **{g: _accuracy(c, t) for g, (c, t) in groups.items()},
        "questions": int(n_questions),
        "skipped": int(n_questions - len(quads)),
        "restrict_vocab": int(n),
    }


# --------------------------------------------------------------------------------------------
# Word similarity
# --------------------------------------------------------------------------------------------


def evaluate_similarity(vectors, path, restrict_vocab: Optional[int] = 300000,
                        case_insensitive: bool = True) -> dict:
    """Correlation of cosine similarities with human scores, as gensim's ``evaluate_word_pairs``.

    Pairs with a word outside the first ``restrict_vocab`` words are skipped.  Returns
    ``{"spearman", "pearson", "pairs" (used), "skipped", "oov_percent"}``; the correlations
    are ``None`` when fewer than two pairs are usable (gensim raises in that case).
    """
    _, pairs = load_similarity(path)
    words, matrix = _words_and_matrix(vectors)
    n, lookup = _known_words(words, restrict_vocab, case_insensitive)
    fold = str.upper if case_insensitive else (lambda w: w)
    left, right, gold = [], [], []
    for w1, w2, score in pairs:
        i, j = lookup.get(fold(w1)), lookup.get(fold(w2))
        if i is not None and j is not None:
            left.append(i)
            right.append(j)
            gold.append(score)
    used = len(gold)
    skipped = len(pairs) - used
    if used:
        model = np.einsum("ij,ij->i", _unit(matrix[left]), _unit(matrix[right])).astype(np.float64)
        rho, r = spearman(gold, model), pearson(gold, model)
    else:
        rho = r = None
    return {"spearman": rho, "pearson": r, "pairs": used, "skipped": skipped,
            "oov_percent": 100.0 * skipped / len(pairs)}


# --------------------------------------------------------------------------------------------
# Everything at once
# --------------------------------------------------------------------------------------------


def evaluate_all(vectors, analogies=None, similarity: Optional[Mapping[str, Any]] = None,
                 restrict_vocab: Optional[int] = 30000,
                 similarity_restrict_vocab: Optional[int] = 300000) -> dict:
    """Analogies and word similarity in one flat, JSON-serialisable summary.

    ``analogies``: a questions-words file (default: the shipped Google set; ``False`` skips it).
    ``similarity``: ``{name: path}`` (default: the shipped ``ws353`` and ``simlex999``).
    ``restrict_vocab`` applies to the analogies (word2vec.c and gensim use 30,000 for the
    Google set); ``similarity_restrict_vocab`` to the similarity sets (gensim's default).

    Keys: ``analogy_total``, ``analogy_semantic``, ``analogy_syntactic`` (accuracies),
    ``analogy_correct``, ``analogy_answered``, ``analogy_questions``, ``analogy_skipped``,
    ``analogy_restrict_vocab``, ``analogy_sections`` (``{name: {correct, total, accuracy,
    skipped}}``), and per similarity set ``{name}_spearman``, ``{name}_pearson``,
    ``{name}_pairs``, ``{name}_skipped``, ``{name}_oov_percent``.
    """
    out: dict = {}
    if analogies is not False:
        a = evaluate_analogies(vectors, analogies, restrict_vocab=restrict_vocab)
        out.update({
            "analogy_total": a["total"]["accuracy"],
            "analogy_semantic": a["semantic"]["accuracy"],
            "analogy_syntactic": a["syntactic"]["accuracy"],
            "analogy_correct": a["total"]["correct"],
            "analogy_answered": a["total"]["total"],
            "analogy_semantic_answered": a["semantic"]["total"],
            "analogy_syntactic_answered": a["syntactic"]["total"],
            "analogy_questions": a["questions"],
            "analogy_skipped": a["skipped"],
            "analogy_restrict_vocab": a["restrict_vocab"],
            "analogy_sections": a["sections"],
        })
    sets = {k: data_file(v) for k, v in SIMILARITY_FILES.items()} if similarity is None else similarity
    for key, path in sets.items():
        s = evaluate_similarity(vectors, path, restrict_vocab=similarity_restrict_vocab)
        for field in ("spearman", "pearson", "pairs", "skipped", "oov_percent"):
            out[f"{key}_{field}"] = s[field]
    return out


def _pct(x) -> str:
    return "    -" if x is None else f"{100.0 * x:5.1f}%"


def _num(x) -> str:
    return "     -" if x is None else f"{x:6.3f}"


def format_report(result: Mapping[str, Any]) -> str:
    """A readable table of :func:`evaluate_all`'s summary (per section, the groups, similarity)."""
    lines = []
    if "analogy_sections" in result:
        restrict = result.get("analogy_restrict_vocab")
        title = "analogies (3CosAdd" + (f", top {restrict:,} words)" if restrict else ")")
        width = max([len(title)] + [len(k) + 2 for k in result["analogy_sections"]])
        lines.append(f"{title:<{width}}  correct  answered  accuracy")
        for name, s in result["analogy_sections"].items():
            lines.append(f"  {name:<{width - 2}}  {s['correct']:7d}  {s['total']:8d}    "
                         f"{_pct(s['accuracy'])}")
        rows = [("semantic", "analogy_semantic"), ("syntactic", "analogy_syntactic"),
                ("total", "analogy_total")]
        sem = sum(s["correct"] for k, s in result["analogy_sections"].items() if not k.startswith("gram"))
        syn = sum(s["correct"] for k, s in result["analogy_sections"].items() if k.startswith("gram"))
        counts = {"semantic": (sem, result.get("analogy_semantic_answered")),
                  "syntactic": (syn, result.get("analogy_syntactic_answered")),
                  "total": (result.get("analogy_correct"), result.get("analogy_answered"))}
        lines.append("  " + "-" * (width + 30))
        for label, key in rows:
            c, t = counts[label]
            c_s = f"{c:7d}" if c is not None else "      -"
            t_s = f"{t:8d}" if t is not None else "       -"
            lines.append(f"  {label:<{width - 2}}  {c_s}  {t_s}    {_pct(result.get(key))}")
        q, sk = result.get("analogy_questions"), result.get("analogy_skipped")
        if q:
            lines.append(f"  skipped (a word outside the candidate words): {sk:,} of {q:,} questions "
                         f"({100.0 * sk / q:.1f}%)")
    names = [k[: -len("_spearman")] for k in result if k.endswith("_spearman")]
    if names:
        if lines:
            lines.append("")
        width = max(len("similarity"), *(len(n) + 2 for n in names))
        lines.append(f"{'similarity':<{width}}  spearman  pearson  pairs  skipped")
        for n in names:
            lines.append(f"  {n:<{width - 2}}    {_num(result.get(n + '_spearman'))}   "
                         f"{_num(result.get(n + '_pearson'))}  {result.get(n + '_pairs', 0):5d}  "
                         f"{result.get(n + '_skipped', 0):7d}")
    return "\n".join(lines)
