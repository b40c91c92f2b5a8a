"""One settings loader: precedence flag > task file > environment > conductor.toml [run] > default,
tested directly (no Prefect), and the flow's parameters and the CLI's flags built from the tree."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from shell.cliargs import add_parameter_flags, parameters_from_args
from conductor.core.errors import ConductorError
from conductor.core.presets import get_preset
from conductor.core.settings import PassParameters, env_names, flag_fields, load_settings, meta

FLAG, TASK, ENV, TOML = "flag", "task file", "env", "toml"

# (field, flag value, task-file line, env value, [run] value, expected value, expected source)
CASES = [
    ("repo", "f/flag", "GH_REPO=t/task", "e/env", "c/toml", "f/flag", FLAG),
    ("repo", None, "GH_REPO=t/task", "e/env", "c/toml", "t/task", TASK),
    ("repo", None, None, "e/env", "c/toml", "e/env", ENV),
    ("repo", None, None, None, "c/toml", "c/toml", TOML),
    ("phase_filter", "p-flag", "PHASE_FILTER=p-task", "p-env", "p-toml", "p-flag", FLAG),
    ("phase_filter", None, "PHASE_FILTER=p-task", "p-env", "p-toml", "p-task", TASK),
    ("phase_filter", None, None, "p-env", "p-toml", "p-env", ENV),
    ("phase_filter", None, None, None, "p-toml", "p-toml", TOML),
    ("phase_filter", None, None, None, None, "", "default"),
    ("max_issues_per_dispatch", 1, "MAX_ISSUES_PER_DISPATCH=2", "3", 4, 1, FLAG),
    ("max_issues_per_dispatch", None, "MAX_ISSUES_PER_DISPATCH=2", "3", 4, 2, TASK),
    ("max_issues_per_dispatch", None, None, "3", 4, 3, ENV),
    ("max_issues_per_dispatch", None, None, None, 4, 4, TOML),
    ("max_issues_per_dispatch", None, None, None, None, 12, "default"),
    ("max_prs_per_dispatch", None, "MAX_PRS_PER_DISPATCH=5", "6", None, 5, TASK),
    ("reminder_mode", "update", None, "recreate", "recreate", "update", FLAG),
    ("reminder_mode", None, None, "update", "recreate", "update", ENV),
    ("reminder_mode", None, None, None, "update", "update", TOML),
    ("reminder_mode", None, None, None, None, "recreate", "default"),
    ("agent_timeout", 5.0, None, "6", 7, 5.0, FLAG),
    ("agent_timeout", None, None, "6", 7, 6.0, ENV),
    ("agent_timeout", None, None, None, 7, 7.0, TOML),
    ("agent_timeout", None, None, None, None, 3600.0, "default"),
    ("repo_path", "/flag", None, "/env", "/toml", "/flag", FLAG),
    ("repo_path", None, None, "/env", "/toml", "/env", ENV),
    ("repo_path", None, None, None, None, ".", "default"),
    ("github_url", None, None, "http://env/api/v3", "http://toml/api/v3", "http://env/api/v3", ENV),
    ("attempt", 2, "ATTEMPT_N=3", None, None, 2, FLAG),
    ("attempt", None, "ATTEMPT_N=3", None, None, 3, TASK),
]


def _load(tmp_path, flags: dict, *, task: str | None = None, env: dict | None = None, run_table: dict | None = None):
    """The loader over real files: a task file and a conductor.toml [run] table written here."""
    flags = dict(flags)
    if task is not None:
        (tmp_path / "t").write_text(task)
        flags["task_file"] = str(tmp_path / "t")
    lines = [f"{key} = {json.dumps(value)}" for key, value in (run_table or {}).items()]  # JSON values are TOML
    (tmp_path / "conductor.toml").write_text("\n".join(["[run]", *lines]) + "\n")
    flags["config_file"] = str(tmp_path / "conductor.toml")
    return load_settings(flags, env=env or {})


def _setting(name: str) -> tuple[str, str]:
    section, field, _ = flag_fields()[name]
    return section, field


@pytest.mark.parametrize(("name", "flag", "line", "env", "toml", "value", "source"), CASES)
def test_precedence_flag_task_file_environment_toml_default(tmp_path, name, flag, line, env, toml, value, source):
    section, field = _setting(name)
    flags = {**({name: flag} if flag is not None else {}), **({} if name == "repo" else {"repo": "a/b"})}
    environ = {env_names(section, field)[0]: env} if env is not None else {}
    run_table = {name: toml} if toml is not None else {}
    settings = _load(tmp_path, flags, task=line + "\n" if line else None, env=environ, run_table=run_table)
    got = getattr(getattr(settings, section), field)
    assert got == (Path(value).resolve() if name == "repo_path" else value)
    assert settings.sources.get(f"{section}.{field}", "default") == source


def test_attempt_zero_in_a_task_file_leaves_the_counter_to_github(tmp_path):
    # `conductor setup` writes ATTEMPT_N=0: that must not pin every pass to attempt 0
    assert _load(tmp_path, {"repo": "a/b"}, task="ATTEMPT_N=0\n").run.attempt is None


@pytest.mark.parametrize(("params", "env", "run_table", "expected"), [
    ({"agent_command": ["mine"], "agent_preset": "claude"}, {}, {}, ["mine"]),
    ({"agent_preset": "codex"}, {"CONDUCTOR_AGENT_COMMAND": '["env-agent"]'}, {}, get_preset("codex")),
    ({}, {"CONDUCTOR_AGENT_COMMAND": '["env-agent"]', "CONDUCTOR_AGENT_PRESET": "claude"}, {}, ["env-agent"]),
    ({}, {"CONDUCTOR_AGENT_PRESET": "gemini"}, {"agent_command": ["toml-agent"]}, get_preset("gemini")),
    ({}, {}, {"agent_preset": "cursor"}, get_preset("cursor")),
    ({}, {}, {}, []),
])
def test_the_agent_preset_is_resolved_once_at_its_level(tmp_path, params, env, run_table, expected):
    assert _load(tmp_path, {"repo": "a/b", **params}, env=env, run_table=run_table).run.agent_command == expected


@pytest.mark.parametrize(("env", "run_table", "message"), [
    ({"CONDUCTOR_AGENT_COMMAND": "not json"}, {}, "CONDUCTOR_AGENT_COMMAND is not a JSON list"),
    ({"CONDUCTOR_AGENT_TIMEOUT": "soon"}, {}, "CONDUCTOR_AGENT_TIMEOUT='soon'"),
    ({"CONDUCTOR_MAX_ISSUES_PER_DISPATCH": "0"}, {}, "CONDUCTOR_MAX_ISSUES_PER_DISPATCH"),
    ({"CONDUCTOR_REMINDER_MODE": "sometimes"}, {}, "CONDUCTOR_REMINDER_MODE"),
    ({}, {"colour": "blue"}, "unknown key 'colour'"),
    ({}, {"max_prs_per_dispatch": "many"}, "[run] max_prs_per_dispatch"),
    ({"CONDUCTOR_AGENT_PRESET": "nope"}, {}, "unknown agent preset"),
])
def test_a_bad_value_at_any_level_is_one_line_naming_it(tmp_path, env, run_table, message):
    with pytest.raises(ConductorError) as caught:
        _load(tmp_path, {"repo": "a/b"}, env=env, run_table=run_table)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_no_repository_anywhere_names_every_way_to_give_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no conductor.toml
    settings = load_settings(PassParameters(), env={})  # settings load without one (`conductor config show`)
    assert settings.run.repo == ""
    with pytest.raises(ConductorError, match="--repo OWNER/NAME.*GH_REPO.*CONDUCTOR_REPO"):
        settings.require_repo()  # a pass refuses to start


def test_every_field_is_described():
    for name, field in PassParameters.model_fields.items():
        assert field.description and len(field.description) > 20, name


def test_run_flags_are_built_from_the_model_and_read_back_into_it():
    parser = argparse.ArgumentParser()
    add_parameter_flags(parser)
    flagged = [n for n, (_, _, field) in flag_fields().items() if meta(field)["flag"]]
    assert {a.dest for a in parser._actions if a.dest != "help"} == set(flagged)
    args = parser.parse_args(["--repo", "o/r", "--max-issues", "3", "--dry-run", "--agent-timeout", "9",
                              "--reminder-mode", "update", "--agent-command", "my-agent --fast {task_file}",
                              "--repo-path", "/tmp/x"])
    params = parameters_from_args(args)
    assert params == PassParameters(repo="o/r", max_issues_per_dispatch=3, dry_run=True, agent_timeout=9.0,
                                    reminder_mode="update", agent_command=["my-agent", "--fast", "{task_file}"],
                                    repo_path="/tmp/x")
    help_of = {a.dest: a.help for a in parser._actions}
    assert help_of["phase_filter"] == PassParameters.model_fields["phase_filter"].description


def test_the_flow_signature_is_the_parameter_model():
    import inspect

    from flows.pipeline_pass import conductor

    signature = inspect.signature(conductor.fn).parameters
    assert list(signature) == list(PassParameters.model_fields)
    for name, field in PassParameters.model_fields.items():
        assert signature[name].default == field.default, name
