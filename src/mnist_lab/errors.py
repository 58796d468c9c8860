"""The errors a user can fix, and the checks that raise them; ``command_line`` shows them in one line."""

from __future__ import annotations


class UserError(ValueError):
    """Something the user can fix; the message says what is wrong and what to do."""


class ConfigError(UserError):
    """A configuration value is not allowed; the message names the key, the value and what is allowed."""


class DataError(UserError):
    """A data file is missing or malformed; the message names the file and what to do."""


class CheckpointError(UserError):
    """A checkpoint is missing, damaged, or not one of ours."""


class InputError(UserError):
    """One input of predict.py or serve.py cannot be read (blank, unreadable); the others still are."""

    status = 400  # serve.py's HTTP status for it


class NotAnImage(InputError):
    status = 415


class ImageTooLarge(InputError):
    status = 413


def check(ok: bool, key: str, value: object, allowed: str) -> None:
    """Refuse ``key=value`` unless ``ok``, saying what is ``allowed``."""
    if not ok:
        raise ConfigError(f"{key}={value} is not allowed: {allowed}.")
