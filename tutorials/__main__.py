"""`python -m tutorials list | run NN | check NN [DIR] [--exercise K] | answer NN [K]`."""

from __future__ import annotations

import argparse
import os
import sys
import unicodedata
from collections.abc import Sequence
from typing import NoReturn

from .checks import CheckError, run_check
from .lab import Lab, LabError, all_labs, find_lab
from .runner import is_root, missing, run_lab, user_name

PROG = "python -m tutorials"

# What each requirement means to a student, for `list`.
CAPABILITIES = [
    ("fuse", "FUSE mounts (layerfs mount; unmount with umount or fusermount3 -u)"),
    ("kernel-overlay", "the kernel's OverlayFS (as root; else in a user namespace: unshare -Urm, userxattr)"),
    ("registry", "a registry of your own (docker-registry on a free port, htpasswd logins)"),
    ("docker", "the docker client (lab 09 drives imagegraph's daemon with it)"),
    ("tree", "tree(1)"),
]
NEED_NAMES = {
    "fuse": "FUSE",
    "kernel-overlay": "kernel OverlayFS",
    "registry": "registry",
    "docker": "docker client",
    "tree": "tree",
}


class UsageError(Exception):
    pass


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{PROG} --help')")


def _lab_state(lab: Lab) -> str:
    unmet = [f"{NEED_NAMES.get(n, n)} ({missing(n)})" for n in sorted(lab.needs) if missing(n)]
    if unmet:
        return "cannot run here: no " + "; no ".join(unmet)
    root = is_root()
    skipped = {n for step in lab.steps if step.runs_for(root) for n in step.needs if n not in lab.needs and missing(n)}
    if skipped:
        return "ready; skips the steps that need " + ", ".join(NEED_NAMES.get(n, n) for n in sorted(skipped))
    return "ready"


def cmd_list(args: argparse.Namespace) -> int:
    who = "root" if is_root() else f"{user_name()} (uid {os.geteuid()}), not root"
    print(f"You are {who}. What you can do here:")
    for need, text in CAPABILITIES:
        reason = missing(need)
        print(f"  {'no ' if reason else 'yes'}  {text}" + (f": {reason}" if reason else ""))
    print()
    labs = all_labs()
    needs = {lab.number: ", ".join(NEED_NAMES.get(n, n) for n in sorted(lab.needs)) or "nothing" for lab in labs}
    titles = max((_columns(lab.title) for lab in labs), default=0)
    widest = max((len(n) for n in needs.values()), default=0)
    for lab in labs:
        title = lab.title + " " * (titles - _columns(lab.title))
        print(f"{lab.number}  {title}  needs {needs[lab.number]:<{widest}}  ~{lab.minutes} min  {_lab_state(lab)}")
    return 0


def _columns(text: str) -> int:
    """Terminal columns: the labs' Chinese terms take two each."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def cmd_run(args: argparse.Namespace) -> int:
    lab = find_lab(args.lab)
    result = run_lab(lab, keep=args.keep, keep_going=args.keep_going, exercises=not args.no_exercises)
    if result.error:
        return 2
    return 0 if result.ok else 1


def _exercise_folder(lab: Lab, exercise: int, folder: str) -> str:
    """Run from the lab's own folder, an exercise check looks in the exercise's folder beside it."""
    if os.path.basename(folder) == f"lab{lab.number}":
        sibling = f"{folder}-ex{exercise}"
        if os.path.isdir(sibling):
            return sibling
    return folder


def cmd_check(args: argparse.Namespace) -> int:
    lab = find_lab(args.lab)
    folder = os.path.abspath(args.dir or ".")
    if not os.path.isdir(folder):
        raise UsageError(f"{args.dir}: no such folder")
    what = f"lab {lab.number}"
    if args.exercise is not None:
        if args.dir is None:
            folder = _exercise_folder(lab, args.exercise, folder)
        what = f"lab {lab.number}, exercise {args.exercise}"
    problems = run_check(lab.number, folder, args.exercise)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{what}: {len(problems)} problem(s) in {folder}")
        return 1
    print(f"{what}: all checks passed in {folder}")
    return 0


def cmd_answer(args: argparse.Namespace) -> int:
    lab = find_lab(args.lab)
    answers = lab.exercises()
    if not answers:
        raise UsageError(f"lab {lab.number} has no worked answers")
    if args.exercise is not None:
        answers = [a for a in answers if a.number == args.exercise]
        if not answers:
            known = ", ".join(str(a.number) for a in lab.exercises())
            raise UsageError(f"lab {lab.number} has no exercise {args.exercise} (its exercises: {known})")
    sys.stdout.write("\n".join(a.text for a in answers))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description="The layerlab classroom labs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = sub.add_parser("list", help="what you can do here, and the labs")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("run", help="run a lab's steps, checks and worked answers in a scratch folder")
    p.add_argument("lab", help="lab number, e.g. 02")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    p.add_argument("--keep-going", action="store_true", help="run the steps after a failed one too")
    p.add_argument("--no-exercises", action="store_true", help="the lab's steps and check only")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("check", help="check the state you built by hand in a lab (or one of its exercises)")
    p.add_argument("lab", help="lab number, e.g. 02")
    p.add_argument("dir", nargs="?", help="the lab's folder (default: the current folder)")
    p.add_argument("--exercise", type=int, metavar="K", help="check exercise K (done in ~/layerlab/labNN-exK)")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("answer", help="print the worked answer of a lab's exercise (for teachers)")
    p.add_argument("lab", help="lab number, e.g. 02")
    p.add_argument("exercise", nargs="?", type=int, help="exercise number (default: all)")
    p.set_defaults(func=cmd_answer)
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
