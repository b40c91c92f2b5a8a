"""conductor: the Prefect-free core (models, settings, gateways, planner, sandbox)."""

__version__ = "0.1.0"
