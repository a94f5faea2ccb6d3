"""Progress of a prediction run: a bar with an ETA in an interactive terminal, log lines elsewhere.

In a terminal (stderr is a TTY) a tqdm bar counts the run's megapixels (read from the scans'
headers up front, so one 244 MP scan among small ones weighs what it costs), moves within a scan
as its tile rows are done (crops view) and names the step it is at; the log records go above
it. In a Snakemake log (stderr is a file) there is no bar: the log keeps its line per scan with
images/s, MP/s and ETA, and about ten lines per scan of many tile rows.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from heritage_damage_seg.data import decode

log = logging.getLogger(__name__)


def _is_terminal(stream: object) -> bool:
    """Whether ``stream`` is an interactive terminal (a Snakemake job's stderr is a log file, or
    the tee of :func:`heritage_damage_seg.logs.logged`, which has no ``isatty``)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


def _megapixels(path: Path) -> float:
    """The scan's size from its header; 0 for a file that cannot be read (it will fail later)."""
    try:
        head = decode.header(path, str(path))
    except (OSError, ValueError):
        return 0.0
    return head.width * head.height / 1e6


class RunProgress:
    """Use as a context manager around the run; :meth:`scan` for each scan."""

    def __init__(self, images: Sequence[Path], *, interactive: bool | None = None) -> None:
        self.interactive = _is_terminal(sys.stderr) if interactive is None else interactive
        self.sizes = [_megapixels(p) for p in images] if self.interactive else [0.0] * len(images)
        self.unit = "MP"
        if not sum(self.sizes):  # no readable header (or no bar): count scans
            self.sizes, self.unit = [1.0] * len(images), "scans"
        self.bar: tqdm | None = None
        self._done = 0.0
        self._current = 0.0
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> RunProgress:
        if self.interactive:
            self.bar = self._stack.enter_context(
                tqdm(
                    total=sum(self.sizes),
                    unit=self.unit,
                    dynamic_ncols=True,
                    bar_format="{desc} {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} {unit} "
                    "[{elapsed}<{remaining}, {rate_fmt}]",
                )
            )
            self._stack.enter_context(logging_redirect_tqdm())
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stack.close()

    @contextlib.contextmanager
    def scan(self, index: int, name: str) -> Iterator[Callable[[int, int], None]]:
        """Around one scan (``index`` into the images): yields its tile-row callback."""
        self._current = self.sizes[index]
        self.step(name, "predicting")
        try:
            yield self._bar_rows() if self.bar is not None else _logged_rows(name)
        finally:
            self._done += self._current
            self._move(self._done)

    def step(self, name: str, what: str) -> None:
        """Names the step the run is at (bar only)."""
        if self.bar is not None:
            self.bar.set_description_str(f"{name}: {what}", refresh=True)

    def _bar_rows(self) -> Callable[[int, int], None]:
        def progress(done: int, total: int) -> None:
            self._move(self._done + self._current * done / max(1, total))

        return progress

    def _move(self, position: float) -> None:
        if self.bar is not None:
            self.bar.update(position - self.bar.n)


def _logged_rows(name: str) -> Callable[[int, int], None]:
    """Logs about ten progress lines for a scan that takes many tile rows (crops view)."""

    def progress(done: int, total: int) -> None:
        if total >= 20 and (done % max(1, total // 10) == 0 or done == total):
            log.info("  %s: tile row %d/%d", name, done, total)

    return progress
