"""User-facing errors: one line naming the file or tensor, what is wrong and what to do."""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

# The CLI finds a failed step's reason in the captured step logs by this prefix.
ERROR_MARKER = "kfp-tfserving error: "
# Exit codes of a failed step or command. KFP's retry policy retries a failed pod whatever its code; the
# codes tell a person (and `submit --wait`) whether running it again can help.
EXIT_PERMANENT = 2  # the input or the settings are wrong: the same run fails the same way again
EXIT_TRANSIENT = 75  # EX_TEMPFAIL (sysexits.h): storage said "try again" or went away; a retry may succeed

F = TypeVar("F", bound=Callable)


class UserError(Exception):
    """A problem the user can fix; its message is shown as-is, on one line."""

    def __init__(self, what: str, fix: str | None = None):
        self.what = what
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        text = self.what if not self.fix else f"{self.what}; {self.fix}"
        return " ".join(text.split())


class FormatError(UserError):
    """The model's files are missing, damaged or not what the format needs."""


class StorageError(UserError):
    """A path or URI cannot be read or written."""


class TransientStorageError(StorageError):
    """Storage is unavailable for now (5xx, throttling, timeouts, dropped connections), not wrong."""


def exit_code_for(err: UserError) -> int:
    return EXIT_TRANSIENT if isinstance(err, TransientStorageError) else EXIT_PERMANENT


class PublishError(UserError):
    """The push step refused to publish."""


@contextlib.contextmanager
def naming_the_source(copy: Path, source: str) -> Iterator[None]:
    """Errors raised inside name the user's source (the path or URI they gave), not a step's copy of it."""
    try:
        yield
    except UserError as err:
        if not source:
            raise
        raise type(err)(err.what.replace(str(copy), source), err.fix) from None


def reports_errors(fn: F) -> F:
    """Make a step entry point print its failure as one marked line on stderr and exit non-zero:
    EXIT_TRANSIENT for storage that may answer on a retry, EXIT_PERMANENT for the rest."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            print(f"{ERROR_MARKER}{err.one_line()}", file=sys.stderr, flush=True)
            raise SystemExit(exit_code_for(err)) from None
        except Exception as err:  # an unexpected failure still gets a readable last line
            print(f"{ERROR_MARKER}unexpected {type(err).__name__}: {err}".splitlines()[0], file=sys.stderr)
            raise

    return wrapper  # type: ignore[return-value]


def find_error_line(log_text: str) -> str | None:
    """The last marked error line in a step's log, without its marker."""
    found = None
    for line in log_text.splitlines():
        at = line.find(ERROR_MARKER)
        if at >= 0:
            found = line[at + len(ERROR_MARKER) :].strip()
    return found
