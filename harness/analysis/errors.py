"""The analysis step's error and warning types."""
from __future__ import annotations


class TableError(ValueError):
    """Input the fit cannot use (missing column, non-positive value, too few points).

    The message is one line; ``harness-fit`` prints it and exits with status 2."""


class AnalysisWarning(UserWarning):
    """Something in the data or the fit that its reader should know about."""
