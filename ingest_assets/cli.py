"""The ``ingest-assets`` command line."""

from __future__ import annotations

import argparse
import sys
from datetime import date

from ingest_assets.demo import seed_demo
from ingest_assets.environment import data_dir


def main(argv: list[str] | None = None) -> int:
    """Run the ``ingest-assets`` command line; returns the exit code."""
    parser = argparse.ArgumentParser(prog="ingest-assets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    seed = commands.add_parser(
        "seed-demo", help="write the demo landing files (days already present are kept)"
    )
    seed.add_argument(
        "--until",
        type=date.fromisoformat,
        default=None,
        help="last day to seed (default: yesterday)",
    )
    args = parser.parse_args(argv)
    if args.command == "seed-demo":
        root = data_dir()
        days = seed_demo(root, until=args.until)
        print(f"demo landing files: {days} new day(s) under {root / 'landing'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
