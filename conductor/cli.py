"""The `conductor` command line."""
import sys


def main(argv: list[str] | None = None) -> int:
    print("conductor: not implemented yet", file=sys.stderr)
    return 2
