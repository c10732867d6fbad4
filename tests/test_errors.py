"""Bad input gets a clear error that names the problem and the fix."""

from __future__ import annotations

import pytest
import torch

from lsnf.config import ConfigError, DataConfig, load_config
from lsnf.core.model import build_model
from lsnf.data.splits import DataMissingError, load_split
from lsnf.errors import UserError
from lsnf.training.train import Trainer


def test_unknown_prior_names_the_key_and_choices(make_config) -> None:
    with pytest.raises(ConfigError, match=r"prior\.kind.*'flow', 'gaussian' or 'ebm'.*'glow'"):
        make_config(prior={"kind": "glow"})


def test_unknown_generator(make_config) -> None:
    with pytest.raises(ValueError, match=r"unknown generator 'svhm'.*model.generator"):
        build_model(make_config(model={"generator": "svhm"}))


def test_odd_latent_dimension_for_the_flow(make_config) -> None:
    with pytest.raises(ValueError, match=r"even.*d=5.*model.latent_dim"):
        build_model(make_config(model={"latent_dim": 5}))
    build_model(make_config(model={"latent_dim": 5}, prior={"kind": "gaussian"}))  # fine there


def test_generator_size_not_matching_config(make_config) -> None:
    with pytest.raises(ValueError, match=r"'svhn' produces images of shape \(3, 32, 32\)"):
        build_model(
            make_config(model={"generator": "svhn", "ngf": 2, "channels": 3, "image_size": 28})
        )


def test_generator_output_not_matching_the_data(make_config, tmp_path) -> None:
    cfg = make_config(model={"generator": "svhn", "ngf": 2, "channels": 3, "image_size": 32})
    with pytest.raises(
        ValueError, match=r"configured for images \(3, 32, 32\).*gives \(1, 16, 16\)"
    ):
        Trainer(cfg, tmp_path)


def test_missing_dataset_files_say_where_to_put_them(tmp_path) -> None:
    cfg = DataConfig(name="mnist", source="torchvision", root=str(tmp_path))
    with pytest.raises(DataMissingError) as err:
        load_split(cfg, "train")
    msg = str(err.value)
    assert str(tmp_path / "MNIST" / "raw") in msg and "train-images-idx3-ubyte" in msg
    assert "download: true" in msg


def test_misspelt_and_mistyped_keys_are_named(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("prior:\n  kind: flow\n  flwo: {depth: 3}\ntrain:\n  epochs: many\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert "prior.flwo: unknown key" in msg and "train.epochs" in msg


def test_cuda_without_a_gpu_is_a_clear_error(make_config, tmp_path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(UserError, match="no CUDA device.*device: cpu"):
        Trainer(make_config(device="cuda"), tmp_path)
    with pytest.raises(ConfigError, match="device"):
        make_config(device="gpu")


def test_unknown_dataset_and_bad_anomaly_digit() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'mnsit'"):
        load_split(DataConfig(name="mnsit", source="torchvision"), "train")
    with pytest.raises(ConfigError):
        from lsnf.config import config_from_dict

        config_from_dict({"data": {"held_out_digit": 12}})
