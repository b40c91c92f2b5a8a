"""Reading a pass's history back from the Prefect server, as the UI does."""
from __future__ import annotations

from uuid import UUID

from prefect.client.orchestration import get_client

from shell.prefect_server import drain_prefect_workers
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)


class PrefectHistory:
    def child_flow_runs(self, flow_run_id: UUID):
        with get_client(sync_client=True) as client:
            return client.read_flow_runs(flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])))

    def artifact_keys_for(self, flow_run_id: UUID) -> set[str]:
        with get_client(sync_client=True) as client:
            artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
        return {a.key for a in artifacts if a.key}

    def log_lines(self, flow_run_ids: list[UUID]) -> list[str]:
        drain_prefect_workers()  # logs are sent in batches: send what this process still holds
        with get_client(sync_client=True) as client:
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=flow_run_ids)),
                                    limit=200)
        return [log.message for log in logs]
