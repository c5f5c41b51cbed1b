"""`python -m imagegraph`: the same as the `imagegraph` command."""

import sys

from .cli import main

sys.exit(main())
