"""The errors a user can cause: a bad config, bad input, a judge that cannot run, an unusable output path.

Everything a user can fix raises a ``RationaleRMError``; the CLI prints it as one ``error:`` line and exits
with code 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class RationaleRMError(Exception):
    """Base of every error the user can cause and fix; the message says what and where."""


class ConfigError(RationaleRMError, ValueError):
    """A config file, section or override that does not validate; the message names the file and key."""


class LoadError(RationaleRMError, ValueError):
    """A bad input file or record; the message starts with ``file:line:``."""


class JudgeError(RationaleRMError, RuntimeError):
    """The judge cannot produce a result (misconfigured server, label not a single token, prompt too long, ...)."""


class OutputError(RationaleRMError, OSError):
    """An output or run directory that cannot be written or is not a run directory."""


class RewardDataError(RationaleRMError, ValueError):
    """A ground truth the RL reward cannot use (no human checklist, no or an unparseable human label): a data bug
    to fix in the dataset, unlike a policy output that cannot be parsed (that output only scores 0)."""


__all__ = ["ConfigError", "JudgeError", "LoadError", "OutputError", "RationaleRMError", "RewardDataError"]
