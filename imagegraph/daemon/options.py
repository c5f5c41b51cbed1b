"""`imagegraph daemon`'s command line: apart from the server, so that building the parser for
any imagegraph command does not import the whole Engine API (a tenth of a second per command)."""

from __future__ import annotations

import argparse
import logging

from ..commands import positive_int

LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
LOG_LEVELS["fatal"] = logging.CRITICAL


def setup_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-H",
        "--host",
        action="append",
        dest="hosts",
        metavar="ADDRESS",
        help="unix:///PATH or tcp://127.0.0.1:PORT (repeatable; default: a private unix socket)",
    )
    p.add_argument("--root", dest="daemon_root", metavar="ROOT", help="the store (default: imagegraph's --root)")
    p.add_argument(
        "--flow", metavar="FILE", help="write one line per hop (client → daemon → registry) to FILE, - for stderr"
    )
    p.add_argument("--log-level", "-l", choices=sorted(LOG_LEVELS), default="info", help="as dockerd's (default info)")
    p.add_argument("-D", "--debug", action="store_true", dest="daemon_debug", help="same as --log-level debug")
    p.add_argument("--insecure-registry", action="append", default=[], metavar="HOST:PORT", help="plain-HTTP registry")
    p.add_argument(
        "--shutdown-timeout", type=float, default=10.0, metavar="SECONDS", help="grace for running requests (10)"
    )
    p.add_argument(
        "--max-concurrent-downloads", type=positive_int, metavar="N", help="layers a pull downloads at once (3)"
    )
    p.add_argument("--max-concurrent-uploads", type=positive_int, metavar="N", help="layers a push uploads at once (5)")
