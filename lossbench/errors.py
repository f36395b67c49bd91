"""Errors that carry a message meant for a person.

Every error the CLI can meet in normal use is a ``LossbenchError``: the CLI prints its message on one line and
exits with its ``exit_code``; it never shows a traceback for these.
"""

from __future__ import annotations


class LossbenchError(Exception):
    """Base class: a problem with the user's input or environment, explained in the message."""

    exit_code = 1


class UsageError(LossbenchError):
    """A bad name, flag or value on the command line (exit code 2, like click's own usage errors)."""

    exit_code = 2


class UnknownNameError(UsageError):
    """A loss, model, dataset or metric name that nothing registered."""


class PluginError(LossbenchError):
    """A plugin failed to import, raised in a hook, or registered something malformed."""

    def __init__(self, plugin: str, reason: str) -> None:
        super().__init__(f"plugin {plugin!r}: {reason}")
        self.plugin = plugin
        self.reason = reason


class StoreError(LossbenchError):
    """The results store is corrupt, foreign or unwritable; it is never overwritten."""


class DataUnavailable(LossbenchError):
    """A dataset's files are missing or unreadable; the message says what to put where."""


class DeviceUnavailable(UsageError):
    """The requested device (e.g. ``cuda``) is not present on this machine."""
