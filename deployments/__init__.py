"""What prefect.yaml cannot express: work-pool creation and a `serve` entry point."""
