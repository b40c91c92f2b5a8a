"""The application shell: the `conductor` CLI, the demo, the demo agent and the embedded Prefect server."""
