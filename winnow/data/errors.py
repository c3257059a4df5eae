"""The one exception type the data layer raises for bad input."""

from __future__ import annotations

from winnow.types import BadRow


class DataError(ValueError):
    """Bad input data: the message names the file, the line or row, and the field.

    ``bad_rows`` carries every row that could not be read (empty for file-level problems such
    as an empty file or a directory), so a caller can print all of them, not just the first.
    A ValueError subclass so code that already catches ValueError for bad input keeps working.
    """

    def __init__(self, message: str, bad_rows: list[BadRow] | None = None) -> None:
        super().__init__(message)
        self.bad_rows: list[BadRow] = list(bad_rows or [])

    @classmethod
    def from_bad_rows(cls, bad_rows: list[BadRow]) -> DataError:
        """One error for a list of bad rows; the message is the first row's ``describe()``."""
        message = bad_rows[0].describe()
        if len(bad_rows) > 1:
            message += f" (and {len(bad_rows) - 1} more bad rows)"
        return cls(message, bad_rows)


class MapError(DataError):
    """A column map entry that names a field no row of the file has (a typo, most likely).

    Its own type so ``winnow inspect`` stops on it (the user's argument is wrong) instead of
    suggesting a map for a file it could not read."""


class LayoutRefused(DataError):
    """The file's layout was not chosen automatically because reading it that way would leave
    data unread (or its records are wrapped in an object); the message says what to pass."""
