"""A stand-in pass for the coalescing tests (`tests/test_on_change_triggers.py`), served as
`coalesce-probe/on-change` with prefect.yaml's on-change triggers and concurrency limit: the
conductor's own slot and coalescing (`tasks.guard.pass_slot`) around a pass that "reads
GitHub" (the events delivered so far, from a file) and lasts `PROBE_PASS_SECONDS`.

    python tests/coalesce_probe.py        (PROBE_DIR, PREFECT_API_URL in the environment)
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from prefect import flow

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tasks.guard import pass_slot  # noqa: E402


@flow(name="coalesce-probe")
def probe(repo: str, reminder_mode: str | None = None, event_id: str | None = None, dry_run: bool = False) -> None:
    """`dry_run` is never given: as the conductor's own parameters, the run's validated
    parameters have more in them than the server stores."""
    folder = Path(os.environ["PROBE_DIR"])
    with pass_slot(repo, wait_seconds=600, chain=int(os.environ.get("PROBE_CHAIN", "20"))) as slot:
        if slot.why_not:
            return
        one_pass(folder)
        while slot.again(more_work=False):
            one_pass(folder)


def one_pass(folder: Path) -> None:
    from prefect.runtime import flow_run

    seen = len((folder / "events").read_text().split()) if (folder / "events").exists() else 0
    started = time.time()
    with open(folder / "begun", "a") as out:
        out.write(f"{flow_run.name}\n")
    time.sleep(float(os.environ.get("PROBE_PASS_SECONDS", "8")))
    with open(folder / "passes", "a") as out:
        out.write(json.dumps({"run": flow_run.name, "seen": seen, "start": started, "end": time.time()}) + "\n")


def main() -> None:
    import yaml
    from prefect import serve
    from prefect.cli.deploy._triggers import _initialize_deployment_triggers
    from prefect.client.schemas.objects import ConcurrencyLimitConfig

    root = Path(__file__).resolve().parent.parent
    spec = next(d for d in yaml.safe_load((root / "prefect.yaml").read_text())["deployments"]
                if d["name"] == "on-change")
    os.environ.update(spec["work_pool"].get("job_variables", {}).get("env", {}))
    serve(probe.to_deployment(
        name="on-change", parameters=spec.get("parameters", {}),
        triggers=_initialize_deployment_triggers("on-change", [dict(t) for t in spec["triggers"]]),
        concurrency_limit=ConcurrencyLimitConfig(**spec["concurrency_limit"])))


if __name__ == "__main__":
    main()
