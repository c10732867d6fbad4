"""precision: bf16 (docs/method.md §5.4): what runs in bf16 and what stays fp32, the warning on
CPUs without native bf16, and the record in every result."""

from __future__ import annotations

import json

import pytest
import torch
from test_training import MNIST_TINY as _TRAINING

from lsnf import hardware
from lsnf.model import build_model
from lsnf.train import fit

# the MNIST generator (BatchNorm, MLP, transposed convolutions), one short epoch
MNIST_TINY = {
    **_TRAINING,
    "data": {**_TRAINING["data"], "limit": 200},
    "inference": {"steps": 5, "test_steps": 10},
    "train": {**_TRAINING["train"], "epochs": 1},
}


def test_bf16_learning_keeps_parameters_latents_and_optimiser_state_fp32(make_config, tmp_path):
    cfg = make_config(**MNIST_TINY, precision="bf16")
    model = build_model(cfg)
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        seen = []
        hook = model.generator.body[0].register_forward_hook(
            lambda m, a, out: seen.append(out.dtype)
        )
        x = model.decode(z)
        hook.remove()
    assert seen == [torch.bfloat16] and x.dtype == torch.float32  # inside bf16, out fp32
    assert model.energy(z, x).dtype == torch.float32
    trained = fit(cfg, tmp_path)
    assert all(p.dtype == torch.float32 for p in trained.parameters())
    from lsnf.checkpoint import load_checkpoint

    adam = load_checkpoint(tmp_path / "model.pt")["optimizers"][0]["state"]
    assert adam and all(v["exp_avg"].dtype == torch.float32 for v in adam.values())
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[1])["loss_g"] > 0


def test_bf16_on_a_cpu_without_native_bf16_warns(make_config, monkeypatch, capsys) -> None:
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    hardware.apply_precision(make_config(precision="bf16"), torch.device("cpu"))
    err = capsys.readouterr().err
    assert "no native bf16" in err and "precision: fp32" in err
    hardware.apply_precision(make_config(precision="fp32"), torch.device("cpu"))
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    hardware.apply_precision(make_config(precision="bf16"), torch.device("cpu"))
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "flags, native",
    [({"avx2", "avx512f"}, False), ({"avx2", "avx512_bf16"}, True), ({"amx_bf16"}, True)],
)
def test_machine_description_reads_the_bf16_flags(monkeypatch, flags, native) -> None:
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset(flags))
    m = hardware.describe()
    assert {f for f, present in m["flags"].items() if present} == flags
    assert m["native_bf16"] is native


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_results_record_the_precision(make_config, tmp_path, precision) -> None:
    from lsnf.checkpoint import load_model
    from lsnf.config import EvaluationSettings
    from lsnf.evaluate import reconstruction

    cfg = make_config(**MNIST_TINY, precision=precision)
    fit(cfg, tmp_path)
    outcome = reconstruction(load_model(tmp_path / "model.pt"), EvaluationSettings(n_test=20))
    assert outcome.record["precision"] == precision and outcome.record["tf32"] is False


@pytest.mark.parametrize("generator", ["mnist", "svhn"])
def test_bf16_langevin_casts_the_frozen_weights_once_with_the_same_values(make_config, generator):
    """docs/method.md §5.4: in Langevin steps the generator runs on bf16 copies of its linear
    and convolution weights, made once per inference call, instead of autocast casting them at
    every step; the output is the same, bit for bit, and there are fewer casts per step."""
    from lsnf.bench import _dispatched_ops
    from lsnf.langevin import frozen
    from lsnf.model import batchnorm_statistics_kept

    size = {"mnist": 28, "svhn": 32}[generator]
    model_cfg = {"generator": generator, "ngf": 8, "latent_dim": 6, "image_size": size}
    cfg = make_config(model={**model_cfg, "channels": 1 if generator == "mnist" else 3})
    model = build_model(cfg.model_copy(update={"precision": "bf16"})).train()
    z = torch.randn(5, 6, generator=torch.Generator().manual_seed(0))
    with frozen(model), batchnorm_statistics_kept(model):
        decode = model.frozen_decode()
        assert torch.equal(decode(z), model.decode(z))
        per_call = _dispatched_ops(lambda: model.decode(z))
        assert _dispatched_ops(lambda: decode(z)) < per_call
    fp32 = build_model(cfg).train()
    assert fp32.frozen_decode() == fp32.decode  # nothing to cast in fp32
