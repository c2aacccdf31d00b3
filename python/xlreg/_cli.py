"""The ``xlreg`` console script: the Rust CLI, embedded in the extension."""

from __future__ import annotations

import os
import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``xlreg`` with ``argv`` (default: the command line); exits with its code.

    The directory of this interpreter goes first on ``PATH`` so that
    ``xlreg up -- python member.py`` runs members with the Python that has
    this package installed, even in a virtualenv that is not activated.
    """
    from . import _xlreg

    args = sys.argv[1:] if argv is None else argv
    bindir = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    if bindir and bindir not in path.split(os.pathsep):
        os.environ["PATH"] = bindir + (os.pathsep + path if path else "")
    sys.stdout.flush()
    sys.stderr.flush()
    code = _xlreg.cli_main(["xlreg", *args])
    sys.exit(code)
