"""The errors a user can fix. Each carries a one-line message that names the file, key or value at fault;
the CLI prints `error: <message>` and exits with status 2, with no traceback."""

from __future__ import annotations


class UserError(Exception):
    """An error the user can fix; printed as one line, exit status 2."""


class ConfigError(UserError, ValueError):
    """A configuration value out of range or contradicting another; found before any data is touched.
    Also a ValueError: build_model raises it for a config no model can be built from."""


class DataError(UserError):
    """Corpora that are missing, corrupt or unreadable."""


class CheckpointError(UserError):
    """A checkpoint that is missing, truncated, corrupt or unsafe; the message names the file."""


class ModelDirError(UserError):
    """A model directory that is missing, incomplete or inconsistent; the message names the path."""


class TrainingError(UserError):
    """A run that cannot go on (non-finite losses, unwritable run directory); one line, with a hint."""


class ExportError(UserError):
    """A model that cannot be exported exactly, or a missing optional package; the message says why."""


class ReportError(UserError):
    """Comparison runs that do not fit together (missing, or hypotheses that do not match results.json)."""
