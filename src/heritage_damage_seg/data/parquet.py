"""ARTeFACT as published: parquet shards with the images and annotations embedded as encoded bytes.

Columns (the dataset card's schema): ``id``, ``image`` and ``annotation`` / ``annotation_rgb``
(each a struct of ``bytes`` and ``path``, the Hugging Face image encoding), ``material``,
``content``, ``type`` and text descriptions. The shards are read one row group at a time and only
the columns needed, so the ~13.5 GB dataset never sits in memory: first the small metadata
columns of every shard (to fix the order of the cache), then, per worker, one row group's images.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from heritage_damage_seg.data.cache_writer import (
    DEFAULT_WORKING_MAX_SIDE,
    complete_metadata,
    crop_rows,
    working_dir,
    write_cache,
)
from heritage_damage_seg.data.geometry import CropView
from heritage_damage_seg.data.preparation import (
    Preparation,
    PreparedSample,
    prepare_scan,
    working_paths,
)
from heritage_damage_seg.data.sources import DatasetError, find_shards

log = logging.getLogger(__name__)

METADATA_COLUMNS = ("id", "material", "content", "type", "group")
IMAGE_COLUMN = "image"
MASK_COLUMNS = (
    "annotation",
    "annotation_rgb",
)  # the index mask first; the colour rendering if absent


@dataclass(frozen=True)
class RowGroup:
    shard: Path
    number: int


def read_metadata(shards: list[Path]) -> pd.DataFrame:
    """id, material, content, type (and group if present) of every row, with where it lives:
    ``shard``, ``row_group`` and ``row`` (within the row group). Reads only those columns."""
    frames = []
    for shard in shards:
        try:
            parquet = pq.ParquetFile(shard)
        except Exception as err:  # pyarrow raises several types for a file that is not parquet
            raise DatasetError(
                f"{shard}: cannot read as parquet ({err}): the download is incomplete or corrupt"
            ) from err
        names = set(parquet.schema_arrow.names)
        missing = {"id", IMAGE_COLUMN} - names
        if missing or not names & set(MASK_COLUMNS):
            need = sorted(missing) + ([] if names & set(MASK_COLUMNS) else ["annotation"])
            raise DatasetError(
                f"{shard}: parquet lacks column(s) {need} (has {sorted(names)}): expected ARTeFACT's schema "
                "(id, image, annotation[, annotation_rgb], material, content, type)"
            )
        columns = [c for c in METADATA_COLUMNS if c in names]
        for number in range(parquet.num_row_groups):
            frame = parquet.read_row_group(number, columns=columns).to_pandas()
            frame["shard"], frame["row_group"], frame["row"] = str(shard), number, range(len(frame))
            frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    table["id"] = table["id"].astype(str)
    duplicated = table.loc[table["id"].duplicated(keep=False), "id"].unique().tolist()
    if duplicated:
        raise DatasetError(
            f"ids {duplicated[:5]} appear more than once in {shards[0].parent}: remove the duplicate rows or shards"
        )
    for column in ("material", "content", "type"):
        if column not in table.columns:
            table[column] = ""
    return table


def _encoded(cell: object, what: str) -> bytes | None:
    """The bytes of a Hugging Face image cell (a struct of bytes and path, or plain bytes)."""
    if cell is None:
        return None
    if isinstance(cell, bytes):
        return cell
    if isinstance(cell, dict):
        data = cell.get("bytes")
        if data:
            return data
        if cell.get("path"):
            raise DatasetError(
                f"{what} holds only a path ({cell['path']}), no image bytes: download the parquet "
                "shards with embedded images, or export the dataset as image/mask folders"
            )
    return None


def row_group_samples(group: RowGroup) -> Iterator[tuple[str, bytes, bytes, str]]:
    """(id, image bytes, mask bytes, where) for every row of one row group."""
    parquet = pq.ParquetFile(group.shard)
    names = set(parquet.schema_arrow.names)
    columns = ["id", IMAGE_COLUMN] + [c for c in MASK_COLUMNS if c in names]
    table = parquet.read_row_group(group.number, columns=columns)
    cells = {name: table.column(name).to_pylist() for name in columns}
    del table
    for row, sample_id in enumerate(cells["id"]):
        where = f"{group.shard} row group {group.number} row {row} (id {sample_id})"
        image = _encoded(cells[IMAGE_COLUMN][row], f"{where} image")
        if image is None:
            raise DatasetError(f"{where}: the image cell is empty: remove the row or fix the shard")
        mask = None
        for column in MASK_COLUMNS:
            if (
                column in cells
                and (mask := _encoded(cells[column][row], f"{where} {column}")) is not None
            ):
                break
        if mask is None:
            raise DatasetError(
                f"{where}: neither annotation nor annotation_rgb holds a mask: remove the row"
            )
        yield str(sample_id), image, mask, where


@dataclass(frozen=True)
class _RowGroupJob:
    group: RowGroup
    # id → position of the scan in id order, for the ids of this row group
    positions: dict[str, int]
    work_dir: Path
    how: Preparation

    def __call__(self) -> list[PreparedSample]:
        return [
            sample
            for sample_id, image, mask, where in row_group_samples(self.group)
            for sample in prepare_scan(
                self.positions[sample_id],
                sample_id,
                image,
                mask,
                name=where,
                working=working_paths(self.work_dir, sample_id),
                how=self.how,
            )
        ]


def build_cache(
    shards: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    size: int,
    workers: int = 1,
    working_max_side: int = DEFAULT_WORKING_MAX_SIDE,
    crops: CropView | None = None,
    exif_orientation: str = "auto",
) -> pd.DataFrame:
    """The same cache from ARTeFACT's parquet shards, one row group per job (see module docstring)."""
    how = Preparation(size, working_max_side, crops, exif_orientation)
    if isinstance(shards, (str, os.PathLike)):
        paths = find_shards(shards)  # dataset.path: a shard, or the folder of them
    else:
        paths = [Path(shard) for shard in shards]
    rows = read_metadata(paths).sort_values("id", kind="stable").reset_index(drop=True)
    rows["position"] = np.arange(len(rows))
    out_dir = Path(out_dir)
    work_dir = working_dir(out_dir)
    log.info(
        "preparing %d scans from %d parquet shard(s) (%s) with %d worker(s)",
        len(rows),
        len(paths),
        how.describe(),
        workers,
    )
    jobs = [
        _RowGroupJob(
            RowGroup(Path(shard), int(number)),
            dict(zip(group["id"], group["position"])),
            work_dir,
            how,
        )
        for (shard, number), group in rows.groupby(["shard", "row_group"], sort=True)
    ]
    index = crop_rows(complete_metadata(rows.drop(columns=["position"])), crops)
    return write_cache(out_dir, index, jobs, size=size, workers=workers)


def cache_from_inputs(
    inputs: Any, out_dir: str | os.PathLike[str], **settings: Any
) -> pd.DataFrame:
    """The cache from the prepare rule's inputs (:func:`heritage_damage_seg.data.sources.inputs`)."""
    return build_cache(list(inputs["shards"]), out_dir, **settings)
