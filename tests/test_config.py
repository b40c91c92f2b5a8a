"""PipelineConfig (the settings tree's `pipeline` section): defaults from the seed, any DAG
from TOML, env > file > defaults, decided by the one loader."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from conductor.core.config import PhaseSpec, PipelineConfig
from conductor.core.errors import ConductorError, ConfigError
from conductor.core.settings import load_settings

SEED_PHASES = [
    "phase-1/db-schema", "phase-2/core-api", "phase-3/api-extensions",
    "phase-4/new-ui-pages", "phase-5/ui-enhancements",
    "phase-6/seed-data", "phase-7/machine-access",
]

DIAMOND = """
gate_labels = ["security", "migration"]
protected_paths = ["api/*.proto"]
[[phases]]
name = "d"
depends_on = ["b", "c"]
[[phases]]
name = "c"
depends_on = ["a"]
[[phases]]
name = "b"
depends_on = ["a"]
[[phases]]
name = "a"
"""


@pytest.fixture(autouse=True)
def _no_conductor_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.upper().startswith("CONDUCTOR_"):
            monkeypatch.delenv(key)


def load_pipeline_config(path: Path | None) -> PipelineConfig:
    """The pipeline the one loader decides from `path` (None: ./conductor.toml if present)."""
    return load_settings({"config_file": str(path)} if path else {}).pipeline


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conductor.toml"
    path.write_text(text)
    return path


def test_seed_defaults() -> None:
    config = load_pipeline_config(None)
    assert config.phase_names == SEED_PHASES
    assert config.topological_order() == SEED_PHASES
    assert [p.depends_on for p in config.phases] == [
        [], ["phase-1/db-schema"], ["phase-2/core-api"], [], ["phase-4/new-ui-pages"],
        [], ["phase-6/seed-data"]]
    assert (config.gate_labels, config.gated_phases, config.protected_paths) == (
        ["security"], ["phase-1/db-schema"], ["maestro/protocol/events.py"])
    assert (config.batch_prefix, config.status_in_progress, config.status_pr_open,
            config.reminder_label, config.approval_label, config.gate_forks,
            config.integration_branch) == (
        "batch-", "status/in-progress", "status/pr-open", "conductor-reminder",
        "conductor/approved", True, "dev")


def test_every_field_is_described() -> None:
    assert all(f.description for f in PipelineConfig.model_fields.values())
    assert all(f.description for f in PhaseSpec.model_fields.values())


def test_custom_dag_from_toml(tmp_path: Path) -> None:
    config = load_pipeline_config(_write(tmp_path, DIAMOND))
    assert config.phase_names == ["d", "c", "b", "a"]
    assert config.topological_order() == ["a", "c", "b", "d"]
    assert config.dependencies_closure("d") == {"a", "b", "c"}
    assert config.dependencies_closure("a") == set()
    assert config.gated_phases == []  # the seed's gated phase does not exist here
    assert config.gate_labels == ["security", "migration"]


def test_default_file_in_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_pipeline_config(None).integration_branch == "dev"
    _write(tmp_path, 'integration_branch = "trunk"\n')
    assert load_pipeline_config(None).integration_branch == "trunk"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[[phases]]\nname="a"\ndepends_on=["b"]\n[[phases]]\nname="b"\ndepends_on=["a"]\n',
         "phase dependency cycle: a -> b -> a; remove one depends_on"),
        ('[[phases]]\nname="x"\n[[phases]]\nname="a"\ndepends_on=["c"]\n[[phases]]\nname="b"\n'
         'depends_on=["a"]\n[[phases]]\nname="c"\ndepends_on=["b"]\n',
         "phase dependency cycle: a -> c -> b -> a"),
        ('[[phases]]\nname="a"\ndepends_on=["a"]\n', "phase dependency cycle: a -> a"),
        ('[[phases]]\nname="a"\ndepends_on=["ghost"]\n',
         "phase 'a' depends on unknown phase 'ghost'; add that phase or fix the depends_on"),
        ('[[phases]]\nname="a"\n[[phases]]\nname="a"\n', "duplicate phase name 'a'"),
        ('[[phases]]\nname="a"\n[[phases]]\nname="  "\n', "phase #2 has an empty name"),
        ('[[phases]]\nname="a"\n[[phases]]\ndepends_on=["a"]\n', "phases.1.name: Field required"),
        ('gated_phases=["phase-9/x"]\n', "gated_phases names unknown phase 'phase-9/x'"),
        ('gate_label=["x"]\n', "gate_label: unknown setting; known settings: phases"),
        ('gate_forks="maybe"\n', "gate_forks: Input should be a valid boolean"),
        ('batch_prefix=""\n', "batch_prefix"),
        ("phases = [\n", "is not valid TOML"),
    ],
)
def test_invalid_config_is_one_line_error(tmp_path: Path, toml: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_pipeline_config(_write(tmp_path, toml))
    assert expected in str(info.value)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ConductorError)


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_pipeline_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("file_text", "env", "expected"),
    [
        ("", {}, ("dev", ["maestro/protocol/events.py"])),
        ('integration_branch = "trunk"\nprotected_paths = ["f.py"]\n', {}, ("trunk", ["f.py"])),
        ('integration_branch = "trunk"\nprotected_paths = ["f.py"]\n',
         {"CONDUCTOR_INTEGRATION_BRANCH": "main"}, ("main", ["f.py"])),
        ('integration_branch = "trunk"\nprotected_paths = ["f.py"]\n',
         {"CONDUCTOR_PROTECTED_PATHS": '["a.py", "b/*"]'}, ("trunk", ["a.py", "b/*"])),
        ("", {"conductor_integration_branch": "lower"}, ("lower", ["maestro/protocol/events.py"])),
    ],
)
def test_precedence_env_over_file_over_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_text: str, env: dict[str, str],
    expected: tuple[str, list[str]],
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    config = load_pipeline_config(_write(tmp_path, file_text))
    assert (config.integration_branch, config.protected_paths) == expected


def test_env_replaces_phases_and_is_validated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUCTOR_PHASES", '[{"name": "solo"}]')
    assert load_pipeline_config(_write(tmp_path, DIAMOND)).phase_names == ["solo"]
    monkeypatch.setenv("CONDUCTOR_PHASES", '[{"name": "a", "depends_on": ["a"]}]')
    with pytest.raises(ConfigError, match="phase dependency cycle: a -> a"):
        load_pipeline_config(None)


def test_env_value_that_is_not_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUCTOR_PROTECTED_PATHS", "a.py")
    with pytest.raises(ConfigError, match="protected_paths.*must be JSON"):
        load_pipeline_config(None)


def test_unrelated_conductor_env_vars_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUCTOR_REPORT_FILE", "/tmp/r.json")
    assert load_pipeline_config(None).phase_names == SEED_PHASES


@pytest.mark.parametrize(
    ("labels", "phases", "batches", "batch"),
    [
        ([], [], [], None),
        (["bug", "phase-2/core-api"], ["phase-2/core-api"], [], None),
        (["phase-3/api-extensions", "phase-1/db-schema"],
         ["phase-1/db-schema", "phase-3/api-extensions"], [], None),
        (["batch-10", "batch-2"], [], ["batch-2", "batch-10"], "batch-2"),
        (["batch-07", "batch-x", "batch-", "xbatch-1"], [], ["batch-07"], "batch-07"),
    ],
)
def test_label_helpers(labels: list[str], phases: list[str], batches: list[str], batch: str | None) -> None:
    config = PipelineConfig()
    assert config.phase_of(labels) == phases
    assert config.batch_labels(labels) == batches
    assert (config.batch_labels(labels) or [None])[0] == batch  # the lowest is the item's batch


def test_unknown_phase_labels() -> None:
    config = PipelineConfig()
    assert config.unknown_phase_labels(["phase-2/core-api", "phase-9/x", "phases", "bug"]) == [
        "phase-9/x"]


def test_dependencies_closure_is_transitive() -> None:
    config = PipelineConfig()
    assert config.dependencies_closure("phase-3/api-extensions") == {
        "phase-1/db-schema", "phase-2/core-api"}
    assert config.dependencies_closure("phase-4/new-ui-pages") == set()
    with pytest.raises(ValueError):
        config.dependencies_closure("nope")


@pytest.mark.parametrize(
    ("patterns", "files", "expected"),
    [
        (["maestro/protocol/events.py"], ["maestro/protocol/events.py", "x.py"],
         ["maestro/protocol/events.py"]),
        (["maestro/protocol/events.py"], ["maestro/protocol/events.pyc", "a/maestro/protocol/events.py"], []),
        (["*.sql"], ["db/001.sql", "db/readme.md"], ["db/001.sql"]),
        (["migrations/*"], ["migrations/a/b.py", "other/migrations/x"], ["migrations/a/b.py"]),
        (["docs/"], ["docs/a.md", "docs2/a.md"], ["docs/a.md"]),
        (["weird[1].py"], ["weird[1].py", "weird1.py"], ["weird1.py", "weird[1].py"]),
        ([], ["anything"], []),
    ],
)
def test_protected_matches(patterns: list[str], files: list[str], expected: list[str]) -> None:
    assert PipelineConfig(protected_paths=patterns).protected_matches(files) == expected
