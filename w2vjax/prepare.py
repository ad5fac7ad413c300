"""Text corpus -> vocabulary + memory-mapped token ids, once per work dir.

Reads plain text, ``.gz``, ``.bz2`` or a ``.zip`` holding one text member, in
fixed-size byte chunks cut at whitespace, so the corpus is never held as Python
strings.  Tokens are whitespace-separated; each line is a sentence, and lines
longer than ``max_sentence_length`` in-vocabulary words are cut into chunks of
that length (gensim uses 10000, word2vec.c 1000).

One pass over the text assigns provisional ids in order of first occurrence and
writes them to a temporary file; the vocabulary (``min_count``, ``max_vocab``,
sorted by count with first occurrence breaking ties) then maps them to final ids
and drops out-of-vocabulary tokens, as word2vec.c does before windows are taken.
With ``read_vocab`` the vocabulary is a file's (word2vec.c's ``-read-vocab``) instead
of the corpus's counts.

Output in ``workdir``: ``vocab.txt`` (word count), ``data/ids.u32`` (uint32
memmap of in-vocabulary token ids), ``data/sentences.npy`` (int64 sentence
boundaries ``[S + 1]`` into the ids) and ``data/prepare.json`` (what was read
and how; written last, so its presence means the rest is complete).
"""

from __future__ import annotations

import bz2
import collections
import ctypes
import dataclasses
import functools
import gzip
import hashlib
import json
import os
import zipfile
import logging
import re
import shutil
import stat
import zlib
from typing import BinaryIO, Iterator

import numpy as np

from . import native
from .export import atomic_write
from .vocab import Vocab, build_vocab

CHUNK_BYTES = 1 << 22
BLOCK_TOKENS = 1 << 22  # tokens per block when remapping ids: bounds temporary memory
PREPARE_VERSION = 1
logger = logging.getLogger(__name__)


class CorpusError(ValueError):
    """The corpus cannot be used; the message says why and what to do."""


def read_u32(path: str, lo: int, hi: int) -> np.ndarray:
    """Tokens ``lo:hi`` of a uint32 file, read into memory (not mapped: pages of a memory map
    that were read stay in the process's RSS, which would then grow with the corpus)."""
    return np.fromfile(path, dtype=np.uint32, count=max(hi - lo, 0), offset=4 * lo)


@dataclasses.dataclass(frozen=True)
class Corpus:
    vocab: Vocab
    ids: np.ndarray  # [N] uint32 memmap (random access)
    sentences: np.ndarray  # [S + 1] int64 boundaries into ids
    source: str
    ids_path: str = ""  # the file behind ids, read block by block by the streamer
    corpus_sha256: str = ""  # of the corpus's (decompressed) text: what the work dir holds
    vocab_sha256: str = ""  # of vocab.txt

    @property
    def num_words(self) -> int:
        return int(self.ids.shape[0])

    def tokens(self, lo: int, hi: int) -> np.ndarray:
        """Token ids ``lo:hi`` as an in-memory uint32 array."""
        if self.ids_path:
            return read_u32(self.ids_path, lo, hi)
        return np.asarray(self.ids[lo:hi])


def open_corpus(path: str) -> BinaryIO:
    """A binary stream over the corpus text, whatever its container."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CorpusError(f"corpus {path!r} does not exist")
    if os.path.isdir(path):
        raise CorpusError(f"corpus {path!r} is a directory; give a text file (.txt, .gz, .bz2 or .zip)")
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):  # /dev/zero never ends; a FIFO is gone once read, and a run reads it again
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        raise CorpusError(f"corpus {path!r} is {kind}, not a regular file: a run reads its corpus again "
                          "(its hash in summary.json, a resume); write the text to a file and give its path")
    if os.path.getsize(path) == 0:
        raise CorpusError(f"corpus {path!r} is empty")
    lower = path.lower()
    try:
        if lower.endswith(".gz"):
            return gzip.open(path, "rb")
        if lower.endswith(".bz2"):
            return bz2.open(path, "rb")
        if lower.endswith(".zip"):
            zf = zipfile.ZipFile(path)
            members = [i for i in zf.infolist() if not i.is_dir()]
            if len(members) != 1:
                raise CorpusError(
                    f"corpus {path!r} is a zip with {len(members)} files; it must hold exactly one text file")
            return zf.open(members[0])
        return open(path, "rb")
    except zipfile.BadZipFile:
        raise CorpusError(f"corpus {path!r} is not a valid zip archive") from None
    except OSError as e:
        raise CorpusError(f"cannot read corpus {path!r}: {e.strerror or e}") from None


def iter_text_chunks(stream: BinaryIO, name: str, chunk_bytes: int | None = None) -> Iterator[bytes]:
    """Yield byte chunks that end on whitespace (the last one may not), checked to be UTF-8 text."""
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    carry = b""
    offset = 0
    while True:
        try:
            block = stream.read(chunk_bytes)
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            raise CorpusError(f"corpus {name!r} is corrupt or truncated ({e})") from None
        if not block:
            break
        if offset == 0 and not carry and block.startswith(b"\xef\xbb\xbf"):
            block = block[3:]  # a UTF-8 byte order mark is not part of the first word
        data = carry + block
        cut = max(data.rfind(b" "), data.rfind(b"\n"), data.rfind(b"\t"), data.rfind(b"\r"))
        if cut < 0:
            if len(data) > 64 * chunk_bytes:
                raise CorpusError(f"corpus {name!r} has a token longer than {64 * chunk_bytes} bytes; "
                                  "is it a text file?")
            carry = data
            continue
        chunk, carry = data[: cut + 1], data[cut + 1:]
        _check_text(chunk, name, offset)
        offset += len(chunk)
        yield chunk
    if carry:
        _check_text(carry, name, offset)
        yield carry


# ASCII control bytes that are not whitespace to bytes.split (space, \t \n \v \f \r)
_CONTROL = bytes([*range(0x01, 0x09), *range(0x0e, 0x20), 0x7f])
_CONTROL_RE = re.compile(b"[" + re.escape(_CONTROL) + b"]")


def _check_text(chunk: bytes, name: str, offset: int) -> None:
    """Refuse NUL bytes, other control bytes and invalid UTF-8.

    Control bytes (0x01-0x08, 0x0e-0x1f, 0x7f) are refused rather than read as separators:
    word2vec.c splits only on space, tab and newline, so it would keep them inside words, and a
    vectors file with such a word is unreadable by word2vec tools (and by this loader).  Splitting
    on them instead would silently train other tokens than the text holds."""
    nul = chunk.find(b"\0")
    if nul >= 0:
        raise CorpusError(f"corpus {name!r} is not a text file (NUL byte at offset {offset + nul}); "
                          "give plain UTF-8 text, .gz, .bz2 or a .zip holding one text file")
    if len(chunk.translate(None, _CONTROL)) != len(chunk):  # (C speed; the search only on failure)
        at = _CONTROL_RE.search(chunk).start()
        lo = max(chunk.rfind(b" ", 0, at), chunk.rfind(b"\n", 0, at), chunk.rfind(b"\t", 0, at),
                 chunk.rfind(b"\r", 0, at)) + 1
        hi = min([i for i in (chunk.find(c, at) for c in (b" ", b"\n", b"\t", b"\r")) if i >= 0] or [len(chunk)])
        token = chunk[lo:hi][:60].decode("utf-8", "replace")
        raise CorpusError(f"corpus {name!r} holds control character 0x{chunk[at]:02x} at byte {offset + at} "
                          f"(in token {token!r}), which word2vec tools cannot read in a vectors file; "
                          "replace such bytes, e.g. tr '\\001-\\010\\016-\\037\\177' ' '")
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(f"corpus {name!r} is not UTF-8 text (invalid byte at offset {offset + e.start}); "
                          "convert it with e.g. iconv -t utf-8") from None


def _fingerprint(path: str, min_count: int, max_vocab, max_sentence_length: int, read_vocab=None) -> dict:
    """What the prepared data is keyed on: the corpus file's identity, the settings, and a read
    vocabulary's path and sha256 (a changed vocabulary file prepares again)."""
    st = os.stat(path)  # ctime and inode too: copies that keep the size and mtime (cp -p) change them
    fp = {"version": PREPARE_VERSION, "corpus": os.path.realpath(path), "bytes": st.st_size,
          "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "inode": st.st_ino, "min_count": min_count,
          "max_vocab": max_vocab, "max_sentence_length": max_sentence_length}
    if read_vocab is not None:  # (absent otherwise: work dirs prepared before --read-vocab stay reusable)
        fp["read_vocab"] = {"path": os.path.realpath(read_vocab[0]), "sha256": read_vocab[1]}
    return fp


def prepare(path: str, workdir: str, min_count: int = 5, max_vocab: int | None = None,
            max_sentence_length: int = 10000, force: bool = False, read_vocab: str | None = None) -> Corpus:
    """Tokenise ``path`` into ``workdir`` (or reuse what an identical earlier call wrote, when
    its files still match their recorded hashes; ``force`` always tokenises again).

    ``read_vocab``: a vocabulary file (:meth:`Vocab.load`'s format) used instead of the
    corpus's counts, after ``min_count`` and ``max_vocab``; corpus tokens not in it are dropped
    like rare words.  It is read (and refused, when bad) before anything is written.
    """
    path = os.fspath(path)
    data_dir = os.path.join(workdir, "data")
    meta_path = os.path.join(data_dir, "prepare.json")
    given = _read_vocab(read_vocab, min_count, max_vocab) if read_vocab is not None else None
    vocab_key = (read_vocab, file_sha256(read_vocab)) if read_vocab is not None else None
    fp = _fingerprint(path, min_count, max_vocab, max_sentence_length, vocab_key) if os.path.isfile(path) else None
    if fp is not None and not force and _reusable(workdir, fp):
        logger.debug("reusing the corpus prepared in %s", data_dir)
        return load_corpus(workdir)
    stream = open_corpus(path)
    _clear_damaged(workdir)
    made = not os.path.isdir(data_dir)  # removed again if the corpus is refused (no empty data/ left)
    os.makedirs(data_dir, exist_ok=True)
    if os.path.exists(meta_path):
        os.remove(meta_path)
    tmp_ids = os.path.join(data_dir, "provisional.u32.tmp")
    try:
        with stream:
            words, line_breaks, n_raw, corpus_sha = _first_pass(stream, path, tmp_ids)
        if n_raw == 0:
            raise CorpusError(f"corpus {path!r} holds no words (only whitespace)")
        counts = np.zeros(len(words), np.int64)
        for s in range(0, n_raw, BLOCK_TOKENS):
            counts += np.bincount(read_u32(tmp_ids, s, min(s + BLOCK_TOKENS, n_raw)), minlength=len(words))
        if given is not None:
            vocab, old_to_new = given, _map_to(given, words, counts, read_vocab, path)
        else:
            vocab, old_to_new = build_vocab(words, counts, min_count, max_vocab)
        if len(vocab) == 0:
            raise CorpusError(
                f"no word of corpus {path!r} occurs {min_count} or more times "
                f"({n_raw} tokens, {len(words)} distinct, most frequent {int(counts.max())} times); "
                "lower --min-count or give a larger corpus")
        if len(vocab) < 2:
            raise CorpusError(f"only one word of corpus {path!r} is left by --min-count {min_count}; "
                              "lower --min-count or give a larger corpus")
        ids_path = os.path.join(data_dir, "ids.u32")
        sentences = _second_pass(tmp_ids, n_raw, old_to_new.astype(np.int64), line_breaks, ids_path + ".tmp",
                                 max_sentence_length)
        os.replace(ids_path + ".tmp", ids_path)
        np.save(os.path.join(data_dir, "sentences.npy.tmp.npy"), sentences)
        os.replace(os.path.join(data_dir, "sentences.npy.tmp.npy"), os.path.join(data_dir, "sentences.npy"))
        vocab.save(os.path.join(workdir, "vocab.txt"))
        meta = {"fingerprint": fp, "raw_tokens": int(n_raw), "distinct_tokens": len(words),
                "vocab_size": len(vocab), "train_words": int(sentences[-1]),
                "sentences": int(len(sentences) - 1), "corpus_sha256": corpus_sha,
                "sha256": {name: file_sha256(os.path.join(workdir, name)) for name in _HASHED}}
        atomic_write(meta_path, [json.dumps(meta, indent=2)])
    finally:
        if os.path.exists(tmp_ids):
            os.remove(tmp_ids)
        if made and not os.listdir(data_dir):
            os.rmdir(data_dir)
    return load_corpus(workdir)


def _clear_damaged(workdir: str) -> None:
    """Remove what stands where prepare writes and is not a file (a file named ``data``, a
    directory named ``ids.u32``): prepared data is made again from the corpus, not trusted."""
    data_dir = os.path.join(workdir, "data")
    names = [os.path.join(workdir, "vocab.txt")] + [os.path.join(data_dir, n) for n in (
        "prepare.json", "ids.u32", "sentences.npy", "ids.u32.tmp", "provisional.u32.tmp", "sentences.npy.tmp.npy")]
    try:
        if os.path.lexists(data_dir) and not os.path.isdir(data_dir):
            os.remove(data_dir)
        for name in names:
            if os.path.isdir(name) and not os.path.islink(name):
                shutil.rmtree(name)
            elif os.path.lexists(name) and not os.path.isfile(name):
                os.remove(name)
    except OSError as e:
        raise CorpusError(f"cannot clear the damaged prepared data in {data_dir} ({e.strerror or e}: "
                          f"{e.filename}); remove it and run again") from None


def _read_vocab(path: str, min_count: int, max_vocab) -> Vocab:
    """A vocabulary file's words and counts after ``min_count`` / ``max_vocab``, sorted by count."""
    given = Vocab.load(path)
    vocab, _ = build_vocab(list(given.words), given.counts, min_count, max_vocab)
    if len(vocab) < 2:
        raise CorpusError(f"vocabulary {path!r} has {len(vocab)} word(s) with a count of --min-count "
                          f"{min_count} or more; at least 2 are needed")
    return vocab


def _map_to(vocab: Vocab, words: list, counts: np.ndarray, vocab_path: str, corpus: str) -> np.ndarray:
    """The map from the corpus's provisional ids to ``vocab``'s (-1: not in it, dropped like a
    rare word)."""
    index = vocab.index
    old_to_new = np.fromiter((index.get(w, -1) for w in words), np.int64, len(words))
    if int(counts[old_to_new >= 0].sum()) < 2:
        raise CorpusError(f"corpus {corpus!r} holds fewer than 2 tokens of the vocabulary {vocab_path!r}; "
                          "is it the vocabulary of this corpus?")
    return old_to_new


def _first_pass(stream: BinaryIO, name: str, tmp_ids: str, native: bool = True):
    """Provisional ids (first-occurrence order) to ``tmp_ids``; returns (words, line breaks, n, sha256).

    ``native``: split and look up in C (``kernels/tokenize.cc``, ~7x faster) when it builds; the
    Python loop below gives the same output and is the fallback."""
    lib = _tokenizer() if native else None
    breaks: list = []  # raw token positions where a new line starts
    n = 0
    digest = hashlib.sha256()
    if lib is not None:
        handle = ctypes.c_void_p(lib.w2v_tok_new())
        feed = _native_feed(lib, handle)
    else:
        index: dict[bytes, int] = collections.defaultdict()
        index.default_factory = index.__len__  # an unseen token gets the next id, all in C (no Python frame per token)
        feed = functools.partial(_python_feed, index.__getitem__)
    try:
        with open(tmp_ids, "wb") as out:
            for chunk in iter_text_chunks(stream, name):
                digest.update(chunk)
                ids, chunk_breaks = feed(chunk, n)
                breaks.append(chunk_breaks)
                out.write(ids.tobytes())
                n += len(ids)
        if lib is not None:
            size, nbytes = lib.w2v_tok_size(handle), lib.w2v_tok_bytes(handle)
            arena, offsets = np.empty(nbytes, np.uint8), np.empty(size + 1, np.int64)
            lib.w2v_tok_words(handle, arena.ctypes.data, offsets.ctypes.data)
            arena = arena.tobytes()
            words = [arena[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
        else:
            words = [w.decode("utf-8") for w in index]
    finally:
        if lib is not None:
            lib.w2v_tok_free(handle)
    line_breaks = np.concatenate(breaks) if breaks else np.zeros(0, np.int64)
    return words, line_breaks.astype(np.int64), n, digest.hexdigest()


def _python_feed(lookup, chunk: bytes, base: int):
    """One chunk's provisional ids and line-break positions, in Python."""
    breaks: list[int] = []
    if b"\n" in chunk:
        toks = []
        pieces = chunk.split(b"\n")
        for i, piece in enumerate(pieces):
            toks.extend(piece.split())
            if i < len(pieces) - 1:
                breaks.append(base + len(toks))
    else:
        toks = chunk.split()
    return np.fromiter(map(lookup, toks), np.uint32, len(toks)), np.asarray(breaks, np.int64)


def _native_feed(lib, handle):
    def feed(chunk: bytes, base: int):
        ids = np.empty(len(chunk) // 2 + 1, np.uint32)
        breaks = np.empty(chunk.count(b"\n"), np.int64)
        n_breaks = ctypes.c_int64(0)
        n = lib.w2v_tok_feed(handle, chunk, len(chunk), ids.ctypes.data, base, breaks.ctypes.data,
                             ctypes.byref(n_breaks))
        return ids[:n], breaks[: n_breaks.value]
    return feed


@functools.lru_cache(maxsize=None)
def _tokenizer():
    """The C tokenizer's library (built on first use), or None (no compiler: the Python loop)."""
    lib_path, why = native.build(native.KERNELS / "tokenize.cc", ("-O2", "-std=c++17", "-shared", "-fPIC", "-w"))
    if lib_path is None:
        logger.debug("preparing in Python: %s", why)
        return None
    try:
        lib = ctypes.CDLL(str(lib_path))
    except OSError as e:
        logger.debug("preparing in Python: loading %s failed: %s", lib_path.name, e)
        return None
    lib.w2v_tok_new.restype = ctypes.c_void_p
    lib.w2v_tok_free.argtypes = [ctypes.c_void_p]
    lib.w2v_tok_feed.restype = ctypes.c_int64
    lib.w2v_tok_feed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
                                 ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64)]
    for f in (lib.w2v_tok_size, lib.w2v_tok_bytes):
        f.restype, f.argtypes = ctypes.c_int64, [ctypes.c_void_p]
    lib.w2v_tok_words.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    return lib


_HASHED = ("vocab.txt", "data/ids.u32", "data/sentences.npy")


def file_sha256(path: str) -> str:
    """The sha256 of a file's bytes, read in 4 MiB blocks (prepared files; metadata's corpus record)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _reusable(workdir: str, fp: dict) -> bool:
    """Whether ``data/`` holds this corpus prepared these ways, every file as its hash was
    recorded (an edited or damaged file, or a work dir of an older w2vjax, is prepared again)."""
    try:
        with open(os.path.join(workdir, "data", "prepare.json")) as f:
            meta = json.load(f)
        hashes = meta.get("sha256") or {}
        return (meta.get("fingerprint") == fp and bool(meta.get("corpus_sha256")) and set(hashes) == set(_HASHED)
                and all(file_sha256(os.path.join(workdir, n)) == h for n, h in hashes.items()))
    except (OSError, ValueError, AttributeError, TypeError):
        return False


def _second_pass(prov_path, n_raw, old_to_new, line_breaks, out_path, max_len) -> np.ndarray:
    """Map provisional ids to vocabulary ids (dropping OOV tokens) block by block, and move
    the raw line breaks to in-vocabulary positions; returns the sentence bounds."""
    line_starts = np.zeros(len(line_breaks), np.int64)
    n_kept = 0
    with open(out_path, "wb") as out:
        for s in range(0, n_raw, BLOCK_TOKENS):
            e = min(s + BLOCK_TOKENS, n_raw)
            new = old_to_new[read_u32(prov_path, s, e)]
            keep = new >= 0
            sel = (line_breaks >= s) & (line_breaks < e)
            if sel.any():  # kept tokens before each break = kept before the block + inside it
                csum = np.concatenate([[0], np.cumsum(keep, dtype=np.int32)])
                line_starts[sel] = n_kept + csum[line_breaks[sel] - s]
            out.write(new[keep].astype(np.uint32).tobytes())
            n_kept += int(keep.sum())
    line_starts[line_breaks >= n_raw] = n_kept
    bounds = np.unique(np.concatenate([[0], line_starts, [n_kept]]))
    # cut every line into pieces of at most max_len words
    lengths = np.diff(bounds)
    pieces = -(-lengths // max_len)
    starts = np.repeat(bounds[:-1], pieces) + max_len * (
        np.arange(pieces.sum()) - np.repeat(np.cumsum(pieces) - pieces, pieces))
    return np.concatenate([starts, [n_kept]]).astype(np.int64)


def load_corpus(workdir: str) -> Corpus:
    data_dir = os.path.join(workdir, "data")
    meta_path = os.path.join(data_dir, "prepare.json")
    if not os.path.exists(meta_path):
        raise CorpusError(f"{workdir!r} holds no prepared corpus")
    with open(meta_path) as f:
        meta = json.load(f)
    vocab = Vocab.load(os.path.join(workdir, "vocab.txt"))
    ids_path = os.path.join(data_dir, "ids.u32")
    n = os.path.getsize(ids_path) // 4  # the kept tokens (a read vocabulary's counts need not sum to them)
    ids = np.memmap(ids_path, np.uint32, "r", shape=(n,))
    sentences = np.load(os.path.join(data_dir, "sentences.npy"))
    _check_ids(ids, len(vocab), workdir)
    source = (meta.get("fingerprint") or {}).get("corpus", "?")
    return Corpus(vocab, ids, sentences, source, ids_path, meta.get("corpus_sha256", ""),
                  (meta.get("sha256") or {}).get("vocab.txt", ""))


def _check_ids(ids: np.ndarray, vocab_size: int, workdir: str) -> None:
    """Ids beyond the vocabulary would index past the tables (the CPU kernel does not check)."""
    for s in range(0, len(ids), BLOCK_TOKENS):
        top = int(ids[s: s + BLOCK_TOKENS].max())
        if top >= vocab_size:
            raise CorpusError(f"{os.path.join(workdir, 'data', 'ids.u32')} holds id {top} beyond the vocabulary "
                              f"({vocab_size} words); run again with --force to prepare the corpus again")
