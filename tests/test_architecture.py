"""The shape of the code: imports run one way, each fact has one home, the CLI reports bad
input in one line and keeps the traceback of a bug, and the repository cites only itself."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from lsnf.config import (
    EXTRACTORS,
    MASK_KINDS,
    MASK_TAG_PATTERN,
    MODEL_KINDS,
    EvaluationConfig,
    MaskSpec,
)

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lsnf"
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
EXPERIMENT = SCHEMA["properties"]["experiments"]["additionalProperties"]["properties"]
# The layers, lowest first (README "The code"): a module imports only its own layer and those
# below it. The root modules are the foundation (config, errors, io, ...) and the façades above
# the pipeline (api, apply, bench); each package is one layer.
LAYERS = [
    {
        "lsnf.config",
        "lsnf.errors",
        "lsnf.io",
        "lsnf.layout",
        "lsnf.hardware",
        "lsnf.shipped",
        "lsnf.run_ids",
    },
    {"lsnf.core"},
    {"lsnf.data"},
    {"lsnf.metrics"},
    {"lsnf.training"},
    {"lsnf.evaluation"},
    {"lsnf.analysis"},
    {"lsnf.tracking"},
    {"lsnf.pipeline"},
    {"lsnf.api", "lsnf.apply", "lsnf.bench"},
    {"lsnf.cli"},
]
PACKAGES = {m for layer in LAYERS for m in layer if (PACKAGE / m.removeprefix("lsnf.")).is_dir()}


def layer_of(module: str) -> int:
    """The index in LAYERS of a module: its package's, or its own as a root module."""
    unit = ".".join(module.split(".")[:2])
    for i, layer in enumerate(LAYERS):
        if unit in layer:
            return i
    raise AssertionError(f"{module} is in no layer of LAYERS: place it there")


def lsnf_imports() -> dict[str, set[str]]:
    """Module -> the lsnf modules it imports anywhere in its body (functions included)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lsnf"):
                names = [f"{node.module}.{a.name}" for a in node.names]
                found |= {
                    n for n in names if (PACKAGE.parent / f"{n.replace('.', '/')}.py").exists()
                } or {node.module}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("lsnf")}
        graph[name] = found - {name, "lsnf"}
    return graph


def test_importing_the_config_loads_nothing_else_of_lsnf_nor_torch() -> None:
    code = (
        "import sys, lsnf.config; "
        "print(sorted(m for m in sys.modules if m.startswith('lsnf') or m == 'torch'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['lsnf', 'lsnf.config']"
    code = code.replace(
        "lsnf.config", "lsnf.evaluation.registry"
    )  # nor does the registry load torch
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['lsnf', 'lsnf.evaluation', 'lsnf.evaluation.registry']"


def test_no_module_imports_a_layer_above_its_own_and_there_is_no_cycle() -> None:
    graph = lsnf_imports()
    assert graph["lsnf.config"] == set()
    assert set(graph) >= PACKAGES and "lsnf.metrics.inference" not in graph
    for module, imported in graph.items():
        if module == "lsnf":  # the top package's lazy lsnf.load
            continue
        upward = {m for m in imported if layer_of(m) > layer_of(module)}
        assert not upward, f"{module} imports {sorted(upward)}, a layer above its own"
    for package in PACKAGES:  # every __init__.py is free of imports: the registry stays torch-free
        assert graph[package] == set(), (package, graph[package])
    visiting, done = set(), set()

    def visit(m: str, path: list[str]) -> None:
        if m in done:
            return
        assert m not in visiting, f"import cycle: {' -> '.join([*path, m])}"
        visiting.add(m)
        for n in graph.get(m, ()):
            visit(n, [*path, m])
        visiting.discard(m)
        done.add(m)

    for m in graph:
        visit(m, [])


CLI_MODULE_LINES = 150  # a command group's module: its parsers beside their handlers
DUPLICATE_LINES = 6  # consecutive statements written twice make a duplicated block
_NOT_A_STATEMENT = re.compile(
    r"^(#|from |import |[)\]}],?$|\"\"\"$|\w+: [^=]+(= .+)?,$)"  # comments, imports, brackets,
)  # a docstring's quotes, a parameter of a signature (``name: Type = default,``)


def test_no_cli_module_is_over_150_lines() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in (PACKAGE / "cli").glob("*.py")}
    assert {n: k for n, k in sizes.items() if k > CLI_MODULE_LINES} == {}


def duplicated_blocks(files: list[Path], n: int = DUPLICATE_LINES) -> dict[tuple, list[str]]:
    """Each run of ``n`` consecutive statement lines (stripped; see _NOT_A_STATEMENT) that
    occurs more than once across ``files`` -> where it starts."""
    where: dict[tuple, list[str]] = {}
    for path in files:
        lines = [(i, line.strip()) for i, line in enumerate(path.read_text().splitlines(), 1)]
        kept = [(i, t) for i, t in lines if t and not _NOT_A_STATEMENT.match(t)]
        for k in range(len(kept) - n + 1):
            block = tuple(t for _, t in kept[k : k + n])
            where.setdefault(block, []).append(f"{path}:{kept[k][0]}")
    return {b: w for b, w in where.items() if len(w) > 1}


def test_no_block_of_six_statements_is_written_twice(tmp_path) -> None:
    """Facts and logic live once: no six consecutive statements of lsnf/ occur twice (a
    signature's parameter list aside); the check itself finds a copied block."""
    assert duplicated_blocks(sorted(PACKAGE.rglob("*.py"))) == {}
    body = "".join(f"    x{i} = f(x{i - 1})\n" for i in range(1, 7))
    (tmp_path / "a.py").write_text(f"def a():\n{body}")
    (tmp_path / "b.py").write_text(f"def b():\n    y = 1\n{body}")
    found = duplicated_blocks([tmp_path / "a.py", tmp_path / "b.py"])
    assert [len(w) for w in found.values()] == [2]


def test_test_time_inference_goes_through_one_layer() -> None:
    """Posterior inference is called directly (core.model.infer_posterior) only inside the core
    and by learning: a training iteration and 2s-ABP's fit (both learning-time inference with
    the run's one noise generator, docs/method.md §6.1, §6.6), and the benchmark that times it.
    Everything else (lsnf.load, the evaluations, validation) goes through core.inference,
    core.sampling and core.completion."""
    callers = {
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if "infer_posterior" in p.read_text() and p.parent.name != "core"
    }
    assert callers == {"training/train.py", "training/two_stage.py", "bench.py"}


def test_prior_kinds_have_one_home() -> None:
    from lsnf.pipeline.plan import RUN_PATTERN

    assert tuple(EXPERIMENT["priors"]["items"]["enum"]) == MODEL_KINDS
    for kind in MODEL_KINDS:
        assert re.fullmatch(RUN_PATTERN, f"{kind}-seed0")
    assert not re.fullmatch(RUN_PATTERN, "glow-seed0")


def test_schema_blocks_are_the_config_models() -> None:
    """The workflow schema's `evaluation` and `masks` blocks: the same keys and defaults as
    lsnf.config.EvaluationConfig and MaskSpec; its FID extractors are lsnf.config.EXTRACTORS."""
    evaluation = EXPERIMENT["evaluation"]["properties"]
    assert set(evaluation) == set(EvaluationConfig.model_fields)
    for name, field in EvaluationConfig.model_fields.items():
        assert evaluation[name]["default"] == field.default, name
    masks = EXPERIMENT["masks"]["items"]["properties"]
    assert set(masks) == set(MaskSpec.model_fields)
    assert tuple(masks["kind"]["enum"]) == MASK_KINDS
    assert tuple(SCHEMA["properties"]["fid"]["properties"]["extractor"]["enum"]) == EXTRACTORS
    assert SCHEMA["properties"]["experiments"]["additionalProperties"]["properties"]["masks"][
        "default"
    ] == [{"kind": MaskSpec().kind}]
    # the wildcard constraint of {mask} (workflow/rules/common.smk) takes every tag, and only tags
    specs = [
        MaskSpec(),
        MaskSpec(kind="salt_pepper", p=0.3, patch=4, seed=2),
        MaskSpec(kind="random_square", hole=10, seed=1),
    ]
    for spec in specs:
        assert re.fullmatch(MASK_TAG_PATTERN, spec.tag) and MaskSpec.from_tag(spec.tag) == spec
    for junk in ("sp", "centre", "sq", "sp30x", "flow-seed0"):
        assert not re.fullmatch(MASK_TAG_PATTERN, junk), junk


def test_config_readme_gives_every_evaluation_setting_with_its_default() -> None:
    """config/README.md's `evaluation` rows: every field of lsnf.config.EvaluationConfig, each
    with its default as YAML writes it (null, false, 200, `running`)."""
    text = (ROOT / "config/README.md").read_text()
    rows = dict(
        re.findall(r"^\| `experiments\.<name>\.evaluation\.(\w+)` \| ([^|]+?) \|", text, re.M)
    )
    assert set(rows) == set(EvaluationConfig.model_fields)
    for name, field in EvaluationConfig.model_fields.items():
        written = yaml.safe_dump(field.default).removesuffix("\n...\n").strip()
        assert rows[name].strip("`") == written, name


def test_no_tracked_file_cites_a_file_outside_the_repository() -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if files.returncode != 0:
        pytest.skip("not a git checkout")
    for rel in files.stdout.split():
        path = ROOT / rel
        if path.suffix in {".py", ".md", ".yaml", ".smk", ".rst", ".toml", ""} and path.is_file():
            text = path.read_text(errors="replace")
            for name in ("PAPER" + ".md", "OFFLINE" + ".md", "../" + "shared"):
                assert name not in text, f"{rel} cites {name}"
    for doc in ("docs/method.md", "docs/protocols.md"):
        assert (ROOT / doc).is_file()


def test_user_errors_are_one_line_and_bugs_keep_their_traceback(tmp_path, monkeypatch) -> None:
    from lsnf.cli import main as cli
    from lsnf.cli import training as cli_training

    r = subprocess.run(
        [sys.executable, "-m", "lsnf.cli", "eval", "reconstruction", "nope.pt", "--out", "x.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert r.stderr.startswith("lsnf: error: checkpoint 'nope.pt' does not exist")

    def broken(args: object) -> None:
        raise KeyError("an internal bug")

    monkeypatch.setattr(cli_training, "cmd_train", broken)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text("{}\n")  # the run config argument must name a file
    with pytest.raises(KeyError, match="an internal bug"):
        cli.main(["train", "c.yaml", "--out", "r"])


def test_threads_option_reaches_the_benchmark(monkeypatch) -> None:
    from lsnf import bench
    from lsnf.cli import main as cli

    seen: list[int] = []
    monkeypatch.setattr(bench, "run_bench", lambda *a: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    try:
        assert cli.main(["--threads", "1", "bench", "--shapes", "svhn"]) == 0
    finally:
        torch.set_num_threads(before)
    assert seen == [1]


def test_checkpoint_of_another_format_is_refused(make_config, tmp_path) -> None:
    from lsnf.core.model import build_model
    from lsnf.training.checkpoint import CheckpointError, load_checkpoint

    model = build_model(make_config())
    path = tmp_path / "old.pt"
    torch.save({"format": "lsnf-checkpoint-0", "model": model.state_dict(), "config": {}}, path)
    with pytest.raises(CheckpointError, match="format 'lsnf-checkpoint-0'.*retrain"):
        load_checkpoint(path)


def test_the_registry_is_the_one_definition_of_each_evaluation() -> None:
    """Each evaluation's name, settings, function and statistics resolve; tasks are the
    schema's; MLflow metric keys follow from the registry alone."""
    from lsnf.config import EvaluationSettings
    from lsnf.evaluation.registry import EVALUATIONS, TASKS, for_task, mlflow_metrics
    from lsnf.metrics.stats import STATISTICS

    assert tuple(EXPERIMENT["task"]["enum"]) == TASKS
    for name, ev in EVALUATIONS.items():
        assert ev.name == name and set(ev.tasks) <= set(TASKS)
        assert set(ev.settings) <= set(EvaluationSettings.model_fields)
        assert callable(ev.function) and ev.function.__name__ == name
        assert all(v.statistic in STATISTICS for v in ev.values)
        assert ev.result or not ev.values  # values live in a result
    assert [e.name for e in for_task("generation")] == ["reconstruction", "fid", "samples"]
    record = {
        "evaluation": "inpainting",
        "value": 0.1,
        "psnr": 20.0,
        "ssim": 0.5,
        "identity": {"mask": "center"},
    }
    assert mlflow_metrics(record) == {
        "inpainting_mse.center": 0.1,
        "inpainting_psnr.center": 20.0,
        "inpainting_ssim.center": 0.5,
    }
    fid = {
        "evaluation": "fid",
        "value": 3.0,
        "feature_extractor": {"name": "x"},
        "kid": 0.1,
        "sample_precision": 0.7,
        "sample_recall": 0.6,
    }
    assert mlflow_metrics(fid) == {
        "fid.x": 3.0,
        "fid_kid.x": 0.1,
        "fid_precision.x": 0.7,
        "fid_recall.x": 0.6,
    }
    anomaly = {"evaluation": "anomaly", "value": 0.4, "auroc": 0.6}
    assert mlflow_metrics(anomaly) == {"anomaly_auprc": 0.4, "anomaly_auroc": 0.6}


def test_every_test_that_runs_snakemake_is_marked_workflow() -> None:
    """The fast loop (`pytest -m "not slow and not workflow"`) leaves out every test that starts
    Snakemake: its module's ``pytestmark`` or its own decorator says ``workflow``."""
    unmarked = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        text = path.read_text()
        tree = ast.parse(text)
        if "pytestmark = pytest.mark.workflow" in text:
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                marks = {ast.unparse(d) for d in node.decorator_list}
                if "snakemake" in ast.unparse(node) and "pytest.mark.workflow" not in marks:
                    unmarked.append(f"{path.relative_to(ROOT)}::{node.name}")
    assert not unmarked, unmarked
