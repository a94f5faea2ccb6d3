"""Sending a job's log records, warnings and traceback to its Snakemake log file."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_DATE_FORMAT = "%H:%M:%S"


class _Tee:
    """A text stream writing to several line-buffered files."""

    def __init__(self, *handles: TextIO) -> None:
        self.handles = handles

    def write(self, text: str) -> int:
        for handle in self.handles:
            handle.write(text)
        return len(text)

    def flush(self) -> None:
        for handle in self.handles:
            handle.flush()


@contextlib.contextmanager
def logged(
    path: str | os.PathLike[str],
    *,
    append: bool = False,
    keep: str | os.PathLike[str] | None = None,
) -> Iterator[logging.Logger]:
    """Logs (INFO and up) and anything printed go to ``path``; an exception is written there with
    its traceback and re-raised, so Snakemake reports the job as failed and names this log.

    ``keep``: a second copy that survives between attempts (Snakemake deletes a job's log before
    every attempt, retries included). With ``append`` its earlier content is first copied into
    ``path``, so a resumed job's log tells the whole story; without, it starts empty too."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as files:
        if (
            keep is not None
            and append
            and Path(keep).exists()
            and not (path.exists() and path.stat().st_size)
        ):
            shutil.copyfile(keep, path)
        handles = [files.enter_context(open(path, "a" if append else "w", buffering=1))]
        if keep is not None:
            handles.append(files.enter_context(open(keep, "a" if append else "w", buffering=1)))
        handle = _Tee(*handles)
        handler = logging.StreamHandler(handle)  # type: ignore[arg-type]
        handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        logging.captureWarnings(True)
        try:
            with contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):  # type: ignore[type-var]
                yield logging.getLogger("heritage_damage_seg")
        except Exception as err:
            handle.write("".join(traceback.format_exception(err)))
            print(
                f"ERROR: {type(err).__name__}: {err}\n(full traceback in {path})", file=sys.stderr
            )
            raise
        finally:
            root.removeHandler(handler)


def format_duration(seconds: float) -> str:
    """``1h02m03s`` / ``2m03s``: elapsed times and ETAs in logs."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
