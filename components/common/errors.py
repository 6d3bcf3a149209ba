"""User-facing errors: one line naming the file or tensor, what is wrong and what to do."""

from __future__ import annotations

import contextlib
import functools
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from kfp_tfserving.components.common.redaction import redact

# The CLI finds a failed step's reason, and its exit code, in the captured step logs by these prefixes.
ERROR_MARKER = "kfp-tfserving error: "
EXIT_CODE_MARKER = "kfp-tfserving exit code: "
# Exit codes of a failed step or command (README "The command line"). KFP's retry policy retries a failed
# pod whatever its code; the codes tell a person (and a wrapper script) whether running it again can help.
EXIT_REJECTED = 1  # the model was judged and rejected (parity, TF Serving's verdict): fix the model
EXIT_PERMANENT = 2  # bad usage or input (settings, paths, files): the same run fails the same way again
EXIT_BUG = 3  # a bug in kfp-tfserving; the error line names the file holding the traceback
EXIT_TRANSIENT = 75  # EX_TEMPFAIL (sysexits.h): storage said "try again" or went away; a retry may succeed

F = TypeVar("F", bound=Callable)


class UserError(Exception):
    """A problem the user can fix; its message is shown as-is, on one line."""

    exit_code = EXIT_PERMANENT

    def __init__(self, what: str, fix: str | None = None, *, exit_code: int | None = None):
        self.what = what
        self.fix = fix
        if exit_code is not None:  # a failure reported by a step run elsewhere, with the step's code
            self.exit_code = exit_code
        super().__init__(self.one_line())

    def one_line(self) -> str:
        text = self.what if not self.fix else f"{self.what}; {self.fix}"
        return redact(" ".join(text.split()))


class FormatError(UserError):
    """The model's files are missing, damaged or not what the format needs."""


class StorageError(UserError):
    """A path or URI cannot be read or written."""


class TransientStorageError(StorageError):
    """Storage is unavailable for now (5xx, throttling, timeouts, dropped connections), not wrong."""

    exit_code = EXIT_TRANSIENT


class ModelRejected(UserError):
    """The model was judged and failed: parity with its source, or TF Serving's predicted verdict."""

    exit_code = EXIT_REJECTED


def exit_code_for(err: UserError) -> int:
    return err.exit_code


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


_TF_NOISE = (
    "Graph execution error",
    "Detected at node",
    "Node:",
    "File ",
    "Traceback",
    "[[",
    "Stack trace",
    "<stack traces",
)
# TensorFlow's `{{function_node ...}}` prefix and trailing `[[{{node ...}}]]` location on an op's message.
_GRAPH_LOCATION = re.compile(r"\{\{function_node [^}]*\}\}\s*|\s*\[\[\{\{node [^}]*\}\}\]\].*$")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_KERAS_CALL = re.compile(
    r"\s*Exception encountered when calling (?:layer )?['\"]?([\w.]+?)['\"]?(?:\.call\(\))?[.:]?\s*\n"
)


def specific_line(err: BaseException) -> str:
    """The line of an exception's message that says what went wrong. For TensorFlow's multi-line errors
    ('Graph execution error: … Detected at node … Original stack trace …') that is the op's own message
    ('Unknown image file format', 'Could not find variable …'), or a Python error raised inside it."""
    text = _ANSI.sub("", str(err).split("Original stack trace for")[0])
    keras_call = _KERAS_CALL.match(text)
    if keras_call:  # Keras 3: "Exception encountered when calling Cropping1D.call().\n\n<the reason>\n\n
        # Arguments received by ...": the layer's class and the reason (itself perhaps a TF error).
        reason = text[keras_call.end() :].split("Arguments received by")[0]
        return f"{keras_call.group(1)}: {specific_line(ValueError(reason))}"[:300]
    lines = [" ".join(_GRAPH_LOCATION.sub("", line).split()) for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith(_TF_NOISE)]
    errors = [line for line in lines if "Error" in line.split(":")[0] and ":" in line]
    return ((errors[-1:] or lines[:1]) or [type(err).__name__])[0][:300]


def message_line(err: BaseException) -> str:
    """The first line of an exception's text ("" when it has none)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else ""


def first_line(err: BaseException) -> str:
    """What a finding or a one-line report says of an exception: a UserError's own message, else its type
    and the first line of its text."""
    return err.what if isinstance(err, UserError) else f"{type(err).__name__}: {message_line(err)}"


def most_specific_line(err: BaseException) -> str:
    """`ExceptionType: ` and the exception's specific_line."""
    return f"{type(err).__name__}: {specific_line(err)}"


def _is_model_failure(err: BaseException) -> bool:
    """TensorFlow refusing to run the model (an OpError): the model's problem, not this project's."""
    return any(c.__module__.startswith("tensorflow") and c.__name__ == "OpError" for c in type(err).__mro__)


def bug_line(err: BaseException) -> str:
    """A failure that is a bug in kfp-tfserving: say so, and write the full traceback where it can be found."""
    import tempfile
    import traceback

    fd, path = tempfile.mkstemp(prefix="kfp-tfserving-traceback-", suffix=".txt")
    with open(fd, "w") as out:
        out.write(redact("".join(traceback.format_exception(err))))
    return redact(
        f"a bug in kfp-tfserving: {most_specific_line(err)}; please report it with the traceback in {path}"
    )


def reports_errors(fn: F) -> F:
    """Make a step entry point print its exit code (for a local run, which sees only the log), then its
    failure as one marked line, the last on stderr, and exit with that code: EXIT_REJECTED, EXIT_PERMANENT,
    EXIT_TRANSIENT, or EXIT_BUG with the traceback written to a file the line names."""

    def fail(line: str, code: int) -> SystemExit:
        print(f"{EXIT_CODE_MARKER}{code}", file=sys.stderr, flush=True)
        print(f"{ERROR_MARKER}{line}", file=sys.stderr, flush=True)
        return SystemExit(code)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            raise fail(err.one_line(), exit_code_for(err)) from None
        except Exception as err:
            if _is_model_failure(err):
                rejected = ModelRejected(
                    f"TensorFlow cannot run the model: {most_specific_line(err)}",
                    "run the model in TensorFlow on inputs like its signature's and fix what fails",
                )
                raise fail(rejected.one_line(), EXIT_REJECTED) from None
            raise fail(bug_line(err), EXIT_BUG) from None

    return wrapper  # type: ignore[return-value]


def find_exit_code(log_text: str) -> int | None:
    """The exit code the last failing step reported in its log."""
    found = None
    for line in log_text.splitlines():
        at = line.find(EXIT_CODE_MARKER)
        if at >= 0 and line[at + len(EXIT_CODE_MARKER) :].strip().isdigit():
            found = int(line[at + len(EXIT_CODE_MARKER) :].strip())
    return found


def find_error_line(log_text: str) -> str | None:
    """The last marked error line in a step's log, without its marker."""
    found = None
    for line in log_text.splitlines():
        at = line.find(ERROR_MARKER)
        if at >= 0:
            found = line[at + len(ERROR_MARKER) :].strip()
    return found
