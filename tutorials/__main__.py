"""`python -m tutorials list | run NN | check NN [DIR]`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from .checks import CheckError, run_check
from .lab import LabError, all_labs, find_lab
from .runner import missing, run_lab

PROG = "python -m tutorials"


class UsageError(Exception):
    pass


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{PROG} --help')")


def cmd_list(args: argparse.Namespace) -> int:
    for lab in all_labs():
        needs = ", ".join(sorted(lab.needs)) or "nothing"
        unmet = [n for n in sorted(lab.needs) if missing(n)]
        note = f"  (here: missing {', '.join(unmet)})" if unmet else ""
        print(f"{lab.number}  {lab.title:<40} needs {needs:<22} ~{lab.minutes} min{note}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    lab = find_lab(args.lab)
    result = run_lab(lab, keep=args.keep, keep_going=args.keep_going)
    if result.error:
        return 2
    return 0 if result.ok else 1


def cmd_check(args: argparse.Namespace) -> int:
    lab = find_lab(args.lab)
    folder = os.path.abspath(args.dir or ".")
    if not os.path.isdir(folder):
        raise UsageError(f"{args.dir}: no such folder")
    problems = run_check(lab.number, folder)
    for problem in problems:
        print(problem)
    if problems:
        print(f"lab {lab.number}: {len(problems)} problem(s) in {folder}")
        return 1
    print(f"lab {lab.number}: all checks passed in {folder}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description="The layerlab classroom labs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = sub.add_parser("list", help="list the labs and what each needs")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("run", help="run a lab's steps in a scratch folder and compare the output")
    p.add_argument("lab", help="lab number, e.g. 02")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    p.add_argument("--keep-going", action="store_true", help="run the steps after a failed one too")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("check", help="check the state you built by hand in a lab")
    p.add_argument("lab", help="lab number, e.g. 02")
    p.add_argument("dir", nargs="?", help="the lab's folder (default: the current folder)")
    p.set_defaults(func=cmd_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except (UsageError, LabError, CheckError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
