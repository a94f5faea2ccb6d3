"""Sending a job's log records, warnings and traceback to its Snakemake log file."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def logged(path: str | os.PathLike[str], *, append: bool = False) -> Iterator[logging.Logger]:
    """Logs (INFO and up) and anything printed go to ``path``; an exception is written there with
    its traceback and re-raised, so Snakemake reports the job as failed and names this log."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a" if append else "w", buffering=1) as handle:
        handler = logging.StreamHandler(handle)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        logging.captureWarnings(True)
        try:
            with contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
                yield logging.getLogger("heritage_damage_seg")
        except Exception as err:
            handle.write("".join(traceback.format_exception(err)))
            print(f"ERROR: {type(err).__name__}: {err}\n(full traceback in {path})", file=sys.stderr)
            raise
        finally:
            root.removeHandler(handler)
