"""ARTeFACT as published: parquet shards with the images and annotations embedded as encoded bytes.

Columns (the dataset card's schema): ``id``, ``image`` and ``annotation`` / ``annotation_rgb``
(each a struct of ``bytes`` and ``path``, the Hugging Face image encoding), ``material``,
``content``, ``type`` and text descriptions. The shards are read one row group at a time and only
the columns needed, so the ~13.5 GB dataset never sits in memory: first the small metadata
columns of every shard (to fix the order of the cache), then, per worker, one row group's images.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from heritage_damage_seg.data.decode import DatasetError

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
