"""Create the conductor's process work pools (idempotent): `python -m deployments.pools`.

`conductor` runs the passes; `conductor-agents` runs coordinator deployments when
CONDUCTOR_DISPATCH=deployment (start its workers on the machines that host the agents).
"""
from __future__ import annotations

import sys

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists

POOLS = {
    "conductor": "Conductor passes (scheduled and manual).",
    "conductor-agents": "Coordinator flow runs: agents turning issues into PRs and reviewing PRs.",
}


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


def main() -> int:
    created = ensure_pools()
    print(f"work pools ready: {', '.join(POOLS)} (created: {', '.join(created) or 'none'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
