"""For users without a worker: serve the conductor on a schedule from this process.

    python -m deployments.serve --repo OWNER/NAME --cron "0 * * * *"

Creates the `conductor/served` deployment and runs its scheduled (and manually triggered,
`prefect deployment run 'conductor/served'`) passes here until interrupted.
"""
from __future__ import annotations

import argparse
import sys

from flows.pipeline_pass import conductor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployments.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True, help="OWNER/NAME")
    parser.add_argument("--cron", default="0 * * * *", help="schedule (cron, UTC by default)")
    parser.add_argument("--timezone", default="UTC")
    parser.add_argument("--reminder-mode", choices=["recreate", "update"], default="update")
    args = parser.parse_args(argv)
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    # A module entrypoint, as prefect.yaml's: the flow-run process imports the installed project.
    conductor.serve(name="served", schedule=Cron(args.cron, timezone=args.timezone),
                    parameters={"repo": args.repo, "reminder_mode": args.reminder_mode},
                    limit=1, entrypoint_type=EntrypointType.MODULE_PATH)
    return 0


if __name__ == "__main__":
    sys.exit(main())
