"""Word vectors on disk and in memory: word2vec.c text/binary formats, ``.npy``, queries.

NumPy only.  Both word2vec formats start with a header line ``"V D\\n"`` and then hold
one record per word, in vocabulary order (most frequent first):

* text:   ``word v1 v2 ... vD\\n`` (numbers separated by single spaces);
* binary: ``word`` + ``b" "`` + D little-endian float32 (4*D bytes) + ``b"\\n"``,
  exactly as word2vec.c's ``-binary 1`` writes them.

gensim reads both with ``KeyedVectors.load_word2vec_format(path, binary=...)``.
Files are written atomically (to ``path + ".tmp"``, then ``os.replace``), so a crash
never leaves a half-written vectors file behind.

>>> import numpy as np, os, tempfile
>>> d = tempfile.mkdtemp()
>>> vecs = np.array([[1, 0], [0.9, 0.1], [0, 1]], dtype=np.float32)
>>> save_word2vec_binary(os.path.join(d, "v.bin"), ["a", "b", "c"], vecs)
>>> v = load_vectors(os.path.join(d, "v.bin"))
>>> [w for w, _ in v.most_similar("a", topn=2)]
['b', 'c']
"""

from __future__ import annotations

import codecs
import dataclasses
import functools
import os
import re
import stat
import warnings
from typing import Iterable, Sequence, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

_UNWRITABLE = re.compile(r"[\s\x00-\x1f\x7f]")  # word2vec readers split on or refuse these
_CONTROL = re.compile(rb"[\x00-\x1f]")
_CHUNK_ROWS = 4096  # rows formatted / parsed per chunk (bounded memory for large vocabularies) ...
_CHUNK_FLOATS = 1 << 21  # ... and at most this many numbers (a chunk's Python floats and text: ~100 MB)


def _chunk_rows(dim: int) -> int:
    """Rows per chunk at dimension ``dim``: 4096 rows of --dim 100000 would be 13 GB of Python floats."""
    return max(1, min(_CHUNK_ROWS, _CHUNK_FLOATS // max(dim, 1)))
_SNIFF_BYTES = 1 << 16  # bytes inspected to tell text from binary


class VectorsError(ValueError):
    """A vectors file (or query) is unusable; the one-line message names the file and the problem."""


# --------------------------------------------------------------------------------------------
# In-memory vectors
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Vectors:
    """Word vectors ``[V, D]`` float32 with their words, in vocabulary (frequency) order.

    ``index`` (word -> row) and ``unit`` (rows scaled to unit length; all-zero rows stay zero)
    are computed on first use and cached.  If a word occurs twice, its first row wins.
    ``name`` is only used in error messages (the file it came from).
    """

    words: list
    vectors: np.ndarray
    name: str = "vectors"

    def __post_init__(self):
        words = list(self.words)
        vectors = np.asarray(self.vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise VectorsError(f"{self.name}: vectors must be a [V, D] matrix, got shape {vectors.shape}")
        if len(words) != vectors.shape[0]:
            raise VectorsError(f"{self.name}: {len(words)} words but {vectors.shape[0]} vectors")
        object.__setattr__(self, "words", words)
        object.__setattr__(self, "vectors", vectors)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word) -> bool:
        return word in self.index

    def __getitem__(self, word: str) -> np.ndarray:
        return self.vectors[self._row(word)]

    def __repr__(self) -> str:
        return f"Vectors({self.name!r}, {len(self)} words, dim {self.dim})"

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @functools.cached_property
    def index(self) -> dict:
        index: dict = {}
        for i, w in enumerate(self.words):
            index.setdefault(w, i)
        return index

    @functools.cached_property
    def unit(self) -> np.ndarray:
        return unit_rows(self.vectors)

    def _row(self, word: str) -> int:
        try:
            return self.index[word]
        except KeyError:
            raise VectorsError(f"word {word!r} is not in the vocabulary of {self.name} "
                               f"({len(self)} words)") from None

    def most_similar(self, word: str, topn: int = 10, restrict_vocab: int | None = None) -> list:
        """The ``topn`` words with the highest cosine similarity to ``word``, excluding itself.

        ``restrict_vocab``: only the first N (most frequent) words are candidates.
        Returns ``[(word, cosine), ...]``, best first.
        """
        i = self._row(word)
        return self._nearest(self.unit[i], topn, exclude=(i,), restrict_vocab=restrict_vocab)

    def analogy(self, a: str, b: str, c: str, topn: int = 1, restrict_vocab: int | None = None) -> list:
        """3CosAdd: "``a`` is to ``b`` as ``c`` is to ?".

        The query is ``unit(b) - unit(a) + unit(c)``, normalised; candidates are ranked by
        cosine to it, with ``a``, ``b`` and ``c`` themselves excluded (as word2vec.c's
        ``word-analogy`` and gensim's ``most_similar(positive=[b, c], negative=[a])`` do).
        Returns ``[(word, cosine), ...]``, best first.
        """
        ia, ib, ic = self._row(a), self._row(b), self._row(c)
        u = self.unit
        query = u[ib] - u[ia] + u[ic]
        norm = np.linalg.norm(query)
        if norm > 0:
            query = query / norm
        return self._nearest(query, topn, exclude=(ia, ib, ic), restrict_vocab=restrict_vocab)

    def _nearest(self, query: np.ndarray, topn: int, exclude, restrict_vocab) -> list:
        n = len(self) if restrict_vocab is None else max(0, min(int(restrict_vocab), len(self)))
        scores = self.unit[:n] @ query.astype(np.float32)
        excl = [i for i in exclude if i < n]
        scores[excl] = -np.inf
        order = top_indices(scores, topn)
        return [(self.words[i], float(scores[i])) for i in order if scores[i] > -np.inf]


def unit_rows(m: np.ndarray) -> np.ndarray:
    """Rows of ``m`` ``[N, D]`` scaled to unit L2 norm (float32); all-zero rows stay zero."""
    m = np.asarray(m, dtype=np.float32)
    with np.errstate(over="ignore"):
        norms = np.linalg.norm(m, axis=1, keepdims=True)
    overflow = np.isinf(norms[:, 0])
    if overflow.any():  # |x| near float32's limit: square in float64 instead
        norms[overflow] = np.linalg.norm(m[overflow].astype(np.float64), axis=1, keepdims=True)
    return m / np.where(norms > 0, norms, np.float32(1))


def top_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest entries of a 1-D array, best first (ties: lower index first)."""
    n = scores.shape[0]
    k = max(0, min(int(k), n))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    if k < n:
        cand = np.argpartition(-scores, k - 1)[:k]
    else:
        cand = np.arange(n)
    return cand[np.lexsort((cand, -scores[cand]))]


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _check_for_saving(words: Sequence[str], vectors) -> tuple[list, np.ndarray]:
    words = list(words)
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] < 1:
        raise VectorsError(f"vectors must be a [V, D] matrix with D >= 1, got shape {vectors.shape}")
    if len(words) != vectors.shape[0]:
        raise VectorsError(f"{len(words)} words but {vectors.shape[0]} vectors")
    for i, w in enumerate(words):
        if not isinstance(w, str) or not w or _UNWRITABLE.search(w):
            raise VectorsError(f"word {i} ({w!r}) cannot be written in word2vec format: words must be "
                               "non-empty strings without whitespace or control characters")
    return words, vectors


class WriteError(OSError):
    """A file could not be written (a full disk, say); the message names it."""

    def __str__(self) -> str:
        return str(self.strerror)


def atomic_write(path: PathLike, chunks: Iterable[bytes | str]) -> None:
    """Write ``chunks`` (bytes, or text as UTF-8) to ``path + ".tmp"``, sync, then rename over
    ``path``: a reader sees the old file or the whole new one; the temporary is removed on failure,
    and an OSError (ENOSPC, EACCES) becomes a :class:`WriteError` naming ``path``."""
    path = os.fspath(path)
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            for chunk in chunks:
                f.write(chunk.encode("utf-8") if isinstance(chunk, str) else chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and not isinstance(e, WriteError):
            raise WriteError(e.errno, f"cannot write {path}: {e.strerror or e}") from None
        raise


def save_word2vec_text(path: PathLike, words: Sequence[str], vectors, precision: int = 9) -> None:
    """Write word2vec.c's text format: ``"V D\\n"`` then ``word v1 ... vD\\n`` per word.

    Numbers are written with ``%.{precision}g``; the default 9 significant digits make the
    float32 values round-trip exactly (6 gives ~25% smaller files, relative error <= 5e-6).
    Formatting is done a whole row at a time in C (one ``%`` per row), not per float.
    """
    words, vectors = _check_for_saving(words, vectors)
    if not 1 <= int(precision) <= 17:
        raise VectorsError(f"precision must be in 1..17, got {precision}")
    dim = vectors.shape[1]
    row_fmt = " ".join([f"%.{int(precision)}g"] * dim)

    def chunks():
        yield f"{len(words)} {dim}\n".encode()
        k = _chunk_rows(dim)
        for s in range(0, len(words), k):
            rows = vectors[s:s + k].astype(np.float64).tolist()
            lines = [f"{w} {row_fmt % tuple(r)}\n" for w, r in zip(words[s:s + k], rows)]
            yield "".join(lines).encode("utf-8")

    atomic_write(path, chunks())


def save_word2vec_binary(path: PathLike, words: Sequence[str], vectors) -> None:
    """Write word2vec.c's binary format: ``"V D\\n"`` then ``word`` ``b" "`` float32[D] ``b"\\n"``."""
    words, vectors = _check_for_saving(words, vectors)
    vectors = np.ascontiguousarray(vectors, dtype="<f4")
    dim = vectors.shape[1]

    def chunks():
        yield f"{len(words)} {dim}\n".encode()
        k = _chunk_rows(dim)
        for s in range(0, len(words), k):
            block = vectors[s:s + k]
            yield b"".join(w.encode("utf-8") + b" " + row.tobytes() + b"\n"
                           for w, row in zip(words[s:s + k], block))

    atomic_write(path, chunks())


def save_output_vectors(workdir: PathLike, words: Sequence[str], vectors) -> list[str]:
    """The output table's word rows (``emb_out``: word2vec.c's ``syn1neg``) as
    ``vectors_out.txt`` and ``vectors_out.bin`` in ``workdir``, in word2vec's formats, for
    studies of input vs output vectors; returns the two paths."""
    paths = [os.path.join(workdir, "vectors_out.txt"), os.path.join(workdir, "vectors_out.bin")]
    save_word2vec_text(paths[0], words, vectors)
    save_word2vec_binary(paths[1], words, vectors)
    return paths


def save_npy(path_prefix: PathLike, words: Sequence[str], vectors) -> tuple[str, str]:
    """Write ``{prefix}.npy`` (float32 ``[V, D]``) and ``{prefix}.words.txt`` (one word a line).

    Returns the two paths.  :func:`load_npy` reads them back.
    """
    words, vectors = _check_for_saving(words, vectors)
    prefix = os.fspath(path_prefix)
    npy_path, words_path = prefix + ".npy", prefix + ".words.txt"

    def npy_chunks():
        import io
        buf = io.BytesIO()
        np.save(buf, vectors)
        yield buf.getvalue()

    atomic_write(npy_path, npy_chunks())
    atomic_write(words_path, ["".join(w + "\n" for w in words).encode("utf-8")])
    return npy_path, words_path


def load_npy(path_prefix: PathLike) -> Vectors:
    """Read what :func:`save_npy` wrote (``prefix`` may also be given as ``prefix.npy``)."""
    prefix = os.fspath(path_prefix)
    if prefix.endswith(".npy"):
        prefix = prefix[:-4]
    npy_path, words_path = prefix + ".npy", prefix + ".words.txt"
    name = os.path.basename(npy_path)
    regular_size(npy_path), regular_size(words_path, what="a words file")
    try:
        vectors = np.load(npy_path, allow_pickle=False)
        with open(words_path, "rb") as f:
            raw = f.read()
    except FileNotFoundError as e:
        raise VectorsError(f"{e.filename}: no such file") from None
    except (OSError, ValueError, EOFError) as e:
        raise VectorsError(f"{name}: cannot read: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    try:
        words = raw.decode("utf-8").split("\n")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise VectorsError(f"{os.path.basename(words_path)}: line {line}: not valid UTF-8") from None
    if words and words[-1] == "":
        words.pop()
    if vectors.ndim != 2 or len(words) != vectors.shape[0]:
        raise VectorsError(f"{name}: {len(words)} words in {os.path.basename(words_path)} but "
                           f"vectors of shape {vectors.shape}")
    _check_finite(name, words, vectors)
    return Vectors(words, vectors.astype(np.float32, copy=False), name=name)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def load_vectors(path: PathLike) -> Vectors:
    """Read a word2vec text or binary file (detected from its content), or a ``.npy`` from
    :func:`save_npy`.

    Every problem (missing or empty file, bad header, too few or too many records, a wrong
    number of numbers on a line, truncated binary data, a word that is not UTF-8, NaN/inf
    values) raises :class:`VectorsError` naming the file and what is wrong.
    """
    path = os.fspath(path)
    if path.endswith(".npy"):
        return load_npy(path)
    name = os.path.basename(path) or path
    data = _read(path)  # (a regular file: bounded)
    n_words, dim, nl = _header(name, data)
    body = b"" if nl < 0 else data[nl + 1:]
    if n_words == 0:
        if body.strip():
            raise VectorsError(f"{name}: header says 0 words but the file holds more data")
        return Vectors([], np.zeros((0, dim), np.float32), name=name)
    if not body:
        raise VectorsError(f"{name}: truncated: header says {n_words} words of dim {dim}, found 0")

    if _looks_like_text(body, dim):
        words, vectors = _read_text(name, body, n_words, dim)
    else:
        words, vectors = _read_binary(name, body, n_words, dim)
    _check_finite(name, words, vectors)
    return Vectors(words, vectors, name=name)


def read_header(path: PathLike) -> tuple[int, int]:
    """``(words, dim)`` from a word2vec file's first line, reading nothing more (a warm start's
    dimension is checked before any work); errors as :func:`load_vectors`'s."""
    path = os.fspath(path)
    return _header(os.path.basename(path) or path, _read(path, 256))[:2]


def regular_size(path: PathLike, error: type = None, what: str = "a vectors file") -> int:
    """The size of the regular file ``path``, or ``error`` (default :class:`VectorsError`) saying
    why not: a device such as /dev/zero would be read until memory runs out, a FIFO would block."""
    error = error or VectorsError
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as e:
        raise error(f"{path}: cannot read: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{path}: is a directory, not {what}")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a device")
        raise error(f"{path}: is {kind}, not a regular file; give the path of {what}")
    return st.st_size


def _read(path: str, limit: int = -1) -> bytes:
    """The file's bytes (the first ``limit``), or a :class:`VectorsError` saying why not."""
    regular_size(path)
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except FileNotFoundError:
        raise VectorsError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise VectorsError(f"{path}: is a directory, not a vectors file") from None
    except OSError as e:
        raise VectorsError(f"{path}: cannot read: {e.strerror or e}") from None


def _header(name: str, data: bytes) -> tuple[int, int, int]:
    """``(words, dim, end of the header line or -1)`` of a word2vec file's (first) bytes."""
    if not data:
        raise VectorsError(f"{name}: empty file (expected a word2vec header 'V D')")
    nl = data.find(b"\n", 0, 256)
    if nl < 0 and len(data) >= 256:
        raise VectorsError(f"{name}: bad header {data[:40].decode('utf-8', 'replace')!r}...: expected "
                           "'V D' (word count and dimension) on a short first line; not a word2vec file?")
    return (*_parse_header(name, data if nl < 0 else data[:nl]), nl)


def _parse_header(name: str, raw: bytes) -> tuple[int, int]:
    shown = raw[:60].decode("utf-8", "replace")
    parts = raw.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise VectorsError(f"{name}: bad header {shown!r}: expected 'V D' (two integers: word count "
                           "and dimension) on the first line")
    n_words, dim = int(parts[0]), int(parts[1])
    if dim < 1:
        raise VectorsError(f"{name}: bad header {shown!r}: dimension must be >= 1")
    return n_words, dim


_NUMERIC = frozenset(b"0123456789+-.eEinfatyINFATY \t\r")


def _looks_like_text(body: bytes, dim: int) -> bool:
    """Text if the start of the file is NUL-free UTF-8, or if its first line is a word followed by
    exactly ``dim`` number-like tokens.  Binary float data is neither, except by vanishing chance
    (in word2vec.c's binary format the float bytes follow the word directly)."""
    head = body[:_SNIFF_BYTES]
    if b"\x00" not in head:
        try:
            codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
            return True
        except UnicodeDecodeError:
            pass
    first = head.split(b"\n", 1)[0]
    sp = first.find(b" ")
    rest = first[sp + 1:] if sp > 0 else b""
    return bool(rest) and set(rest) <= _NUMERIC and len(rest.split()) == dim


def _read_text(name: str, body: bytes, n_words: int, dim: int) -> tuple[list, np.ndarray]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        line = body.count(b"\n", 0, e.start) + 2
        raise VectorsError(f"{name}: line {line}: not valid UTF-8 (text word2vec format)") from None
    ends_with_newline = text.endswith("\n")
    lines = text.split("\n")
    if ends_with_newline:
        lines.pop()
    while lines and not lines[-1].strip():  # tolerate trailing blank lines
        lines.pop()
        ends_with_newline = True
    if len(lines) < n_words:
        complete = len(lines) if ends_with_newline else len(lines) - 1
        raise VectorsError(f"{name}: truncated: header says {n_words} words of dim {dim}, found "
                           f"{max(complete, 0)}")
    if len(lines) > n_words:
        raise VectorsError(f"{name}: header says {n_words} words but line {n_words + 2} holds another "
                           "record (wrong word count in the header?)")

    single_spaced = not any(c in body for c in (b"\t", b"\x0b", b"\x0c", b"\r", b"  "))
    if n_words * (2 * dim + 2) - 1 > len(body):  # a line is short (a record takes >= 2 * dim + 2 bytes):
        for i in range(n_words):  # name it before [V, D] is allocated (a header's D may be huge)
            _record(name, lines, i, dim, single_spaced)
    words: list = []
    vectors = np.empty((n_words, dim), dtype=np.float32)
    k = _chunk_rows(dim)
    for s in range(0, n_words, k):
        rests = []
        for i in range(s, min(s + k, n_words)):
            word, rest = _record(name, lines, i, dim, single_spaced)
            words.append(word)
            rests.append(rest)
        block = _parse_floats(" ".join(rests))
        if block is None or block.size != len(rests) * dim:
            _raise_bad_number(name, lines, s, dim, k)
        vectors[s:s + len(rests)] = block.reshape(len(rests), dim)
    return words, vectors


def _record(name: str, lines: list, i: int, dim: int, single_spaced: bool) -> tuple[str, str]:
    """``(word, the numbers' text)`` of record ``i``, or a VectorsError naming its line."""
    word, _, rest = lines[i].rstrip("\r").partition(" ")
    n_tok = _count_tokens(rest, single_spaced)
    if not word or n_tok != dim:
        where = f"line {i + 2}" + (f" (word {word[:40]!r})" if word else "")
        raise VectorsError(f"{name}: {where}: expected a word and {dim} numbers, found "
                           f"{n_tok} numbers{' (truncated?)' if i == len(lines) - 1 else ''}")
    return word, rest


def _count_tokens(rest: str, single_spaced: bool) -> int:
    """Number of whitespace-separated tokens; fast when the file separates them by single spaces."""
    if single_spaced:
        r = rest.strip(" ")
        return r.count(" ") + 1 if r else 0
    return len(rest.split())


def _parse_floats(s: str):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.fromstring(s, dtype=np.float32, sep=" ")
    except ValueError:
        return None


def _raise_bad_number(name: str, lines: list, start: int, dim: int, rows: int):
    for i, line in enumerate(lines[start:start + rows], start=start):
        word, _, rest = line.rstrip("\r").partition(" ")
        tokens = rest.split()
        if len(tokens) != dim:
            raise VectorsError(f"{name}: line {i + 2} (word {word[:40]!r}): expected a word and {dim} "
                               f"numbers, found {len(tokens)} numbers")
        for tok in tokens:
            try:
                float(tok)
            except ValueError:
                raise VectorsError(f"{name}: line {i + 2} (word {word[:40]!r}): not a number: "
                                   f"{tok[:40]!r}") from None
    raise VectorsError(f"{name}: lines {start + 2}-{start + 1 + len(lines[start:start + rows])}: "
                       "could not parse the numbers")  # pragma: no cover - float() and NumPy disagree


def _read_binary(name: str, body: bytes, n_words: int, dim: int) -> tuple[list, np.ndarray]:
    nbytes = 4 * dim
    size = len(body)
    view = memoryview(body)
    starts: list = []  # where each record's floats begin; [V, D] is allocated once all are found
    words: list = []
    pos = 0
    find = body.find
    for i in range(n_words):
        while pos < size and body[pos] == 0x0A:  # the "\n" ending the previous record (optional)
            pos += 1
        sp = find(b" ", pos)
        if sp < 0 or sp + 1 + nbytes > size:
            raise VectorsError(f"{name}: truncated: header says {n_words} words of dim {dim}, found {i} "
                               "(binary word2vec format)")
        raw = body[pos:sp]
        try:
            word = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise VectorsError(f"{name}: record {i + 1} (byte {pos}): word is not valid UTF-8: {raw[:40]!r} "
                               "(binary word2vec format; corrupt or misaligned data?)") from None
        if not raw or _CONTROL.search(raw):
            raise VectorsError(f"{name}: record {i + 1} (byte {pos}): bad word {word[:40]!r}: empty or "
                               "holding control characters (binary word2vec format; corrupt or "
                               "misaligned data?)")
        words.append(word)
        starts.append(sp + 1)
        pos = sp + 1 + nbytes
    tail = body[pos:]
    if tail.strip():
        raise VectorsError(f"{name}: header says {n_words} words of dim {dim} but {len(tail)} more bytes "
                           "follow the last record (wrong header or not a word2vec file?)")
    out = bytearray(n_words * nbytes)  # (no more than the file holds: a header claiming more failed above)
    for i, o in enumerate(starts):
        out[i * nbytes:(i + 1) * nbytes] = view[o:o + nbytes]
    vectors = np.frombuffer(out, dtype="<f4").reshape(n_words, dim).astype(np.float32)
    return words, vectors


def _check_finite(name: str, words: list, vectors: np.ndarray) -> None:
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise VectorsError(f"{name}: {int(bad.sum())} vectors hold NaN or inf values, the first for word "
                           f"{words[i][:40]!r} (record {i + 1}); corrupt file or diverged training")
