"""The pure core: models and rules over them. No Prefect, no I/O library, no edge."""
