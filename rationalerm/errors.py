"""Every error the package raises on purpose, in one leaf module any layer can import.

Each is a ``RationaleRMError``: the CLI prints one as a single ``error:`` line and exits with code 2, and a
library caller catches them all with one ``except``. Anything else is a bug and keeps its traceback. A module
may keep a private signal of its own (an underscore name whose docstring says it never leaves the module);
``tests/test_errors.py`` checks that no other exception class is defined in the package.

The specific classes keep the builtin base they had before there was a common one (``ValueError``,
``RuntimeError``, ``OSError``), so existing ``except`` clauses still catch them; each is also importable from
the module that raises it. One class is deliberately not a ``RationaleRMError``: ``RewardDataAbort``, a
``BaseException`` that carries a ``RewardDataError`` past a trainer that swallows every ``Exception``.
"""

from __future__ import annotations


class RationaleRMError(Exception):
    """Base of every error the package raises on purpose; the message says what and where."""


class ConfigError(RationaleRMError, ValueError):
    """A config file, section or override that does not validate; the message names the file and key."""


class LoadError(RationaleRMError, ValueError):
    """A bad input file or record; the message starts with ``file:line:``."""


class JudgeError(RationaleRMError, RuntimeError):
    """The judge cannot produce a result (misconfigured server, label not a single token, prompt too long, ...)."""


class OutputError(RationaleRMError, OSError):
    """An output or run directory that cannot be written or is not a run directory."""


class LabelError(LoadError):
    """A bad training label file or record (``training``); the message starts with ``file:line:``."""


class TrainError(RationaleRMError, ValueError):
    """Training cannot start (too few labels, an output folder in the way, ...)."""


class ArgKPError(LoadError):
    """A missing or malformed ArgKP file (``datasets.argkp``); the message starts with ``file:line:``."""


class RewardDataError(RationaleRMError, ValueError):
    """A ground truth the reward cannot use (no human checklist, no or an unparseable human label): a bug in the
    dataset, raised to the trainer rather than scored."""


class RewardDataAbort(BaseException):
    """A ``RewardDataError`` raised through a trainer that swallows every ``Exception`` of a reward function
    (OpenRLHF logs it at INFO and scores None, so a dataset bug would pass silently). Deliberately a
    ``BaseException`` and not a ``RationaleRMError``: it must stop the rollout; its cause is the
    ``RewardDataError``."""


class ParseFailure(RationaleRMError, ValueError):
    """Why a policy output has no (checklist, label); the reward scores such an output 0 and records the reason."""


class Unparseable(RationaleRMError, ValueError):
    """A label that is present but does not say response 1, response 2 or a tie (``scoring.outcome``)."""


__all__ = [
    "ArgKPError", "ConfigError", "JudgeError", "LabelError", "LoadError", "OutputError", "ParseFailure",
    "RationaleRMError", "RewardDataAbort", "RewardDataError", "TrainError", "Unparseable",
]
