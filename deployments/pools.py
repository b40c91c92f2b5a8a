"""Create the conductor's process work pools and its automation (idempotent): `python -m deployments.pools`.

`conductor` runs the passes; `conductor-agents` runs leaves when CONDUCTOR_DISPATCH=deployment
(start its workers on the machines that host the agents). The automation marks a leaf run
Crashed once its heartbeats stop (its worker was lost): the pass that waits for it records a
failed attempt and takes its claim off, and the next pass dispatches the item again.
"""
from __future__ import annotations

import argparse
import sys
from datetime import timedelta

from prefect.automations import Automation
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification
from prefect.exceptions import ObjectAlreadyExists

from flows.coordinators import LEAF_FLOW, LEAF_SILENCE_S

POOLS = {
    "conductor": "Conductor passes (scheduled and manual).",
    "conductor-agents": "Leaf flow runs: one agent turning an issue into a PR or reviewing a PR.",
}
SILENT_LEAVES = "conductor: crash leaf runs whose worker was lost"


def ensure_pools(names: dict[str, str] = POOLS) -> list[str]:
    created = []
    with get_client(sync_client=True) as client:
        for name, description in names.items():
            try:
                client.create_work_pool(WorkPoolCreate(name=name, type="process", description=description))
            except ObjectAlreadyExists:
                continue
            created.append(name)
    return created


def silent_leaves(within: float = LEAF_SILENCE_S) -> Automation:
    """Prefect's zombie-run recipe, for leaf runs only: a worker's take (Pending), a start or
    a heartbeat not followed within `within` seconds by a heartbeat or a final state marks the
    run Crashed. `within` must exceed the time a worker needs to start a flow-run process."""
    return Automation(
        name=SILENT_LEAVES,
        description="A leaf run that stopped beating lost its worker: Crashed, so its pass moves on.",
        trigger=EventTrigger(
            # Pending and Running too: a worker lost before its run's first beat went out
            # (starting a flow-run process takes seconds) would leave the run open forever
            after={"prefect.flow-run.Pending", "prefect.flow-run.Running", "prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                    "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            match_related=ResourceSpecification({"prefect.resource.role": "flow",
                                                 "prefect.resource.name": LEAF_FLOW}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=within),
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED,
                                    message=f"no heartbeat for {within:g} s: its worker was lost")],
    )


def ensure_automation(automation: Automation) -> bool:
    """Create `automation`, or bring the one of its name up to it; True when created."""
    with get_client(sync_client=True) as client:
        found = client.read_automations_by_name(name=automation.name)
        if found:
            client.update_automation(found[0].id, automation)  # its unset fields (id) are left out
            return False
    automation.create()
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployments.pools", description=__doc__.splitlines()[0])
    parser.add_argument("--silence", type=float, default=LEAF_SILENCE_S,
                        help="seconds without a heartbeat after which a leaf run is marked Crashed "
                        f"(more than the 30 s between heartbeats; default {LEAF_SILENCE_S})")
    args = parser.parse_args(argv)
    created = ensure_pools()
    made = ensure_automation(silent_leaves(args.silence))
    print(f"work pools ready: {', '.join(POOLS)} (created: {', '.join(created) or 'none'}); "
          f"automation {SILENT_LEAVES!r} {'created' if made else 'updated'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
