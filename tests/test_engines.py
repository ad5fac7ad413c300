"""engines.choose: the one place the engine and the platform defaults are decided."""

import pytest

from w2vjax import engines
from w2vjax.config import ConfigError, make_config
from w2vjax.engines import cpu_kernel

KERNEL = cpu_kernel.available()[0]


def _choose(platform="cpu", devices=1, **settings):
    return engines.choose(make_config(**settings), platform, devices)


@pytest.mark.skipif(not KERNEL, reason="no C++ compiler for the CPU kernel")
@pytest.mark.parametrize("model,loss", [("skipgram", "ns"), ("cbow", "ns"), ("skipgram", "hs"), ("cbow", "hs")])
def test_one_cpu_device_runs_the_kernel_for_ns_and_hs(model, loss):
    cfg, e = _choose(model=model, loss=loss)
    assert e.name == "cpu_kernel" and e.threads == cpu_kernel.default_threads() and not e.device_windows
    assert cfg.batch_size == 256
    assert _choose(model=model, loss=loss, threads=1)[1].threads == 1


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
    assert e.device_windows and cfg.batch_size == 4096
    cfg, e = _choose("gpu", data_shards=2)  # several streams: the host makes the examples
    assert not e.device_windows
    assert _choose("gpu", batch_size=512)[0].batch_size == 512


@pytest.mark.parametrize("settings,platform,devices", [
    ({"cpu_kernel": True}, "gpu", 1), ({"cpu_kernel": True}, "cpu", 2),
    ({"cpu_kernel": True, "loss": "softmax"}, "cpu", 1)])
def test_asking_for_the_kernel_where_it_cannot_run_is_refused(settings, platform, devices):
    with pytest.raises(ConfigError, match="--cpu-kernel"):
        _choose(platform, devices, **settings)
