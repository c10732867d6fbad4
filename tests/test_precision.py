"""precision: bf16 (docs/method.md §5.4): what runs in bf16 and what stays fp32, the warning on
CPUs without native bf16, and the record in every result."""

from __future__ import annotations

import json

import pytest
import torch
from workflow_helpers import MNIST_TINY as _TRAINING

from lsnf import hardware
from lsnf.core.model import build_model
from lsnf.training.train import fit

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
    from lsnf.training.checkpoint import load_checkpoint

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
    from lsnf.config import EvaluationSettings
    from lsnf.evaluation.evaluate import reconstruction
    from lsnf.training.checkpoint import load_model

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
    from lsnf.core.langevin import frozen
    from lsnf.core.model import batchnorm_statistics_kept

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


def test_a_cuda_ordinal_the_allocation_lacks_is_refused_naming_the_visible_devices(
    make_config, tmp_path, monkeypatch
) -> None:
    """A SLURM allocation of one GPU shows it as cuda:0: a configured cuda:1 stops training
    before anything is loaded, naming what is visible (CUDA simulated: this machine has none)."""
    from lsnf.errors import UserError
    from lsnf.training.train import Trainer

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA H100")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    with pytest.raises(UserError) as err:
        Trainer(make_config(**MNIST_TINY, device="cuda:1"), tmp_path)
    message = str(err.value)
    assert "'cuda:1'" in message and "cuda:0 (NVIDIA H100)" in message
    assert "CUDA_VISIBLE_DEVICES=3" in message and "N below 1" in message
    assert not any(tmp_path.iterdir())  # nothing written
    assert hardware.resolve_device("cuda:0") == torch.device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="no CUDA device is visible.*device: cpu"):
        hardware.resolve_device("cuda")


def test_deterministic_sets_up_deterministic_algorithms_and_trains_the_same_model(
    make_config, tmp_path, monkeypatch
) -> None:
    """deterministic: true switches torch to deterministic algorithms (cuDNN's too) with cuBLAS's
    workspace set, for every command through hardware.setup_device; on a CPU the model equals
    the default run's, bit for bit; false switches it off again."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        exact = fit(make_config(**MNIST_TINY, deterministic=True), tmp_path / "det")
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        assert not torch.backends.cudnn.benchmark
        assert hardware.os.environ["CUBLAS_WORKSPACE_CONFIG"] == hardware.CUBLAS_WORKSPACE
        default = fit(make_config(**MNIST_TINY), tmp_path / "default")
        assert not torch.are_deterministic_algorithms_enabled()
        assert not torch.backends.cudnn.deterministic
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
    a, b = exact.state_dict(), default.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fid_features_are_computed_without_tf32_whatever_the_model_says() -> None:
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        with hardware.exact_fp32():
            assert not torch.backends.cuda.matmul.allow_tf32
            assert not torch.backends.cudnn.allow_tf32
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = True  # torch's defaults
