"""`conductor sandbox serve|seed`: argparse wiring (the lead adds `register` to shell/cli.py)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pydantic import SecretStr

from .server import SandboxUsageError, ServeOptions, parse_user, read_users_file

TOKEN_ENV = "SANDBOX_TOKEN"


def register(subparsers: argparse._SubParsersAction, *,
             default_pipeline: Path | None = None) -> argparse.ArgumentParser:
    """Add the `sandbox` command (subcommands `serve`, `seed`) to a parent parser."""
    parser = subparsers.add_parser(
        "sandbox", help="a local stand-in for GitHub (REST /api/v3 + git over HTTP)",
        description="A local stand-in for GitHub for tests and demos.")
    add_commands(parser, default_pipeline=default_pipeline)
    return parser


def add_commands(parser: argparse.ArgumentParser, *, default_pipeline: Path | None = None) -> None:
    sub = parser.add_subparsers(dest="sandbox_command", metavar="{serve,seed}", required=True)

    serve = sub.add_parser("serve", help="run the sandbox server until interrupted")
    serve.add_argument("--port", type=int, default=8765, help="TCP port (0: any free port)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--data", type=Path, default=Path(".sandbox"),
                       help="data directory: state JSON and bare git repositories")
    serve.add_argument("--user", action="append", default=[], metavar="LOGIN=TOKEN",
                       help="a user and its token (repeatable; the first is the site admin)")
    serve.add_argument("--users-file", type=Path, help="file of LOGIN=TOKEN lines (after --user)")
    serve.add_argument("--rate-limit", type=int, default=5000, help="core requests per hour per user")
    serve.add_argument("--tls", action="store_true",
                       help="serve https with a certificate authority generated into DATA/tls/ca.pem")
    serve.add_argument("--ready-file", type=Path, help="write the bound URL here once listening")
    serve.set_defaults(func=run_serve)

    seed = sub.add_parser("seed", help="load a pipeline (JSON) into a repository through the API")
    seed.add_argument("--url", required=True, help="sandbox URL (http://HOST:PORT or .../api/v3)")
    seed.add_argument("--token", help=f"API token (default: ${TOKEN_ENV})")
    seed.add_argument("--repo", help="OWNER/NAME to fill (default: TOKEN-OWNER/sample-pipeline)")
    seed.add_argument("--pipeline", type=Path, default=default_pipeline,
                      help="a pipeline JSON file" + (f" (default: {default_pipeline.name})" if default_pipeline
                                                     else " (default: an empty repository)"))
    seed.set_defaults(func=run_seed)


def run_serve(args: argparse.Namespace) -> int:
    from .server import serve

    try:
        users = [parse_user(u) for u in args.user]
        if args.users_file:
            users += read_users_file(args.users_file)
        if not 0 <= args.port <= 65535:
            raise SandboxUsageError(f"--port {args.port} is not a TCP port (0-65535)")
        if args.rate_limit < 1:
            raise SandboxUsageError("--rate-limit must be at least 1")
        return serve(ServeOptions(data_dir=args.data, port=args.port, host=args.host, users=users,
                                  rate_limit=args.rate_limit, ready_file=args.ready_file,
                                  tls=args.tls))
    except SandboxUsageError as exc:
        print(f"conductor sandbox serve: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


def run_seed(args: argparse.Namespace) -> int:
    from .seed import SeedError, seed_pipeline

    token = args.token or os.environ.get(TOKEN_ENV)
    if not token:
        print(f"conductor sandbox seed: no token; pass --token or set ${TOKEN_ENV}", file=sys.stderr)
        return 2
    try:
        full_name = seed_pipeline(args.url, SecretStr(token), args.repo, pipeline=args.pipeline)
    except SeedError as exc:
        print(f"conductor sandbox seed: {exc}", file=sys.stderr)
        return 2
    print(f"seeded {full_name}")
    return 0
