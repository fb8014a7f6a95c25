"""One folder per cluster (``cluster_00/``, ..., ``noise/``) holding symbolic links to the user's
files, or copies; items with no file of their own (a digit, a feature row, a video frame) are
listed in the cluster's ``members.csv`` instead."""

from __future__ import annotations

import csv
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

NOISE = -1
MARKER = ".clusterbench-export"  # says a folder holds an export, so a new export may replace it


@dataclass
class Member:
    index: int
    source: str
    row: dict  # the whole assignments.csv row
    file: Path | None = None  # the user's file, when the item is one that exists
    placed: str | None = None  # its path inside the export (relative to the export folder)


@dataclass
class Cluster:
    id: int
    members: list[Member] = field(default_factory=list)

    @property
    def folder(self) -> str:
        return "noise" if self.id == NOISE else f"cluster_{self.id:02d}"

    @property
    def size(self) -> int:
        return len(self.members)


def clusters_of(rows: list[dict], root: str | None) -> list[Cluster]:
    """The assignments grouped by cluster, largest first and noise last; each member's file is
    ``root/source`` where that is an existing file inside ``root``."""
    base = Path(os.path.abspath(root)) if root and Path(root).is_dir() else None
    by_id: dict[int, Cluster] = {}
    for row in rows:
        source = row.get("source") or f"#{row['index']}"
        member = Member(int(row["index"]), source, row)
        if base is not None:
            path = Path(os.path.normpath(base / source))  # the user's path; their own links stay links
            if path.is_relative_to(base) and path.is_file():
                member.file = path
        by_id.setdefault(int(row["cluster"]), Cluster(int(row["cluster"]))).members.append(member)
    return sorted(by_id.values(), key=lambda c: (c.id == NOISE, -c.size, c.id))


def prepare_out(out: Path) -> None:
    """Make ``out`` ready: new, empty, or an earlier export (replaced). Anything else is refused,
    so an export never mixes with or deletes the user's own files."""
    from clusterbench.core.errors import UserError

    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise UserError(f"--out {out}: folder is not empty; give a new or empty folder")
        for entry in out.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {out}: cannot make the folder ({e.strerror or e})") from None
    (out / MARKER).write_text("written by clusterbench export; a new export into this folder replaces it\n")


def write_folders(clusters: list[Cluster], out: Path, copy: bool = False) -> dict[str, int]:
    """The cluster folders; returns counts (linked or copied files, items listed in members.csv)."""
    counts = {"files": 0, "listed": 0}
    for cluster in clusters:
        folder = out / cluster.folder
        folder.mkdir()
        listed = []
        for m in cluster.members:
            if m.file is None:
                listed.append(m)
                continue
            target = folder / m.source  # keeps the user's sub-folders: cats/1.png and dogs/1.png both fit
            target.parent.mkdir(parents=True, exist_ok=True)
            if copy:
                shutil.copy2(m.file, target)
            else:
                os.symlink(m.file, target)
            m.placed = target.relative_to(out).as_posix()
            counts["files"] += 1
        if listed:
            write_members(listed, folder / "members.csv")
            counts["listed"] += len(listed)
    return counts


def write_members(members: list[Member], path: Path) -> None:
    columns = list(dict.fromkeys(["index", "source", *members[0].row]))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows({**m.row, "index": m.index, "source": m.source} for m in members)
