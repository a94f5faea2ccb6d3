"""Where the data comes from, decided without reading it: the dataset's format and its parquet
shards. Light on purpose (no PIL, pandas or pyvips): the workflow imports it at every parse."""

from __future__ import annotations

import os
from pathlib import Path


class DatasetError(ValueError):
    """A problem with the user's data: the message names the file and what to do about it."""


def dataset_format(path: str | os.PathLike[str], images_dir: str, chosen: str = "auto") -> str:
    """``folder`` or ``parquet``; ``auto``: parquet when ``path`` is a .parquet file, or a folder
    without ``images_dir`` that holds .parquet files (as the dataset hub downloads them)."""
    if chosen != "auto":
        return chosen
    path = Path(path)
    if path.is_file() and path.suffix == ".parquet":
        return "parquet"
    if (
        path.is_dir()
        and not (path / images_dir).is_dir()
        and next(path.rglob("*.parquet"), None) is not None
    ):
        return "parquet"
    return "folder"


def find_shards(path: str | os.PathLike[str]) -> list[Path]:
    """Every ``*.parquet`` file at ``path`` (a file, or a folder searched recursively), sorted."""
    path = Path(path)
    if path.is_file():
        return [path]
    shards = sorted(path.rglob("*.parquet")) if path.is_dir() else []
    if not shards:
        raise DatasetError(
            f"no .parquet files found at {path}: set dataset.path to the folder the shards were downloaded to "
            "(or dataset.format: folder for image/mask folders)"
        )
    return shards
