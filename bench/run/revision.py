"""The revision a suite run measures: a label given with ``run --revision``, else the git commit of
the repository holding the suite file (a user's own repository), else of the working directory."""

from __future__ import annotations

import subprocess
from pathlib import Path

REVISION_TAG = "clusterbench.revision"
DIRTY_TAG = "clusterbench.revision_dirty"


def _git(folder: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_revision(folder: Path) -> tuple[str, bool] | None:
    """(commit, dirty) of the repository holding ``folder``, or None outside one (or without git)."""
    commit = _git(folder, "rev-parse", "HEAD")
    if not commit:
        return None
    changed = _git(folder, "status", "--porcelain", "--untracked-files=no")
    return commit, bool(changed)


def suite_revision(suite_source: str, label: str | None = None, cwd: Path | None = None) -> dict[str, str]:
    """Tags naming what was measured: the label, or the short commit (``unknown`` outside git),
    and whether the checkout had uncommitted changes."""
    if label:
        return {REVISION_TAG: label}
    source = Path(suite_source).expanduser()
    folder = source.parent if source.is_file() else Path(cwd or Path.cwd())
    found = git_revision(folder) or (git_revision(Path(cwd or Path.cwd())) if source.is_file() else None)
    if found is None:
        return {REVISION_TAG: "unknown"}
    commit, dirty = found
    return {REVISION_TAG: commit[:12], DIRTY_TAG: "true" if dirty else "false"}
