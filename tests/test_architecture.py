"""The layers the code enforces: import-linter contracts (in pyproject.toml) and no import cycles.

One package per layer: shell/ (CLI, demo, embedded server, demo agent) > Prefect layer
(deployments > flows > tasks) > conductor.actions > conductor.edges (GitHub, git, agent
processes) > conductor.core (models, rules).
"""
from __future__ import annotations

import ast

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

from conductor.core.dependencies import find_cycles

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("conductor", "shell", "flows", "tasks", "deployments", "github_sandbox")
LAYER_PACKAGES = ("conductor/core", "conductor/edges", "conductor/actions", "shell")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {c["id"]: c for c in config["tool"]["importlinter"]["contracts"]}


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
                          cwd=root, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)})


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def test_the_import_contracts_hold():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Contracts: 4 kept, 0 broken." in result.stdout


def test_every_conductor_module_lives_in_a_layer_package():
    """A module of conductor/ sits in core, edges or actions, each a layer of the contracts, so no
    contract misses it."""
    contracts = _contracts()
    layers = {m.strip() for layer in contracts["layers"]["layers"] for m in layer.replace("|", ":").split(":")}
    modules = {m for m in _graph().modules if m.startswith("conductor.")}
    packages = {".".join(m.split(".")[:2]) for m in modules}
    assert packages == {"conductor.core", "conductor.edges", "conductor.actions"}, "no flat module in conductor/"
    assert packages <= layers and "shell" in layers
    assert contracts["core"]["source_modules"] == ["conductor.core"]


def test_the_project_has_no_import_cycles():
    graph = _graph()
    ours = {m for m in graph.modules if m.split(".")[0] in PACKAGES}
    edges = {m: {i for i in graph.find_modules_directly_imported_by(m) if i in ours} for m in ours}
    cycles = find_cycles(edges)  # a module never imports itself, so every cycle has two or more
    assert cycles == [], f"import cycles: {cycles}"


def test_the_cycle_finder_finds_an_import_cycle():
    assert find_cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


@pytest.mark.parametrize("module,line", [
    ("conductor/core/models.py", "import prefect\n"),
    ("conductor/core/planner.py", "from github_sandbox import seed\n"),
    ("conductor/core/verify.py", "from conductor.edges import github_gateway\n"),
    ("github_sandbox/store.py", "import conductor.core.models\n"),
    ("tasks/guard.py", "import flows.pipeline_pass\n"),
    ("conductor/edges/worktrees.py", "from conductor.actions import claims\n"),
    ("conductor/actions/claims.py", "import tasks.steps\n"),
    ("conductor/actions/claims.py", "import prefect\n"),
    ("flows/coordinators.py", "import shell.cli\n"),
])
def test_a_forbidden_import_breaks_a_contract(tmp_path, module, line):
    """The contracts can fail: the same tree with one forbidden import added is refused."""
    for name in (*PACKAGES, "pyproject.toml"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tmp_path / name)
    target = tmp_path / module
    target.write_text(target.read_text(encoding="utf-8") + line, encoding="utf-8")
    result = _lint(tmp_path)
    assert result.returncode != 0 and "BROKEN" in result.stdout, result.stdout[-2000:]


def test_the_gateway_implements_the_github_port():
    import inspect

    from conductor.edges.github_gateway import GitHubGateway
    from conductor.core.ports import GitHub

    wanted = {n for n, v in vars(GitHub).items() if not n.startswith("_") and (callable(v) or isinstance(v, property))}
    missing = {n for n in wanted if not hasattr(GitHubGateway, n)}
    assert wanted and missing == set()
    for name in {n for n in wanted if not isinstance(vars(GitHub)[n], property)}:
        port, real = inspect.signature(getattr(GitHub, name)), inspect.signature(getattr(GitHubGateway, name))
        assert list(port.parameters) == list(real.parameters), name


def _readme_layout(strip_asides: bool = False) -> dict[str, set[str]]:
    """The README's layout table: row label -> the names written in backticks in its second
    column (with `strip_asides`, leaving out those inside parentheses)."""
    import re

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("## Layout"):].split("\n\n")[1]
    rows = {}
    for line in table.splitlines()[2:]:
        label, what = (cell.strip() for cell in line.strip("|").split("|", 1))
        rows[label] = set(re.findall(r"`([^`]+)`", re.sub(r"\([^)]*\)", "", what) if strip_asides else what))
    return rows


def test_the_readme_layout_names_every_module_of_each_layer_package():
    """Modules are the backticked names outside parentheses (those say what a module holds): each
    layer package's row names exactly the modules on disk there."""
    rows = _readme_layout(strip_asides=True)
    for package in LAYER_PACKAGES:
        on_disk = {p.stem for p in (ROOT / package).glob("*.py")} - {"__init__"}
        assert rows[f"`{package}/`"] == on_disk, f"the README's layout row for {package}/ must name its modules"


def test_every_path_the_readme_layout_names_exists():
    rows = _readme_layout()
    for label, names in rows.items():
        folder = label.split("`")[1] if label.startswith("`") else ""
        for name in names:
            if "/" in name or name.endswith((".py", ".json", ".yaml")):
                candidates = [ROOT / name, ROOT / folder / name]
                assert any(c.exists() for c in candidates), f"{label}: {name} does not exist"
        for path in (p.strip("` ") for p in label.split(",")):
            top = path.split(" ")[0].strip("`")
            assert (ROOT / top).exists(), f"{top} does not exist"


# The kinds the conductor ships, spelled out (not as part of a longer name): only the workflow
# registry may name them; every other module asks the registry.
KIND_NAMES = re.compile(r"(?<![A-Za-z0-9_])(?:issue_to_pr|pr_review|issue-to-pr|pr-review)(?![A-Za-z0-9_])")
PRODUCT = ("conductor", "flows", "tasks", "deployments", "shell")
SHIPPED_PROMPTS = "prompts"


def modules_naming_a_kind(root: Path) -> list[str]:
    """Product files (not the shipped prompts) that spell out a dispatch kind's name."""
    found = []
    for top in PRODUCT:
        for path in sorted((root / top).rglob("*")) if (root / top).is_dir() else []:
            if not path.is_file() or "__pycache__" in path.parts or SHIPPED_PROMPTS in path.parts:
                continue
            if KIND_NAMES.search(path.read_text(encoding="utf-8", errors="replace")):
                found.append(path.relative_to(root).as_posix())
    return found


def test_kind_names_are_spelled_in_the_registry_alone():
    assert modules_naming_a_kind(ROOT) == ["conductor/core/workflows.py"]


def test_the_kind_name_count_sees_a_module_that_spells_a_kind(tmp_path):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "a.py").write_text('remote_pr_review = flows["issue_to_pr"]\n')
    (tmp_path / "flows" / "b.py").write_text("remote_pr_review = remote(PR_REVIEW)\n")
    (tmp_path / "conductor" / SHIPPED_PROMPTS).mkdir(parents=True)
    (tmp_path / "conductor" / SHIPPED_PROMPTS / "pr_review.md").write_text("WORKFLOW=pr-review\n")
    assert modules_naming_a_kind(tmp_path) == ["flows/a.py"]


# The only product modules that read the process environment: the settings loader and the
# secrets resolver. Everything else gets settings from `conductor.settings.load_settings`.
ENVIRONMENT_READERS = {"conductor/core/settings.py", "tasks/secrets.py"}


def environment_readers(root: Path) -> set[str]:
    """Product modules under `root` naming os.environ, environ, os.getenv or getenv."""
    import re

    reads = re.compile(r"(?<![\w.])(?:os\.)?(?:environb?|getenvb?)\b")
    found = set()
    for package in PRODUCT:
        for path in sorted((root / package).rglob("*.py")):
            if reads.search(path.read_text(encoding="utf-8")):
                found.add(path.relative_to(root).as_posix())
    return found


def test_only_the_settings_loader_and_the_secrets_resolver_read_the_environment():
    assert environment_readers(ROOT) - ENVIRONMENT_READERS == set()


@pytest.mark.parametrize("line", ["x = os.environ.get('HOME')\n", "x = os.getenv('HOME')\n",
                                  "from os import environ\n", "import os\nos.environ['A'] = 'b'\n"])
def test_an_environment_read_outside_the_loader_is_found(tmp_path, line):
    (tmp_path / "conductor").mkdir()
    (tmp_path / "conductor" / "core").mkdir()
    (tmp_path / "conductor" / "core" / "planner.py").write_text("scoped_environ = process_environment = None\n" + line)
    (tmp_path / "conductor" / "core" / "clean.py").write_text("from conductor.core.settings import process_environment, scoped_environ\n")
    assert environment_readers(tmp_path) == {"conductor/core/planner.py"}


# One settings tree: one pydantic-settings class (the root), and the settings' fields declared in
# its sections alone; nothing re-packs them into a model of its own (a "spec", "inputs", "rules").
SETTINGS_MODULE = "conductor/core/settings.py"
SECTION_CLASSES = {"conductor/core/settings.py:GitHubSettings", "conductor/core/settings.py:RunSettings",
                   "conductor/core/config.py:PipelineConfig"}


def _classes(root: Path):
    for package in PRODUCT:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    yield path.relative_to(root).as_posix(), node


def settings_classes(root: Path) -> list[str]:
    """Product classes deriving from pydantic-settings' BaseSettings."""
    return [f"{path}:{node.name}" for path, node in _classes(root)
            if any(ast.unparse(base).split(".")[-1] == "BaseSettings" for base in node.bases)]


def classes_declaring_settings(root: Path, names: set[str]) -> set[str]:
    """Product classes that declare two or more fields named like settings."""
    found = set()
    for path, node in _classes(root):
        fields = {stmt.target.id for stmt in node.body
                  if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)}
        if len(fields & names) >= 2:
            found.add(f"{path}:{node.name}")
    return found


def _setting_names() -> set[str]:
    from conductor.core.settings import SECTIONS

    return {name for model in SECTIONS.values() for name in model.model_fields if "_" in name}


def test_one_pydantic_settings_loader():
    assert settings_classes(ROOT) == [f"{SETTINGS_MODULE}:Settings"]


def test_settings_are_declared_in_the_sections_of_the_tree_alone():
    assert classes_declaring_settings(ROOT, _setting_names()) == SECTION_CLASSES


def test_the_settings_scans_see_a_second_loader_and_a_repacked_copy(tmp_path):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "spec.py").write_text(
        "class Spec(BaseModel):\n    agent_timeout: float\n    repo_path: Path\n    pass_id: str\n"
        "class Local(pydantic_settings.BaseSettings):\n    x: int = 1\n")
    assert settings_classes(tmp_path) == ["flows/spec.py:Local"]
    assert classes_declaring_settings(tmp_path, _setting_names()) == {"flows/spec.py:Spec"}
