"""The fused CPU engine (w2vjax.engines.cpu_kernel) computes the XLA engine's update."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from w2vjax import engines, step as step_lib
from w2vjax.config import make_config
from w2vjax.engines import cpu_kernel as kernel

# skipped only where there is no compiler: a kernel that does not compile fails here
pytestmark = pytest.mark.skipif(kernel.available()[1].startswith("no C++ compiler"),
                                reason=f"CPU kernel: {kernel.available()[1]}")


def _batches(cfg, data, tables, n):
    from w2vjax.stream import Streamer, StreamSpec
    m = cfg.model
    spec = StreamSpec(m.model, cfg.data.window, cfg.batch_size, cfg.train.steps_per_call, 1, 1,
                      windows=cfg.windows, negative=m.negative if m.loss != "hs" else 0)
    noise = (np.asarray(tables.noise_accept), np.asarray(tables.noise_alias))
    every = [b for b, _, _ in Streamer(data, data.vocab.keep_prob(1e-3), spec, noise=noise)()]
    assert len(every) > n
    return every[:n - 1] + every[-1:]  # the last one ends in masked padding


def _max_touches(cfg, tables, batch):
    """The most touches of one output row in a micro-batch of ``batch`` (the row cap's count)."""
    import jax.numpy as jnp
    from w2vjax import objectives
    mb = jax.tree.map(lambda x: x[0], batch)
    _, ids, aux = objectives.gather({"emb_in": jnp.zeros((len(tables.noise_accept), 1)),
                                     "emb_out": jnp.zeros((len(tables.noise_accept), 1))},
                                    mb, tables, cfg.model.loss, None, cfg.model.negative, neg=mb.neg)
    _, w_out = engines.xla.touch_weights(mb, ids["out"].shape, aux.get("path_mask"))
    counts = np.zeros(len(tables.noise_accept) + 1)
    np.add.at(counts, np.asarray(ids["out"]).reshape(-1), np.asarray(w_out).reshape(-1))
    return counts.max()


def _run(cfg, data, tables, batches, threads):
    engine = engines.cpu_kernel_engine(threads) if threads else engines.Engine()
    fn = step_lib.make_train_step(cfg, tables, data.num_words, engine=engine)
    state = step_lib.init_state(cfg, len(data.vocab))
    metrics = []
    for b in batches:
        state, m = fn(state, b)
        metrics.append(jax.tree.map(float, m))
    assert fn.traces() == 1
    return state, metrics


@pytest.mark.parametrize("model,loss,mean,dim,exact", [("skipgram", "ns", True, 20, False),
                                                       ("skipgram", "hs", True, 136, False),
                                                       ("cbow", "ns", True, 16, False), ("cbow", "hs", True, 20, False),
                                                       ("cbow", "ns", False, 20, False), ("cbow", "hs", True, 20, True),
                                                       ("skipgram", "nce", True, 20, False),
                                                       ("cbow", "nce", True, 16, False),
                                                       ("skipgram", "sampled-softmax", True, 20, False),
                                                       ("cbow", "sampled-softmax", True, 16, False)])
def test_kernel_update_equals_the_xla_step(model, loss, mean, dim, exact, head_corpus, tmp_path):
    """4 calls of 8 micro-batches (a row-update cap of 2 that binds, masked padding at the end of
    the stream, CBOW's mean and sum; NCE's logit offsets; sampled softmax's normalisation over the
    slots, with accidental hits removed): the kernel's tables, loss sums and learning rates on one
    thread are the XLA engine's (which counts the touches the kernel counts itself), to float
    rounding, and bitwise again on a rerun.  Hogwild threads stay close to it.  The dims cover the vectorised
    kernel's row tail (d % 16) and rows longer than it keeps in registers at once (128)."""
    from w2vjax.prepare import prepare
    cfg = make_config(model=model, loss=loss, dim=dim, batch_size=64, steps_per_call=8, negative=4, window=3,
                      row_update_cap=2.0, lr=0.5, cbow_mean=mean, cbow_exact_grad=exact).validate()
    data = prepare(head_corpus(20_000), str(tmp_path), 3, None, 10_000)
    tables = step_lib.make_tables(data.vocab, cfg)
    batches = _batches(cfg, data, tables, 4)
    assert _max_touches(cfg, tables, batches[0]) > cfg.row_cap  # the cap binds somewhere
    assert (np.asarray(batches[-1].mask) == 0).any()
    ref, ref_m = _run(cfg, data, tables, batches, 0)
    init = step_lib.init_state(cfg, len(data.vocab)).params
    got, got_m = _run(cfg, data, tables, batches, 1)
    assert int(got.step) == int(ref.step) == 32
    for k in ref.params:
        a, r = np.asarray(got.params[k]), np.asarray(ref.params[k])
        moved = np.abs(r - np.asarray(init[k])).max()
        assert moved > 0.01
        np.testing.assert_allclose(a, r, rtol=0, atol=1e-4 * moved, err_msg=k)
    for g, r in zip(got_m, ref_m):
        assert g["lr"] == pytest.approx(r["lr"], rel=1e-7) and g["examples"] == r["examples"]
        assert g["loss_sum"] == pytest.approx(r["loss_sum"], rel=1e-5)
    again, _ = _run(cfg, data, tables, batches, 1)
    for k in again.params:  # one thread is deterministic
        np.testing.assert_array_equal(np.asarray(again.params[k]), np.asarray(got.params[k]))
    wild, wild_m = _run(cfg, data, tables, batches, 2)
    for k in wild.params:  # the second thread's micro-batches may start from older tables (by up to
        a, r = np.asarray(wild.params[k]), np.asarray(ref.params[k])  # half the moves at this lr)
        assert np.isfinite(a).all()
        assert np.linalg.norm(a - r) < np.linalg.norm(r - np.asarray(init[k]))
    # Racing threads move the trajectory, so where the loss falls steeply (CBOW/NCE drops 27 % in
    # one call at this lr) a call's loss may lag the reference by up to the previous call's fall.
    previous = None
    for g, r in zip(wild_m, ref_m):
        assert g["lr"] == pytest.approx(r["lr"], rel=1e-7) and g["examples"] == r["examples"]
        fall = 0.0 if previous is None else abs(previous - r["loss_sum"])
        assert abs(g["loss_sum"] - r["loss_sum"]) <= max(0.01 * r["loss_sum"], fall)
        previous = r["loss_sum"]


def _own_rows_problem(d=8, seed=0, j=5):
    """Kernel arguments whose micro-batch i uses rows [i v/4, (i + 1) v/4) of both tables only,
    with padded slots (weight 0), a cap of 2 that binds and per-micro-batch coefficients."""
    rng = np.random.default_rng(seed)
    s, b, c, v = 4, 32, 2, 40
    emb_in = rng.normal(size=(v, d)).astype(np.float32)
    emb_out = rng.normal(size=(v, d)).astype(np.float32) * 0.1
    own = lambda k: np.stack([rng.integers(i * v // s, (i + 1) * v // s, (b, k)) for i in range(s)])
    in_ids, out_ids = own(c).astype(np.int32), own(j).astype(np.int32)
    in_hw = np.full((s, b, c), 0.5, np.float32)
    in_coef = np.repeat(np.float32([0.4, 0.3, 0.2, 0.1])[:, None, None], b, 1).repeat(c, 2)
    sign = np.where(np.arange(j) == 0, 1.0, -1.0).astype(np.float32) * np.ones((s, b, j), np.float32)
    weight = (rng.random((s, b, j)) > 0.1).astype(np.float32)
    out_coef = np.repeat(in_coef[..., :1], j, axis=2)
    return emb_in, emb_out, (in_ids, in_hw, in_coef, out_ids, sign, weight, out_coef)


def _kernel_run(problem, threads, cap=2.0):
    emb_in, emb_out, args = problem
    got = kernel.logistic_update(jax.numpy.array(emb_in), jax.numpy.array(emb_out), *args, threads, cap=cap)
    return [np.asarray(x) for x in got]


def test_hogwild_threads_run_their_own_micro_batches():
    """Hogwild on 2 threads: each takes the next micro-batch not yet taken, and they run at the
    same time.  When every micro-batch touches rows of its own they cannot race, and the result
    is the one thread's, bitwise: every micro-batch is run once, with its learning rates, touch
    counts and losses.  A cap of 2 binds in every micro-batch."""
    problem = _own_rows_problem()
    emb_in, emb_out, _ = problem
    one, wild = _kernel_run(problem, 1), _kernel_run(problem, 2)
    assert not np.array_equal(one[0], emb_in) and not np.array_equal(one[1], emb_out)
    for a, r in zip(wild, one):
        np.testing.assert_array_equal(a, r)
    nocap = _kernel_run(problem, 1, cap=0.0)
    assert not np.array_equal(nocap[1], one[1])  # the cap changed the updates


def test_path_update_is_logistic_update_of_the_gathered_paths():
    """Hierarchical softmax's kernel entry, which looks the Huffman paths up itself, computes
    bitwise what the dense entry computes from the paths gathered by the caller (weights and
    coefficients zero past a path's end), the cap binding; on one thread (Hogwild threads race
    on shared rows, so only their own-rows case is bitwise: test_hogwild_threads_...)."""
    rng = np.random.default_rng(1)
    s, b, c, v, d, words, depth = 4, 32, 2, 50, 20, 30, 7
    emb_in = rng.normal(size=(v, d)).astype(np.float32)
    emb_out = rng.normal(size=(v, d)).astype(np.float32) * 0.1
    in_ids = rng.integers(0, v, (s, b, c)).astype(np.int32)
    in_hw = np.full((s, b, c), 0.5, np.float32)
    in_coef = np.full((s, b, c), 0.3, np.float32)
    points = rng.integers(0, v, (words, depth)).astype(np.int32)
    signs = rng.choice(np.float32([-1.0, 1.0]), (words, depth))
    lens = rng.integers(1, depth + 1, words).astype(np.int32)
    word = rng.integers(0, words, (s, b)).astype(np.int32)
    mask = (rng.random((s, b)) > 0.1).astype(np.float32)
    coef = np.float32([0.4, 0.3, 0.2, 0.1])[:, None] * mask
    on_path = (np.arange(depth) < lens[word][..., None]).astype(np.float32)
    dense = (in_ids, in_hw, in_coef, points[word], signs[word], mask[..., None] * on_path, coef[..., None] * on_path)
    for threads in (1,):
        want = kernel.logistic_update(jax.numpy.array(emb_in), jax.numpy.array(emb_out), *dense, threads, cap=2.0)
        got = kernel.path_update(jax.numpy.array(emb_in), jax.numpy.array(emb_out), in_ids, in_hw, in_coef, word,
                                 mask, coef, points, signs, lens, threads, cap=2.0)
        assert not np.array_equal(np.asarray(got[1]), emb_out)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


_PORTABLE = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from w2vjax.engines import cpu_kernel as kernel
kernel.FLAGS = kernel.FLAGS + tuple(sys.argv[4].split())
ok, why = kernel.available()
assert ok, why
import test_kernel
np.savez(sys.argv[2], *test_kernel._kernel_run(test_kernel._own_rows_problem(d=int(sys.argv[3]), j=11), 1))
"""


@pytest.mark.parametrize("flags", ["-mno-avx512f", "-mno-avx512f -mno-avx2 -mno-fma"], ids=["avx2", "portable"])
@pytest.mark.parametrize("d", [100, 136, 13])
def test_portable_kernel_computes_what_the_vectorised_one_does(d, flags, tmp_path):
    """The kernel's AVX2 loops (built here without AVX-512), its portable ones (without AVX2
    either) and the native build (-march=native: AVX-512 where this CPU has it) give the same
    tables and losses, to float rounding (the sums are added in another order), for rows with a
    tail (d % 16, d % 8), longer than 128 and shorter than a vector."""
    out = tmp_path / "portable.npz"
    r = subprocess.run([sys.executable, "-c", _PORTABLE, os.path.dirname(__file__), str(out), str(d), flags],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    portable = np.load(out)
    native = _kernel_run(_own_rows_problem(d=d, j=11), 1)
    for i, a in enumerate(native):
        np.testing.assert_allclose(portable[f"arr_{i}"], a, rtol=1e-5, atol=1e-6)


def test_training_runs_the_kernel_by_default_on_cpu_only_where_it_fits(head_corpus, tmp_path):
    from w2vjax.train import train_and_evaluate
    corpus = head_corpus(30_000)
    common = dict(dim=16, epochs=1, min_count=3)
    runs = {"default": {}, "off": dict(cpu_kernel=False), "softmax": dict(loss="softmax"),
            "shared": dict(model="skipgram", shared_negatives=True), "two": dict(threads=2)}
    got = {}
    for name, kw in runs.items():
        s = train_and_evaluate(make_config(**dict(common, **kw)), str(tmp_path / name), corpus,
                               evaluate=False, progress=False)
        got[name] = s["engine"], s["cpu_kernel_threads"]
        assert np.isfinite(s["final_loss"])
    n = kernel.default_threads()
    assert got == {"default": ("cpu_kernel", n), "off": ("xla", 0), "softmax": ("xla", 0), "shared": ("xla", 0),
                   "two": ("cpu_kernel", 2)}


_NO_COMPILER = """
import sys
from w2vjax.engines import cpu_kernel as kernel
ok, why = kernel.available()
print(ok, why)
from w2vjax.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("flag", [None, "--cpu-kernel"])
def test_without_a_compiler_the_xla_step_runs_or_cpu_kernel_is_one_line_error(flag, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(("the king rules the land and the queen rules the land too " * 200 + "\n") * 3)
    env = dict(os.environ, CXX="w2vjax-no-such-compiler", W2VJAX_CACHE=str(tmp_path / "cache"))
    argv = ["train", str(corpus), "--workdir", str(tmp_path / "wd"), "--dim", "8", "--epochs", "1",
            "--min-count", "2", "--quiet", "--no-eval"] + ([flag] if flag else [])
    r = subprocess.run([sys.executable, "-c", _NO_COMPILER, *argv], capture_output=True, text=True, env=env)
    assert r.stdout.startswith("False no C++ compiler (w2vjax-no-such-compiler)")
    if flag:
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert r.stderr.strip().splitlines() == [
            "w2vjax: error: --cpu-kernel: no C++ compiler (w2vjax-no-such-compiler) on PATH"]
        assert not (tmp_path / "wd").exists()  # refused before anything was written
    else:
        assert r.returncode == 0, r.stderr
        assert "engine xla" in r.stdout and "the CPU kernel is not available (no C++ compiler" in r.stdout
        summary = json.loads((tmp_path / "wd" / "summary.json").read_text())
        assert summary["cpu_kernel_threads"] == 0
