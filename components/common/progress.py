"""Progress for long transfers: a live bar on a terminal, a few log lines in a pipeline step's log."""

from __future__ import annotations

import sys
import time
from types import TracebackType


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


class TransferProgress:
    """Counts bytes; call the instance with each chunk's size."""

    LOG_EVERY_SECONDS = 5.0

    def __init__(self, label: str, total: int | None):
        self.label = label
        self.total = total
        self.done = 0
        self._bar = None
        self._task = None
        self._last_log = 0.0

    def __enter__(self) -> TransferProgress:
        if sys.stderr.isatty():
            from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

            self._bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total)
        self._last_log = time.monotonic()
        return self

    def __call__(self, nbytes: int) -> None:
        self.done += nbytes
        if self._bar is not None:
            self._bar.update(self._task, advance=nbytes)
        elif time.monotonic() - self._last_log >= self.LOG_EVERY_SECONDS:
            self._last_log = time.monotonic()
            self._log()

    def _log(self) -> None:
        of = f" of {human_bytes(self.total)}" if self.total else ""
        print(f"{self.label}: {human_bytes(self.done)}{of}", flush=True)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
        if exc_type is None:
            self._log()
