"""The sample pipeline loader and the `sandbox` command line."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter

import pytest
from pydantic import SecretStr

from conductor.core.constants import REMINDER_LABEL, SECURITY_LABEL
from github_sandbox.cli import register
from shell.demo import SAMPLE_PIPELINE
from github_sandbox.seed import SeedError, load_pipeline, seed_pipeline
from github_sandbox.server import ServeOptions, prepare_store
from conftest import unique_repo_name

PHASES = ["phase-1/db-schema", "phase-2/core-api", "phase-3/api-extensions", "phase-4/new-ui-pages",
          "phase-5/ui-enhancements", "phase-6/seed-data", "phase-7/machine-access"]


def test_bundled_sample_covers_the_seven_phases_with_batches_and_gates():
    pipe = load_pipeline(SAMPLE_PIPELINE)
    names = {lab.name for lab in pipe.labels}
    assert set(PHASES) <= names and {SECURITY_LABEL, REMINDER_LABEL} <= names
    assert len(pipe.issues) == 12
    for issue in pipe.issues:
        phases = [x for x in issue.labels if x.startswith("phase-")]
        batches = [x for x in issue.labels if x.startswith("batch-")]
        assert len(phases) == 1 and len(batches) == 1 and set(issue.labels) <= names, issue.title
    assert {x for i in pipe.issues for x in i.labels if x.startswith("phase-")} == set(PHASES)
    assert sum(SECURITY_LABEL in i.labels for i in pipe.issues) >= 1


def test_seed_sample_loads_through_the_api_and_is_idempotent(sandbox):
    full = f"admin/{unique_repo_name('sample')}"
    assert seed_pipeline(sandbox.api_url, sandbox.admin_token, full, pipeline=SAMPLE_PIPELINE) == full
    seed_pipeline(sandbox.base_url, SecretStr(sandbox.admin_token), full, pipeline=SAMPLE_PIPELINE)  # again, base URL form
    with sandbox.api() as api:
        issues = api.get(f"/repos/{full}/issues", params={"state": "all", "per_page": 100}).json()
        labels = {lab["name"] for lab in api.get(f"/repos/{full}/labels", params={"per_page": 100}).json()}
        branches = {b["name"]: b["commit"]["sha"] for b in api.get(f"/repos/{full}/branches").json()}
    assert len(issues) == 12 and max(Counter(i["title"] for i in issues).values()) == 1
    assert set(PHASES) <= labels
    assert set(branches) == {"main", "dev"} and branches["main"] == branches["dev"]
    by_title = {i["title"]: {lab["name"] for lab in i["labels"]} for i in issues}
    assert by_title["Session auth middleware"] == {"phase-2/core-api", "batch-03", SECURITY_LABEL}


def test_seed_repairs_drifted_labels_and_refuses_foreign_owners(sandbox):
    full = f"admin/{unique_repo_name('drift')}"
    seed_pipeline(sandbox.api_url, sandbox.admin_token, full, pipeline=SAMPLE_PIPELINE)
    with sandbox.api() as api:
        api.patch(f"/repos/{full}/labels/security", json={"color": "000000"})
    seed_pipeline(sandbox.api_url, sandbox.admin_token, full, pipeline=SAMPLE_PIPELINE)
    with sandbox.api() as api:
        assert api.get(f"/repos/{full}/labels/security").json()["color"] == "b60205"
    with pytest.raises(SeedError, match="token belongs to admin"):
        seed_pipeline(sandbox.api_url, sandbox.admin_token, "alice/not-mine", pipeline=SAMPLE_PIPELINE)
    with pytest.raises(SeedError, match="401: Bad credentials"):
        seed_pipeline(sandbox.api_url, "wrong", full, pipeline=SAMPLE_PIPELINE)


def test_cli_seed_and_its_errors(sandbox, tmp_path):
    full = f"admin/{unique_repo_name('cli')}"
    ok = subprocess.run([sys.executable, "-m", "github_sandbox", "seed", "--url", sandbox.base_url,
                         "--pipeline", str(SAMPLE_PIPELINE), "--repo", full], env={"SANDBOX_TOKEN": sandbox.admin_token, "PATH": "/usr/bin:/bin"},
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == f"seeded {full}"
    bad_file = tmp_path / "p.json"
    bad_file.write_text(json.dumps({"issues": [{"title": ""}]}))
    bad = subprocess.run([sys.executable, "-m", "github_sandbox", "seed", "--url", sandbox.base_url,
                          "--token", "t", "--pipeline", str(bad_file)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "invalid" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("argv,message", [
    (["serve", "--user", "admin"], "--user wants LOGIN=TOKEN"),
    (["serve", "--user", "a=1", "--user", "A=2"], "given twice"),
    (["serve", "--port", "70000"], "not a TCP port"),
])
def test_cli_serve_refuses_bad_input_with_one_line(argv, message, tmp_path):
    done = subprocess.run([sys.executable, "-m", "github_sandbox", *argv, "--data", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_register_adds_sandbox_serve_and_seed_to_a_parent_parser():
    parser = argparse.ArgumentParser(prog="conductor")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["sandbox", "serve", "--port", "0", "--user", "a=b", "--user", "c=d"])
    assert callable(args.func) and args.user == ["a=b", "c=d"] and args.port == 0
    args = parser.parse_args(["sandbox", "seed", "--url", "http://x", "--repo", "o/n"])
    assert callable(args.func) and args.repo == "o/n"


def test_first_start_without_users_makes_an_admin_and_keeps_it(tmp_path):
    store, notes = prepare_store(ServeOptions(data_dir=tmp_path))
    (admin,) = store.glob.users.values()
    assert admin.login == "admin" and admin.site_admin
    token = notes[0].rsplit(" ", 1)[1]
    assert store.user_by_token(token) is admin and token not in (tmp_path / "sandbox.json").read_text()
    again, notes = prepare_store(ServeOptions(data_dir=tmp_path))
    assert again.user_by_token(token).login == "admin" and "tokens as before" in notes[0]
    users = [("boss", SecretStr("b")), ("admin", SecretStr("n"))]
    third, _ = prepare_store(ServeOptions(data_dir=tmp_path, users=users))
    assert third.user("boss").site_admin and not third.user("admin").site_admin
    assert third.user_by_token(token) is None and third.user_by_token("n").login == "admin"


def test_a_corrupt_state_file_is_a_clear_error(tmp_path):
    (tmp_path / "sandbox.json").write_text("{broken")
    done = subprocess.run([sys.executable, "-m", "github_sandbox", "serve", "--data", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "sandbox.json" in done.stderr and "fix or delete" in done.stderr
