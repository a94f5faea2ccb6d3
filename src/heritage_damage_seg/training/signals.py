"""Stopping where we are: SIGTERM / SIGUSR1 (what SLURM sends before a time limit with
``--signal``) are recorded instead of killing the process, so the loop finishes the current step,
saves its position and exits with 128 + signal number for a rerun to resume from.

Under data parallelism a signal may reach one rank only (or the ranks at different steps): the
ranks vote after every step, and all stop after the same step. The vote is a one-number
all-reduce on the CPU (gloo), started after a step and read after the next one, so the GPU step
never waits for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from typing import NoReturn

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


class StopRequest:
    """Records SIGTERM / SIGUSR1 instead of dying at once, so the loop can save where it is."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._group: dist.ProcessGroup | None = None
        self._vote: torch.Tensor | None = None
        self._pending: dist.Work | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def _distributed(self) -> bool:
        return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1

    def after_step(self) -> bool:
        """Whether to stop after this step: this process's signal, or under data parallelism the
        ranks' vote started after the previous step (the same answer on every rank)."""
        if not self._distributed:
            return self.requested
        agreed = self._collect()
        self._start_vote()
        return agreed

    def at_epoch_end(self) -> bool:
        """Whether to stop at the epoch's end, agreed by all ranks (waits for the vote)."""
        if not self._distributed:
            return self.requested
        self._collect()
        self._start_vote()
        return self._collect()

    def _start_vote(self) -> None:
        if self._group is None:
            gloo = dist.get_backend() == "gloo"
            self._group = dist.group.WORLD if gloo else dist.new_group(backend="gloo")
        self._vote = torch.tensor([self.signum or 0], dtype=torch.int64)
        self._pending = dist.all_reduce(
            self._vote, op=dist.ReduceOp.MAX, group=self._group, async_op=True
        )

    def _collect(self) -> bool:
        if self._pending is None or self._vote is None:
            return False
        self._pending.wait()
        self._pending, agreed = None, int(self._vote)
        if agreed and self.signum is None:
            self.signum = agreed  # another rank's signal: exit with its status
        return bool(agreed)

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
