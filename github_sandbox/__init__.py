"""A local stand-in for GitHub: the REST API under /api/v3 and git smart HTTP, backed by
real bare repositories, for tests and demos.

Entry points: `conductor sandbox serve|seed` (cli.py), `seed_sample` (seed.py),
`running_sandbox` (testing.py).
"""
