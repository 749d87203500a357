"""The `segrade` command: parse arguments, call the engine, print. Nothing more.

Each command lives in its own module under grader/commands/.
"""

from __future__ import annotations

import argparse
import sys

from grader import __version__
from grader.commands import bands, check, data, grade, report, rescore, similarity, verify


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="segrade", description="Grade segmentation assignments.")
    parser.add_argument("--version", action="version", version=f"segrade {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (grade, check, report, rescore, verify, similarity, bands, data):
        command.add_parser(commands)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
