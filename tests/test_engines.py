"""engines.choose: the one place the engine and the platform defaults are decided."""

import pytest

from w2vjax import engines
from w2vjax.config import ConfigError, make_config
from w2vjax.engines import cpu_kernel

KERNEL = cpu_kernel.available()[0]


def _choose(platform="cpu", devices=1, **settings):
    return engines.choose(make_config(**settings), platform, devices)


@pytest.mark.skipif(not KERNEL, reason="no C++ compiler for the CPU kernel")
@pytest.mark.parametrize("model,loss", [("skipgram", "ns"), ("cbow", "ns"), ("skipgram", "hs"), ("cbow", "hs"),
                                        ("skipgram", "nce"), ("cbow", "nce"), ("skipgram", "sampled-softmax"),
                                        ("cbow", "sampled-softmax")])
def test_one_cpu_device_runs_the_kernel_for_ns_nce_ssm_and_hs(model, loss):
    cfg, e = _choose(model=model, loss=loss)
    assert e.name == "cpu_kernel" and e.threads == cpu_kernel.default_threads() and not e.device_windows
    # negative sampling updates after every pair or window (gensim's and word2vec.c's update;
    # docs/simlex.md, benchmarks/results/cbow_text8head_seeds), skip-gram/HS after 32 pairs
    # (benchmarks/results/sghs_text8head_batch), with as many examples a call as the others' 256 x 128
    want = 1 if loss == "ns" else 32 if (model, loss) == ("skipgram", "hs") else 256
    assert cfg.batch_size == want
    assert cfg.batch_size * cfg.train.steps_per_call == 256 * 128
    assert _choose(model=model, loss=loss, threads=1)[1].threads == 1


def test_an_explicit_batch_or_another_engine_keeps_the_batch():
    assert _choose(model="skipgram", loss="ns", batch_size=64)[0].batch_size == 64
    assert _choose(model="skipgram", loss="ns", batch_size=64)[0].train.steps_per_call == 128
    assert _choose(model="skipgram", loss="ns", steps_per_call=8)[0].train.steps_per_call == 8 * 256
    assert _choose(model="skipgram", loss="ns", cpu_kernel=False)[0].batch_size == 256
    assert _choose(model="skipgram", loss="hs", cpu_kernel=False)[0].batch_size == 256
    assert _choose(model="skipgram", loss="hs", steps_per_call=8)[0].train.steps_per_call == 8 * 256 // 32
    assert _choose("gpu", model="skipgram", loss="ns")[0].batch_size == 16384


@pytest.mark.parametrize("settings,platform,devices,name,why", [
    ({"cpu_kernel": False}, "cpu", 1, "xla", "--no-cpu-kernel"),
    ({"loss": "softmax"}, "cpu", 1, "xla", "not softmax"),
    ({"model": "skipgram", "shared_negatives": True}, "cpu", 1, "xla", "--shared-negatives"),
    ({}, "cpu", 4, "mesh", "4 devices"),
    ({"shard_tables": True}, "cpu", 1, "mesh", "sharded by rows"),
    ({"device_windows": True}, "cpu", 1, "xla", "--device-windows"),
    ({}, "gpu", 1, "xla", "on gpu"),
    ({}, "tpu", 8, "mesh", "on tpu"),
])
def test_every_other_run_gets_the_xla_update_and_says_why(settings, platform, devices, name, why):
    cfg, e = _choose(platform, devices, **settings)
    assert e.name == name and why in e.why and e.threads == 0
    assert e.name in e.describe() and e.summary()["engine"] == name


def test_accelerators_make_examples_on_the_device_with_16x_batches():
    cfg, e = _choose("gpu", model="skipgram")
    assert e.device_windows and cfg.batch_size == 16384  # skip-gram/NS pairs on a GPU; a TPU keeps 4096
    assert _choose("tpu", model="skipgram")[0].batch_size == 4096
    cfg, e = _choose("gpu", data_shards=2)  # several streams: the host makes the examples
    assert not e.device_windows
    assert _choose("gpu", batch_size=512)[0].batch_size == 512


@pytest.mark.parametrize("settings,platform,devices", [
    ({"cpu_kernel": True}, "gpu", 1), ({"cpu_kernel": True}, "cpu", 2),
    ({"cpu_kernel": True, "loss": "softmax"}, "cpu", 1),
    ({"cpu_kernel": True, "model": "skipgram", "shared_negatives": True}, "cpu", 1)])
def test_asking_for_the_kernel_where_it_cannot_run_is_refused(settings, platform, devices):
    with pytest.raises(ConfigError, match="--cpu-kernel"):
        _choose(platform, devices, **settings)


def test_pallas_is_chosen_only_when_asked_and_where_it_fits():
    cfg, e = _choose("gpu", model="skipgram", loss="hs", pallas=True)
    assert e.name == "pallas" and e.device_windows and cfg.batch_size == 4096
    on_cpu = _choose("cpu", model="skipgram", pallas=True)[1]
    assert on_cpu.name == "pallas" and on_cpu.emulate and not on_cpu.interpret  # the XLA emulation
    assert not e.emulate and not e.interpret
    assert _choose("gpu", model="skipgram")[1].name == "xla"  # not by default
    with pytest.raises(ConfigError, match="--pallas runs on one device"):
        _choose("gpu", 8, model="skipgram", pallas=True)
    assert _choose("gpu", model="cbow", loss="ns", pallas=True)[1].name == "pallas"
    with pytest.raises(ConfigError, match="--pallas runs skip-gram pairs or CBOW"):
        _choose("gpu", model="skipgram", shared_negatives=True, pallas=True)
    for loss in ("nce", "sampled-softmax"):  # the Pallas kernel is the logistic NS/HS update only
        with pytest.raises(ConfigError, match="--pallas"):
            _choose("gpu", model="skipgram", loss=loss, pallas=True)


@pytest.mark.parametrize("model,loss,windows,interpret", [
    ("skipgram", "ns", False, True), ("skipgram", "hs", True, True), ("cbow", "ns", True, True),
    ("cbow", "hs", False, True), ("skipgram", "ns", True, False), ("cbow", "hs", True, False)])
def test_a_pallas_run_trains_end_to_end(head_corpus, tmp_path, monkeypatch, model, loss, windows, interpret):
    """The pallas engine through the trainer (host stream or device windows), on CPU as chosen (the
    XLA emulation) or with the kernel's own code in Pallas's interpret mode: it runs through the
    whole corpus, losses and vectors are finite.  (Interpret mode keeps the last of the atomic adds
    an index gets within one block, so it computes less than the GPU would.)"""
    import dataclasses
    import json

    import numpy as np

    from w2vjax.train import train_and_evaluate
    if interpret:
        choose = engines.choose
        monkeypatch.setattr(engines, "choose", lambda *a: (lambda c, e: (c, dataclasses.replace(
            e, emulate=False, interpret=True)))(*choose(*a)))
    cfg = make_config(model=model, loss=loss, dim=8, epochs=2, batch_size=64, steps_per_call=8,
                      min_count=3, pallas=True, device_windows=windows, log_every_s=0.0)
    s = train_and_evaluate(cfg, str(tmp_path), head_corpus(20_000), evaluate=False, progress=False)
    assert s["engine"] == "pallas" and s["device_windows"] is windows and s["step_compilations"] == 1
    lines = [json.loads(x) for x in open(tmp_path / "metrics.jsonl")]
    assert len(lines) > 2 and all(np.isfinite(r["loss"]) for r in lines)
    assert lines[-1]["words"] == s["raw_words"] and s["examples"] > 0
    from w2vjax.export import load_vectors
    assert np.isfinite(load_vectors(str(tmp_path / "vectors.bin")).vectors).all()


class _Device:
    device_kind = "NVIDIA H200"

    def __init__(self, limit):
        self.limit = limit

    def memory_stats(self):
        return {"bytes_limit": self.limit}


def test_tables_too_big_for_the_device_are_refused_in_one_line():
    cfg = make_config(dim=300)
    rows = {"emb_in": 10_000_000, "emb_out": 10_000_000}  # 2 x 10 M x 300 floats = 22.4 GiB
    with pytest.raises(ConfigError, match=r"22\.4 GiB per device .* 16\.0 GiB; use --shard-tables"):
        engines.check_memory(cfg, rows, [_Device(16 << 30)], shard_tables=False)
    engines.check_memory(cfg, rows, [_Device(16 << 30)] * 2, shard_tables=True)  # 11.2 GiB each: fits
    engines.check_memory(cfg, rows, [_Device(141 << 30)], shard_tables=False)


def test_the_cpu_reports_no_limit_and_is_not_checked():
    import jax
    engines.check_memory(make_config(), {"emb_in": 10, "emb_out": 10}, jax.devices(), False)


@pytest.mark.parametrize("model,loss,extra", [("cbow", "ns", []), ("skipgram", "ns", []), ("skipgram", "hs", []),
                                              ("skipgram", "ns", ["--shared-negatives"])])
def test_stream_memory_estimate_covers_the_measured_peak(model, loss, extra):
    """engines.stream_bytes (the --window bound) against tracemalloc's peak of one block's examples:
    at least the peak (a refusal never lets a run that cannot fit start), at most 2x (nor refuses
    one that fits)."""
    import tracemalloc
    import numpy as np
    from w2vjax import engines
    from w2vjax.cli import build_parser, config_from_args
    from w2vjax.stream import StreamSpec, block_examples
    from w2vjax.vocab import alias_table
    cfg = config_from_args(build_parser().parse_args(["train", "--model", model, "--loss", loss, "--window", "40"]
                                                     + extra)).validate()
    n, v = 20000, 500
    tok = np.random.default_rng(0).integers(0, v, n).astype(np.uint32)
    neg = cfg.model.negative if loss == "ns" else 0
    spec = StreamSpec(model, 40, 256, 1, 1, 0, windows=cfg.windows, negative=neg)
    tracemalloc.start()
    block_examples(tok, np.array([0, n]), np.ones(v, np.float32), spec, 0, 0, 0, n,
                   alias_table(np.ones(v) / v) if neg else None)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    estimate = engines.stream_bytes(cfg, n)[0]
    assert peak <= estimate <= 2 * peak, (peak, estimate)
