"""The errors that speak to the user: the ``vtrep`` command prints them as one ``error:`` line.

Any other error is a fault of vtrep's and keeps its traceback (``VTREP_DEBUG=1`` keeps it for these too).
The bottom of the import layers, so that every package (``vtrep.io``, ``vtrep.checks``, ``datamodules``) can
raise them.
"""

from __future__ import annotations

import os


class UserError(Exception):
    """An error whose message is all a user needs: the value, file or run at fault and why.

    The ``vtrep`` command prints it as one ``error:`` line instead of a traceback (``VTREP_DEBUG=1`` keeps the
    traceback). It is never raised alone but mixed into a built-in type, so ``except ValueError`` still works.
    """


class UsageError(UserError, ValueError):
    """A value or file a user gave is refused: a command's or constructor's argument, a data file's content."""


def debug_enabled() -> bool:
    """``VTREP_DEBUG=1``: every error keeps its traceback (and jsonargparse's full message)."""
    return os.environ.get("VTREP_DEBUG", "") not in ("", "0", "false", "False")
