"""Stopping where we are: SIGTERM / SIGUSR1 (what SLURM sends before a time limit with
``--signal``) are recorded instead of killing the process, so the loop finishes the current step,
saves its position and exits with 128 + signal number for a rerun to resume from."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from typing import NoReturn

log = logging.getLogger(__name__)


class StopRequest:
    """Records SIGTERM / SIGUSR1 instead of dying at once, so the loop can save where it is."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: object) -> None:
        self.signum = signum

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequest]:
        # Signals only reach the main thread; elsewhere (a test's thread) nothing is installed.
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def exit(self, where: str, checkpoint: str | os.PathLike[str]) -> NoReturn:
        assert self.signum is not None
        log.warning(
            "%s received: saved the position at %s to %s; exiting with status %d so that a rerun "
            "(snakemake --retries, or a SLURM requeue) resumes from there",
            signal.Signals(self.signum).name,
            where,
            checkpoint,
            128 + self.signum,
        )
        raise SystemExit(128 + self.signum)
