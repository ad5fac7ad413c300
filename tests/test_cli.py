"""The command line: outputs, queries, and one-line errors for bad input."""

import json
import re
import subprocess
import sys

import dataclasses

import pytest

import w2vjax
from w2vjax.cli import build_parser, config_from_args, main
from w2vjax.config import SECTIONS, Config, make_config


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
    (["--cpu-kernel", "--loss", "softmax"], "--cpu-kernel"),
    (["--cpu-kernel", "--device-windows"], "--cpu-kernel"),
    (["--cpu-kernel", "--shared-negatives", "--model", "skipgram"], "--cpu-kernel"),
    (["--threads", "-1"], "--threads"),
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


def test_work_dir_files_that_are_not_vectors(tmp_path, capsys, trained):
    """Pointing a query at a checkpoint, the work dir or another of its files: one line naming it."""
    step = next(d for d in (trained / "checkpoints").iterdir() if d.name.isdigit())
    for path in (trained / "checkpoints", step, trained):
        assert "is a directory, not a vectors file" in _err(["eval", str(path)], capsys)
        assert str(path) in _err(["neighbors", str(path), "king"], capsys)
    assert "vocab.txt: bad header" in _err(["neighbors", str(trained / "vocab.txt"), "king"], capsys)
    lines = (trained / "vectors.txt").read_text().splitlines(keepends=True)
    (tmp_path / "cut.txt").write_text("".join(lines[:3]) + lines[3][:5])  # cut mid-record
    assert "cut.txt: truncated" in _err(["analogy", str(tmp_path / "cut.txt"), "king", "queen", "land"], capsys)


def test_diverging_loss_is_one_line_naming_the_step(tmp_path, capsys, head_corpus):
    err = _err(["train", head_corpus(60_000), "--workdir", str(tmp_path / "wd"), "--model", "cbow", "--dim", "16",
                "--epochs", "1", "--batch-size", "64", "--steps-per-call", "8", "--min-count", "3", "--lr", "3",
                "--row-update-cap", "0", "--checkpoint-every", "8", "--quiet", "--no-eval"], capsys)
    assert re.fullmatch(r"w2vjax: error: loss became (nan|inf|-inf) at step \d+ .*lower --lr.*", err), err
    assert not (tmp_path / "wd" / "vectors.txt").exists()


_PREPARE_PEAK = """
import sys, tracemalloc
import numpy as np
import w2vjax.prepare as p
p.CHUNK_BYTES, p.BLOCK_TOKENS = 1 << 20, 1 << 18  # small buffers, so corpus-sized memory would stand out
tracemalloc.start()  # counts Python and NumPy allocations, unlike the RSS (allocator- and THP-dependent)
c = p.prepare(sys.argv[1], sys.argv[2], min_count=3)
peak = tracemalloc.get_traced_memory()[1]
lengths = np.diff(c.sentences)
print(c.num_words, len(lengths), int(lengths.max()), peak)
"""


def test_one_30mb_line_is_cut_into_sentences_in_bounded_memory(tmp_path, head_corpus):
    """A corpus without a single newline (27 MB) is read in chunks and cut into 10000-word
    sentences, and the memory it takes does not grow with the line (measured: 7.7 MB of
    allocations for a 2.4 MB line, 8.8 MB for the 27 MB one; holding the line alone would add
    27 MB).  Words are made 8x longer so that tracing allocations stays fast.  Training on one
    line is what every test on ``head_corpus`` does (a 60 000-word line)."""
    import os
    import w2vjax
    line = b" ".join(w * 8 for w in open(head_corpus(60_000), "rb").read().split())
    runs = {}
    for copies in (1, 11):
        path = tmp_path / f"line{copies}.txt"
        path.write_bytes(b" ".join([line] * copies))
        r = subprocess.run([sys.executable, "-c", _PREPARE_PEAK, str(path), str(tmp_path / f"wd{copies}")],
                           capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(w2vjax.__file__)))
        assert r.returncode == 0, r.stderr[-2000:]
        runs[copies] = [int(x) for x in r.stdout.split()]
        path.unlink()
    words, sentences, longest, _ = runs[11]
    assert words > 600_000 and longest == 10000 and sentences == -(-words // 10000), runs
    growth_mb = (runs[11][3] - runs[1][3]) / 2**20
    assert growth_mb < 8, runs


def test_module_entry_point_exits_nonzero_without_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "w2vjax", "train", str(tmp_path / "missing.txt"),
                        "--workdir", str(tmp_path / "wd")], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("w2vjax: error:") and "Traceback" not in r.stderr


def _settings():
    return [f for klass in SECTIONS.values() for f in dataclasses.fields(klass)]


def _default_shown(f):
    if f.metadata["default_help"] is not None:
        return f.metadata["default_help"]
    return "off" if isinstance(f.default, bool) else str(f.default)


def test_help_lists_every_setting_with_its_default(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # one line per option, so no default is wrapped
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    # one entry per option: its line and, for a long flag, the help on the next one
    entries = {m.group(1): " ".join(m.group(2).split())
               for m in re.finditer(r"^  (--[\w-]+)(.*(?:\n {4,}\S.*)*)", out, re.M)}
    for f in _settings():
        flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
        assert flag in entries, f"{flag} missing from train --help"
        entry = entries[flag]
        assert f.metadata["help"] in entry and entry.endswith(f"(default: {_default_shown(f)})"), entry
    assert "--host-prep" not in out and "--hogwild" not in out and "--no-hogwild" not in out


def test_generated_flags_set_their_fields():
    parse = build_parser().parse_args
    assert config_from_args(parse(["train"])) == Config().validate()  # flag defaults are the fields'
    cfg = config_from_args(parse(["train", "--dim", "7", "--cbow-sum", "--no-cpu-kernel", "--lr", "0.1",
                                  "--max-vocab", "1000", "--row-update-cap", "8", "--model", "skipgram",
                                  "--loss", "hs", "--device-windows", "--threads", "2", "--shard-tables",
                                  "--cbow-exact-grad", "--sample", "0", "--eval-every", "0.5"]))
    assert cfg == make_config(dim=7, cbow_mean=False, cpu_kernel=False, lr=0.1, max_vocab=1000,
                              row_update_cap=8.0, model="skipgram", loss="hs", device_windows=True, threads=2,
                              shard_tables=True, cbow_exact_grad=True, sample=0.0, eval_every=0.5)
    assert cfg.model.dim == 7 and cfg.model.cbow_mean is False and cfg.train.cpu_kernel is False
    assert cfg.lr == 0.1 and isinstance(cfg.train.row_update_cap, float) and isinstance(cfg.data.max_vocab, int)
    args = parse(["train", "c.txt", "--workdir", "w", "--quiet", "--force", "--no-eval", "--shared-negatives",
                  "--model", "skipgram", "--devices", "2", "--data-shards", "4", "--process-id", "1"])
    cfg = config_from_args(args)
    assert cfg.model.shared_negatives and cfg.train.devices == 2 and cfg.train.data_shards == 4
    assert (args.corpus, args.workdir, args.quiet, args.force, args.no_eval, args.process_id) == \
        ("c.txt", "w", True, True, True, 1)


def test_version_without_jax(tmp_path):
    code = ("import sys\nfrom w2vjax.cli import main\ntry:\n    main(['--version'])\n"
            "except SystemExit as e:\n    print(e.code, 'jax' in sys.modules, file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.stdout == f"w2vjax {w2vjax.__version__}\n" and r.stderr.split() == ["0", "False"], r
    r = subprocess.run([sys.executable, "-m", "w2vjax", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == f"w2vjax {w2vjax.__version__}"


@pytest.mark.parametrize("argv,needle", [
    (["train", "--dim", "x"], "--dim: invalid int value: 'x'"),
    (["train", "--lr", "fast"], "--lr: invalid float value"),
    (["train", "--model", "glove"], "--model: invalid choice"),
    (["train", "--host-prep"], "unrecognized arguments: --host-prep"),
    (["train", "--no-hogwild"], "unrecognized arguments: --no-hogwild"),
    (["fit"], "invalid choice: 'fit'"),
])
def test_bad_flags_are_one_line(capsys, argv, needle):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("w2vjax: error: ") and needle in err, err


def test_query_flags_positive_negative_and_eval_files(trained, capsys, tmp_path):
    """neighbors --negative, analogy --positive/--negative/--cosmul, eval --similarity (repeatable),
    --analogies FILE, --restrict N and --json."""
    import json
    from w2vjax.model import KeyedVectors
    wv = KeyedVectors.load_word2vec_format(str(trained / "vectors.bin"))
    capsys.readouterr()
    assert main(["neighbors", str(trained / "vectors.bin"), "king", "land", "--negative", "queen", "--topn", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "king + land - queen:"
    assert [l.split()[0] for l in lines[1:]] == [w for w, _ in wv.most_similar(["king", "land"], ["queen"], topn=2)]
    assert main(["analogy", str(trained / "vectors.bin"), "--positive", "queen", "land", "--negative", "king",
                 "--topn", "2"]) == 0
    by_flags = capsys.readouterr().out
    assert main(["analogy", str(trained / "vectors.bin"), "king", "queen", "land", "--topn", "2"]) == 0
    assert capsys.readouterr().out == by_flags
    assert main(["analogy", str(trained / "vectors.bin"), "king", "queen", "land", "--cosmul", "--topn", "1"]) == 0
    assert capsys.readouterr().out.split()[0] == wv.most_similar_cosmul(["queen", "land"], ["king"], topn=1)[0][0]
    _err(["analogy", str(trained / "vectors.bin"), "king", "queen"], capsys)
    pairs, questions = tmp_path / "pairs.txt", tmp_path / "q.txt"
    pairs.write_text("king queen 8.0\nking land 3.0\nqueen land 2.5\nthe and 1.0\n")
    questions.write_text(": tiny\nking queen land the\n")
    assert main(["eval", str(trained / "vectors.bin"), "--similarity", str(pairs), "--similarity", str(pairs),
                 "--analogies", str(questions), "--restrict", "5", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["pairs_pairs"] == 4 and result["analogy_questions"] == 1
    assert result["analogy_restrict_vocab"] == 5 and "ws353_spearman" not in result


def test_verbose_breakdown_and_binary_only(tmp_path, capsys, head_corpus):
    """--verbose prints where the wall time went; --no-text-vectors writes vectors.bin alone."""
    wd = tmp_path / "wd"
    assert main(["train", head_corpus(20_000), "--workdir", str(wd), "--dim", "8", "--epochs", "1", "--no-eval",
                 "--quiet", "--verbose", "--no-text-vectors"]) == 0
    out = capsys.readouterr().out
    assert "wall time" in out and "first_call" in out and "export_text" not in out
    assert (wd / "vectors.bin").exists() and not (wd / "vectors.txt").exists()
    assert "export_binary" in json.load(open(wd / "summary.json"))["timings"]
