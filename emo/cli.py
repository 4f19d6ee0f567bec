"""What every ``python -m emo.<command>`` shares: the command as typed, for the logs, and how it ends.

A bad input (a missing file, a bad value) ends a command with a one-line ``error: ...`` and exit
status 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import shlex
import sys
from typing import Callable

import torch

BAD_INPUT = (FileNotFoundError, ValueError)


def command_line(module: str, argv: list[str] | None = None) -> str:
    """The shell command that ran ``module`` with ``argv`` (default: this process's arguments), for the logs."""
    return " ".join(["python -m " + module, *(shlex.quote(s) for s in (sys.argv[1:] if argv is None else argv))])


def run_command(action: Callable[[], object], threads: int = 0) -> int:
    """How a command line's ``main`` ends: set ``threads`` CPU threads (0: PyTorch's choice) and run ``action``.

    Returns 2 after printing the one-line error of a bad input; otherwise the exit status ``action``
    returns where that is an int, else 0.
    """
    if threads:
        torch.set_num_threads(threads)
    try:
        status = action()
    except BAD_INPUT as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return status if isinstance(status, int) and not isinstance(status, bool) else 0
