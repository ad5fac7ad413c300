"""The config dataclasses: help on every field, runtime fields, and reading old config.json files."""

import dataclasses
import json

import pytest

from w2vjax.config import RUNTIME_FIELDS, SECTIONS, Config, ConfigError, TrainConfig, make_config


def test_every_field_has_help():
    for klass in SECTIONS.values():
        for f in dataclasses.fields(klass):
            assert f.metadata["help"].strip(), f.name
            assert not f.metadata["runtime"] or klass is TrainConfig, f.name  # identity() drops train's only


def test_runtime_fields():
    assert set(RUNTIME_FIELDS) == {"log_every_s", "prefetch", "checkpoint_every", "checkpoint_minutes", "keep",
                                   "eval_every", "devices", "shard_tables", "cpu_kernel", "threads",
                                   "keep_after", "save_output", "save_vocab"}
    assert make_config(threads=1, keep=9, cpu_kernel=False).identity() == make_config().identity()
    # the exact CBOW gradient changes the vectors: a resumed run must share it
    assert make_config(cbow_exact_grad=True).identity() != make_config().identity()
    assert make_config(cbow_exact_grad=True).identity()["model"]["cbow_exact_grad"] is True


def test_removed_settings():
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    assert not names & {"host_prep", "hogwild"}
    with pytest.raises(ConfigError, match="'host_prep' .--host-prep. was removed: the host stream always"):
        make_config(host_prep=True)
    with pytest.raises(ConfigError, match="--hogwild. was removed: .* --threads 1"):
        make_config(hogwild=False)
    with pytest.raises(ConfigError, match="unknown setting 'warp_speed'"):
        make_config(warp_speed=9)


def test_old_config_json_still_loads():
    old = Config().to_dict()
    old["model"].pop("cbow_exact_grad")  # written before the field existed
    old["train"].pop("init_scale")  # written when every run started at word2vec.c's range
    old["train"].update(host_prep=None, hogwild=False, epochs=2)
    cfg = Config.from_dict(json.loads(json.dumps(old)))
    assert cfg.train.epochs == 2 and cfg.model.cbow_exact_grad is False and cfg.train.init_scale == 0.5
    assert cfg.identity() == make_config(epochs=2, init_scale=0.5).identity()  # so an old work dir resumes
    assert make_config().train.init_scale == 1.0
    assert Config.from_dict(Config().to_dict()) == Config()
    with pytest.raises(ConfigError, match="unknown or malformed"):
        Config.from_dict({"train": {"hogwild": True, "warp_speed": 9}})
    with pytest.raises(ConfigError, match="unknown or malformed"):
        Config.from_dict({"model": {"host_prep": True}})  # dropped from "train" only


def test_validation_without_host_prep():
    with pytest.raises(ConfigError, match="--cpu-kernel"):
        make_config(cpu_kernel=True, device_windows=True)
    make_config(device_windows=True)  # no longer refused with a host-prep setting


def test_cpu_kernel_is_refused_only_where_it_cannot_run():
    for loss in ("ns", "hs", "nce", "sampled-softmax"):  # every loss the kernel has an entry for
        make_config(cpu_kernel=True, loss=loss)
    with pytest.raises(ConfigError, match="--cpu-kernel runs .*not the full softmax"):
        make_config(cpu_kernel=True, loss="softmax")
    with pytest.raises(ConfigError, match="--shared-negatives"):
        make_config(cpu_kernel=True, model="skipgram", shared_negatives=True)


@pytest.mark.parametrize("loss", ["ns", "nce", "sampled-softmax"])
def test_sampled_losses_need_at_least_one_noise_word(loss):
    with pytest.raises(ConfigError, match=f"--negative must be at least 1 with --loss {loss}"):
        make_config(loss=loss, negative=0)
    assert make_config(loss=loss, negative=1).model.negative == 1
    make_config(loss="hs", negative=0)  # hierarchical softmax draws no noise words


def test_checkpoints_saved_before_init_scale_resume_at_word2vec_c_range():
    from w2vjax.checkpoint import identity_diffs
    old = {"vocab_size": 7, "settings": make_config(init_scale=0.5).identity()}
    old["settings"]["train"].pop("init_scale")  # a checkpoint written before the setting existed
    assert identity_diffs(old, {"vocab_size": 7, "settings": make_config(init_scale=0.5).identity()}) == []
    assert identity_diffs(old, {"vocab_size": 7, "settings": make_config().identity()}) == [
        "settings.train.init_scale: 0.5 -> 1.0"]
