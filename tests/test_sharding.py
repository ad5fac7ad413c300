"""Data parallelism over a device mesh, row-sharded tables, and a two-process run.

The multi-device checks run in a fresh process with 4 simulated CPU devices
(tests/mesh_worker.py), since this test process has already initialised JAX with one.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from w2vjax import make_config
from w2vjax.config import ConfigError
from w2vjax.prepare import prepare
from w2vjax.stream import ShardedStream, Streamer, StreamSpec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("XLA_FLAGS", None)
    return env


def test_1_2_4_devices_and_sharded_tables_give_the_same_vectors(head_corpus, tmp_path):
    out = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "mesh_worker.py"), head_corpus(60_000),
                           str(out)], env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    # Sparse updates are all-gathered and applied in batch order on every device, and the
    # negatives are the global batch's draws, so the runs compute the same thing; the vectors
    # are equal to float tolerance only, because XLA may vectorise a per-example kernel
    # differently for another local batch shape (on this corpus and these shapes they come out
    # bitwise equal except the full softmax, whose dense output gradient is all-reduced).
    for case, r in result.items():
        assert r["max_diff"] < 2e-5, (case, r)
    assert {"sg-ns/4", "cbow-hs/4/sharded", "sg-ns-shared/2", "sg-softmax/4",
            "sg-ns/4->2/sharded resumed"} <= set(result)


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_agree_with_one_process_streaming_both_shards(head_corpus, tmp_path):
    corpus = head_corpus(200_000)  # 3 blocks of 65,536 words: enough for 2 data shards
    args = [sys.executable, "-m", "w2vjax", "train", corpus, "--model", "cbow", "--dim", "16", "--epochs", "1",
            "--batch-size", "256", "--steps-per-call", "32", "--min-count", "3", "--quiet", "--no-eval"]
    port = _free_port()
    two = tmp_path / "two"
    procs = [subprocess.Popen(args + ["--workdir", str(two), "--coordinator", f"localhost:{port}",
                                      "--num-processes", "2", "--process-id", str(i)],
                              env=_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    assert "trained" in outs[0][0] and "x 2 processes" in outs[0][0]
    assert "trained" not in outs[1][0]  # only process 0 reports and writes
    one = tmp_path / "one"
    subprocess.run(args + ["--workdir", str(one), "--data-shards", "2"], env=_env(), cwd=ROOT, check=True,
                   capture_output=True, timeout=300)
    from w2vjax import load_vectors
    a, b = load_vectors(str(two / "vectors.bin")), load_vectors(str(one / "vectors.bin"))
    assert a.words == b.words
    np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-4)  # 2 devices vs 1: float tolerance
    summary = json.loads((two / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["data_shards"] == 2
    assert summary["raw_words"] == json.loads((one / "summary.json").read_text())["raw_words"]


@pytest.mark.parametrize("model", ["skipgram", "cbow"])
def test_data_shards_cover_each_example_once(head_corpus, tmp_path, model):
    corpus = prepare(head_corpus(200_000), str(tmp_path), 5)
    keep = corpus.vocab.keep_prob(1e-3)
    spec = StreamSpec(model, 5, 48, 16, 2, 7)
    plain = Streamer(corpus, keep, spec)
    want = sorted(int(x) for e in range(2) for b in range(plain.num_blocks)
                  for x in plain.examples(e, b)["out"])
    got, words = [], []
    sharded = ShardedStream(corpus, keep, spec, 3, (0, 1, 2))
    for batch, positions, done in sharded(sharded.start()):
        got.extend(batch["out"][batch["mask"] > 0].tolist())
        words.append(done)
        assert batch["words"].shape == batch["mask"].shape
    assert sorted(got) == want  # the same examples (block-seeded), split over 3 streams
    assert words == sorted(words) and words[-1] == plain.total_words
    # resuming each shard from a saved position continues exactly
    it = sharded(sharded.start())
    for _ in range(3):
        _, pos, _ = next(it)
    rest = [b["out"][b["mask"] > 0].tolist() for b, _, _ in it]
    again = [b["out"][b["mask"] > 0].tolist() for b, _, _ in sharded(pos)]
    assert rest == again


def test_bad_device_settings_are_one_line_errors(head_corpus, tmp_path):
    with pytest.raises(ConfigError, match="--shard-tables cannot be used with --loss softmax"):
        make_config(loss="softmax", shard_tables=True)
    proc = subprocess.run([sys.executable, "-m", "w2vjax", "train", head_corpus(60_000), "--workdir",
                           str(tmp_path), "--devices", "3", "--epochs", "1"], env=_env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["w2vjax: error: --devices must be in 1..1 (the local cpu devices), got 3"]
    proc = subprocess.run([sys.executable, "-m", "w2vjax", "train", "--workdir", str(tmp_path), "--num-processes",
                           "2"], env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "needs --coordinator" in proc.stderr and "Traceback" not in proc.stderr
