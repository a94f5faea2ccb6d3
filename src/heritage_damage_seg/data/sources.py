"""The dataset formats, one registry entry each: how ``auto`` recognises it, which files the
prepare rule takes as inputs, what a config must hold for it, and the module that reads it into
the cache. The schema's ``dataset.format`` enum, the config checks, the workflow's rules and the
prepare script all read :data:`SOURCES`; a new format is one reading module and one entry here
(a test holds the schema's enum to the registry).

Light on purpose (no PIL, pandas, pyarrow or pyvips): the workflow imports it at every parse, and
the reading modules are imported only when a cache is built."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class DatasetError(ValueError):
    """A problem with the user's data: the message names the file and what to do about it."""


@dataclass(frozen=True)
class Source:
    """One dataset format. ``recognises(root, dataset)``: whether ``format: auto`` picks it for
    ``dataset.path`` = ``root``; ``inputs(root, dataset)``: the prepare rule's named inputs;
    ``problem(root, dataset)``: what is wrong with the config for it (None when nothing is);
    ``module``: where ``cache_from_inputs(inputs, out_dir, **settings)`` reads it."""

    recognises: Callable[[Path, Mapping[str, Any]], bool]
    inputs: Callable[[Path, Mapping[str, Any]], dict[str, Any]]
    problem: Callable[[Path, Mapping[str, Any]], str | None]
    module: str


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


def _is_parquet(root: Path, dataset: Mapping[str, Any]) -> bool:
    """A .parquet file, or a folder without ``images_dir`` that holds .parquet files (as the
    dataset hub downloads them)."""
    if root.is_file():
        return root.suffix == ".parquet"
    return (
        root.is_dir()
        and not (root / dataset["images_dir"]).is_dir()
        and next(root.rglob("*.parquet"), None) is not None
    )


def _parquet_inputs(root: Path, dataset: Mapping[str, Any]) -> dict[str, Any]:
    return {"shards": [str(shard) for shard in find_shards(root)]}


def _parquet_problem(root: Path, dataset: Mapping[str, Any]) -> str | None:
    if root.is_file() or next(root.rglob("*.parquet"), None):
        return None
    return f"dataset.path: no .parquet files in {root}: point it at the downloaded shards"


def _folder_inputs(root: Path, dataset: Mapping[str, Any]) -> dict[str, Any]:
    inputs = {
        "images": str(root / dataset["images_dir"]),
        "masks": str(root / dataset["masks_dir"]),
    }
    if dataset.get("metadata"):
        inputs["metadata"] = str(root / dataset["metadata"])
    return inputs


def _folder_problem(root: Path, dataset: Mapping[str, Any]) -> str | None:
    for key in ("images_dir", "masks_dir"):
        if not (root / dataset[key]).is_dir():
            return (
                f"dataset.{key}: folder {root / dataset[key]} does not exist: fix dataset.{key} "
                "(or dataset.format: parquet for parquet shards)"
            )
    if dataset.get("metadata") and not (root / dataset["metadata"]).is_file():
        return f"dataset.metadata: file {root / dataset['metadata']} does not exist: fix it or set it to null"
    return None


# In the order ``auto`` tries them; folder comes last and takes whatever the others do not.
SOURCES: dict[str, Source] = {
    "parquet": Source(
        _is_parquet, _parquet_inputs, _parquet_problem, "heritage_damage_seg.data.parquet"
    ),
    "folder": Source(
        lambda root, dataset: True,
        _folder_inputs,
        _folder_problem,
        "heritage_damage_seg.data.folder",
    ),
}


def dataset_format(path: str | os.PathLike[str], images_dir: str, chosen: str = "auto") -> str:
    """The format of the dataset at ``path``: ``chosen`` itself unless it is ``auto``, else the
    first registry entry that recognises it."""
    if chosen != "auto":
        return chosen
    dataset = {"images_dir": images_dir}
    return next(name for name, source in SOURCES.items() if source.recognises(Path(path), dataset))


def configured_source(dataset: Mapping[str, Any]) -> tuple[str, Source]:
    """The format a validated ``dataset`` config section names (or ``auto`` finds) and its entry.
    ``dataset.path: null`` (the synthetic data) is a folder dataset."""
    if dataset["path"] is None:
        return "folder", SOURCES["folder"]
    name = dataset_format(dataset["path"], dataset["images_dir"], dataset["format"])
    return name, SOURCES[name]


def build_cache(
    format_name: str, inputs: Mapping[str, Any], out_dir: str | os.PathLike[str], **settings: Any
) -> Any:
    """The prepared cache of a ``format_name`` dataset from the prepare rule's ``inputs`` (the
    index, as a DataFrame; ``settings``: size, workers, working_max_side, crops, exif_orientation)."""
    reader = importlib.import_module(SOURCES[format_name].module)
    return reader.cache_from_inputs(inputs, out_dir, **settings)
