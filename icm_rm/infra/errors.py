"""User-facing errors: each prints as one line naming file/row/field or config key, and exits with code 2."""

from __future__ import annotations

from pathlib import Path

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A problem the user can fix (bad input, bad config, missing model); never a bug in icm-rm."""


class InputError(UserError):
    """Bad data in an input file: names the file, the 1-based row (or JSON index) and the field."""

    def __init__(self, path: str | Path | None, row: int | None, field: str | None, message: str):
        self.path, self.row, self.field, self.message = path, row, field, message
        where = [str(path) if path is not None else "<input>"]
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{', '.join(where)}: {message}")


class ConfigError(UserError):
    """Bad configuration: names the config file (if any) and the key."""

    def __init__(self, key: str | None, message: str, path: str | Path | None = None):
        self.key, self.message, self.path = key, message, path
        where = []
        if path is not None:
            where.append(str(path))
        if key is not None:
            where.append(f"key '{key}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
