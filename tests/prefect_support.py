"""Reading a pass's history back from the Prefect server, as the UI does."""
from __future__ import annotations

from uuid import UUID

from prefect.client.orchestration import get_client

from shell.prefect_server import drain_prefect_workers
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterName,
    FlowRunFilterParentFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)


class PrefectHistory:
    def child_flow_runs(self, flow_run_id: UUID):
        return self.child_flow_runs_of([flow_run_id])

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

    def runs_named_like(self, text: str) -> list[dict]:
        """Every flow run whose name contains `text`, its child runs, their task runs, logs and
        artifacts, as the API returns them (JSON-ready), to search as a whole."""
        drain_prefect_workers()
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_=text)))
            runs += self.child_flow_runs_of([r.id for r in runs])
            ids = [r.id for r in runs]
            tasks = client.read_task_runs(task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=ids)))
            artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids)))
            logs, page = [], 200
            while len(logs) % page == 0:
                batch = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)),
                                         limit=page, offset=len(logs))
                logs += batch
                if not batch:
                    break
        return [r.model_dump(mode="json") for r in [*runs, *tasks, *artifacts, *logs]]

    def child_flow_runs_of(self, flow_run_ids: list[UUID]):
        with get_client(sync_client=True) as client:
            return client.read_flow_runs(flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=flow_run_ids)))
