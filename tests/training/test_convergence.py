"""Convergence of a model on its validation curves (docs/method.md §6.5): a curve judged by its
trend, the status at every budget, and the convergence command."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def _kid_curve(slope: float, sd: float, epochs: int = 12) -> list[dict]:
    """History rows of a validation KID curve 1000 + slope x epoch (epochs 0..``epochs``) with
    N(0, sd) wobble per point (±30: like a 400-sample validation KID's, docs/results.md)."""
    rng = np.random.default_rng(3)
    return [
        {"epoch": e, "valid_kid": 1000 + slope * e + sd * rng.normal()} for e in range(epochs + 1)
    ]


@pytest.mark.parametrize(
    "slope, sd, status",
    [
        (-30.0, 15.0, "not converged"),  # falls steadily, through its wobble
        (0.0, 30.0, "converged"),  # flat, wobbling
        (5.0, 30.0, "converged"),  # rising < 5% per quarter of training
        (30.0, 15.0, "not converged"),  # rising steadily: over-training, or unstable
        (-1.0, 1.0, "converged"),  # falls, but < 5% per quarter of training
        (-3.0, 100.0, "converged"),  # falls 5%+ per quarter, but within its wobble
    ],
)
def test_a_curve_is_judged_by_its_trend(slope: float, sd: float, status: str) -> None:
    """docs/method.md §6.5: the least-squares trend over the last half of training decides, so
    a curve as noisy as a validation KID is read from all its points."""
    from scipy import stats

    from lsnf.training.convergence import model_status

    history = _kid_curve(slope, sd)
    out = model_status(history, {"valid_kid": 5000.0}, tolerance=0.05)
    judged = out["curves"]["valid_kid"]
    assert (judged["method"], judged["from_epoch"], judged["points"]) == ("trend", 6, 7)
    assert judged["status"] == status, out["detail"]
    # the projection: the least-squares slope over epochs 6..12 times a quarter (3 epochs),
    # relative to the line at epoch 12; its noise, the slope's standard error
    fit = stats.linregress(range(6, 13), [history[e]["valid_kid"] for e in range(6, 13)])
    assert judged["relative_improvement"] == pytest.approx(
        -3 * fit.slope / (fit.intercept + 12 * fit.slope)
    )
    assert judged["noise_se"] == pytest.approx(3 * fit.stderr)
    failed = model_status(history, {"valid_kid": history[-1]["valid_kid"]}, tolerance=0.05)
    assert failed["status"] == "failed to train"  # ends no better than the trivial reference


def test_a_curve_with_too_few_points_has_not_converged() -> None:
    """Three points in the last half (epochs 2..4 of 4) are not enough to call a plateau: a
    curve that jumped up at the end (as early validation KIDs do) is not converged."""
    from lsnf.training.convergence import model_status

    history = [{"epoch": e, "valid_kid": v} for e, v in enumerate([2800, 1240, 1840, 1980, 1990])]
    out = model_status(history, {"valid_kid": 50000.0}, tolerance=0.05)
    assert out["status"] == "not converged"
    assert out["curves"]["valid_kid"]["method"] == "too few points"
    assert "fewer than the 4" in out["detail"]


def test_status_by_budget_is_the_status_of_each_prefix() -> None:
    """`lsnf convergence`: the status had training stopped after each epoch ≥ 2 is that of the
    history up to it."""
    from lsnf.training.convergence import model_status, status_by_budget

    history = [
        r | {"iteration": 10 * r["epoch"], "valid_mse": 1 / (1 + r["epoch"])}
        for r in _kid_curve(-30.0, 15.0)
    ]
    refs = {"valid_kid": 5000.0, "valid_mse": 2.0}
    rows = status_by_budget(history, refs, 0.05)
    assert [r["epoch"] for r in rows] == list(range(2, 13))
    assert rows[-1]["iteration"] == 120
    for r in rows:
        assert r["status"] == model_status(history[: r["epoch"] + 1], refs, 0.05)
    assert rows[0]["status"]["curves"]["valid_kid"]["method"] == "too few points"
    assert rows[-1]["status"]["curves"]["valid_kid"]["method"] == "trend"


def test_each_evaluation_is_judged_by_its_own_curve() -> None:
    """docs/method.md §6.5: FID by the validation KID, reconstruction by the validation MSE; a
    failed curve fails every evaluation; no KID curve: not measured for FID."""
    from lsnf.evaluation.registry import EVALUATIONS
    from lsnf.training.convergence import status_for

    assert EVALUATIONS["fid"].curve == "valid_kid"
    assert {e.curve for n, e in EVALUATIONS.items() if n != "fid"} == {"valid_mse"}
    from lsnf.training.convergence import model_status

    mse = [{"valid_mse": 1.0 - 0.05 * e} for e in range(13)]  # still falling fast
    history = [k | m for k, m in zip(_kid_curve(0.0, 30.0), mse, strict=True)]
    record = model_status(history, {"valid_mse": 2.0, "valid_kid": 5000.0}, 0.05)
    assert record["status"] == "not converged"  # the model as a whole
    assert status_for(record, "valid_kid")["status"] == "converged"
    assert status_for(record, "valid_mse")["status"] == "not converged"
    no_kid = {**record, "curves": {"valid_mse": record["curves"]["valid_mse"]}}
    assert status_for(no_kid, "valid_kid")["status"] == "convergence not measured"
    failed = model_status(history, {"valid_mse": 0.1, "valid_kid": 5000.0}, 0.05)
    assert status_for(failed, "valid_kid")["status"] == "failed to train"
    assert status_for(None, "valid_mse")["status"] == "convergence not measured"


def test_convergence_command_prints_the_status_at_every_budget(tmp_path, capsys) -> None:
    """`lsnf convergence MODEL.pt`: one row per epoch ≥ 2 with each curve's status; a model
    without validation curves is refused with how to get them."""
    from lsnf.cli.main import main
    from lsnf.training.checkpoint import save_checkpoint

    history = [r | {"iteration": 36 * r["epoch"]} for r in _kid_curve(-30.0, 15.0)]
    setup = {"references": {"valid_kid": {"of": "uniform noise images", "value": 5000.0}}}
    state = {"model": {}, "config": {"train": {"convergence_tolerance": 0.05}}}
    save_checkpoint(tmp_path / "model.pt", state | {"history": history, "validation_setup": setup})
    assert main(["convergence", str(tmp_path / "model.pt")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "validation KID" in lines[1] and len(lines) == 2 + 11  # epochs 2..12
    assert lines[2].split()[:4] == ["2", "72", "not", "converged"] and "too few" in lines[2]
    assert lines[-1].split()[:4] == ["12", "432", "not", "converged"]
    # --rewrite: the record becomes this lsnf's judgement of the curves, nothing else changes
    stale = {"status": "converged", "detail": "an older rule"}
    old = state | {"history": history, "validation_setup": setup, "convergence": stale}
    save_checkpoint(tmp_path / "old.pt", old)
    assert main(["convergence", str(tmp_path / "old.pt"), "--rewrite"]) == 0
    new = torch.load(tmp_path / "old.pt", weights_only=True)
    assert new["convergence"]["status"] == "not converged" and new["history"] == history
    save_checkpoint(tmp_path / "bare.pt", state | {"history": []})
    assert main(["convergence", str(tmp_path / "bare.pt")]) == 2
    assert "validate_every" in capsys.readouterr().err
