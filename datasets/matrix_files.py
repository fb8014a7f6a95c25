"""Reading a 2-D matrix from .npy, .npz or .parquet without copying it wholesale into RAM.

- ``.npy``: ``np.load(mmap_mode="r")``.
- ``.npz`` written by ``np.savez`` (stored, not compressed): the member is memory-mapped at its
  offset inside the zip. numpy has no call for this (``np.load`` of an .npz always reads the
  member into memory), hence the few lines below; a compressed member is decoded once into a
  memory-mapped scratch file.
- ``.parquet``: columnar and encoded, so it cannot be mapped as is; it is decoded one row group
  at a time (pyarrow) into a memory-mapped scratch ``.npy`` reused while the file is unchanged.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from clusterbench.core.errors import DataError

MATRIX_SUFFIXES = (".npy", ".npz", ".parquet")
FEATURE_KEYS = ("features", "embeddings", "X", "x")  # the array taken from an .npz without key=
LABEL_COLUMNS = ("label", "labels", "target", "y")  # parquet columns that are not features
NAME_KEYS = ("names", "name", "paths", "path", "files", "file", "filename", "id")  # a row's name, in .npz or .parquet


def suffix(path: str) -> str:
    return Path(path).suffix.lower()


def open_matrix(path: str, key: str | None = None) -> tuple[np.ndarray, str]:
    """The matrix at ``path`` (read-only, memory-mapped where the format allows) and how it was opened."""
    kind = suffix(path)
    try:
        if kind == ".npy":
            return np.load(path, mmap_mode="r", allow_pickle=False), "memory-mapped"
        if kind == ".npz":
            return _npz_member(path, key)
        if kind == ".parquet":
            return _parquet_matrix(path), "decoded to a memory-mapped scratch file"
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(f"features: {path}: cannot read it ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    raise DataError(f"features: {path}: unknown format {kind!r}; expected one of {', '.join(MATRIX_SUFFIXES)}")


def npz_member_names(path: str) -> list[str]:
    with zipfile.ZipFile(path) as z:
        return [n[:-4] for n in z.namelist() if n.endswith(".npy")]


def _npz_member(path: str, key: str | None) -> tuple[np.ndarray, str]:
    names = npz_member_names(path)
    if key is None:
        key = next((k for k in FEATURE_KEYS if k in names), names[0] if len(names) == 1 else None)
        if key is None:
            raise DataError(f"features: {path} holds arrays {names}; name the features with key=")
    elif key not in names:
        raise DataError(f"features: {path} has no array {key!r} (it holds {', '.join(names)})")
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(f"{key}.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            with z.open(info) as member:
                return _to_scratch(path, key, np.lib.format.read_array(member, allow_pickle=False)), \
                    "decoded to a memory-mapped scratch file (compressed .npz)"
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)  # the zip local file header: name and extra lengths at bytes 26..30
        name_len, extra_len = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
    if dtype.hasobject:
        raise DataError(f"features: {path}[{key}] holds Python objects, not numbers")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C"), "memory-mapped"


def _scratch_path(path: str, tag: str) -> Path:
    stat = os.stat(path)
    name = f"{Path(path).stem}-{tag}-{stat.st_size}-{int(stat.st_mtime_ns)}.npy"
    folder = Path(tempfile.gettempdir()) / "clusterbench-features"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def _to_scratch(path: str, tag: str, array: np.ndarray) -> np.ndarray:
    target = _scratch_path(path, tag)
    if not target.exists():
        out = np.lib.format.open_memmap(str(target) + ".part", mode="w+", dtype=array.dtype, shape=array.shape)
        out[:] = array
        out.flush()
        del out
        os.replace(str(target) + ".part", target)
    return np.load(target, mmap_mode="r")


def parquet_columns(path: str) -> tuple[list[str], list[str], bool]:
    """(feature columns, label columns, whether the features are one list column) of a parquet
    file: its first list column, else its numeric columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    labels = [f.name for f in schema if f.name.lower() in LABEL_COLUMNS]
    lists = [f.name for f in schema if pa.types.is_list(f.type) or pa.types.is_fixed_size_list(f.type)]
    if lists:
        return lists[:1], labels, True
    numeric = [f.name for f in schema if f.name not in labels
               and (pa.types.is_floating(f.type) or pa.types.is_integer(f.type))]
    return numeric, labels, False


def _parquet_matrix(path: str) -> np.ndarray:
    import pyarrow.parquet as pq

    columns, _, is_list = parquet_columns(path)
    if not columns:
        raise DataError(f"features: {path} has no numeric or list column to read features from")
    target = _scratch_path(path, "parquet")
    if target.exists():
        return np.load(target, mmap_mode="r")
    pf = pq.ParquetFile(path)
    n = pf.metadata.num_rows
    first = _rows(pf.read_row_group(0, columns=columns), columns, is_list) if pf.num_row_groups else np.zeros((0, 0), np.float32)
    out = np.lib.format.open_memmap(str(target) + ".part", mode="w+", dtype=np.float32, shape=(n, first.shape[1]))
    row = 0
    for g in range(pf.num_row_groups):
        block = first if g == 0 else _rows(pf.read_row_group(g, columns=columns), columns, is_list)
        out[row:row + len(block)] = block
        row += len(block)
    out.flush()
    del out
    os.replace(str(target) + ".part", target)
    return np.load(target, mmap_mode="r")


def _rows(table, columns: list[str], is_list: bool) -> np.ndarray:
    if is_list:
        values = table.column(columns[0]).combine_chunks()
        flat = values.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        return flat.reshape(len(values), -1)
    return np.stack([table.column(c).to_numpy().astype(np.float32) for c in columns], axis=1)


def stored_names(path: str) -> np.ndarray | None:
    """The row names a matrix file carries itself (an .npz array or a parquet text column named
    like :data:`NAME_KEYS`), as strings; None when it has none."""
    kind = suffix(path)
    if kind == ".npz":
        member = next((k for k in NAME_KEYS if k in npz_member_names(path)), None)
        if member is None:
            return None
        with np.load(path, allow_pickle=False) as z:
            values = z[member]
        return values.astype(str).astype(object) if values.ndim == 1 and values.dtype.kind in "US" else None
    if kind == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
        column = next((f.name for k in NAME_KEYS for f in schema if f.name.lower() == k
                       and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))), None)
        if column is None:
            return None
        return np.asarray(pq.read_table(path, columns=[column]).column(0).to_pylist(), dtype=object)
    return None


def parquet_labels(path: str):
    import pyarrow.parquet as pq

    _, labels, _ = parquet_columns(path)
    return pq.read_table(path, columns=labels[:1]).column(0).to_numpy() if labels else None


def bad_rows(matrix: np.ndarray, chunk: int = 65536) -> tuple[int, int | None]:
    """(number of rows holding NaN or inf, the first such row), scanned in chunks."""
    count, first = 0, None
    for start in range(0, len(matrix), chunk):
        block = np.asarray(matrix[start:start + chunk])
        bad = np.flatnonzero(~np.isfinite(block).all(axis=1))
        if len(bad):
            count += len(bad)
            first = start + int(bad[0]) if first is None else first
    return count, first
