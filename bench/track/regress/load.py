"""A side named on the command line: a ``run --json`` file, a baseline file, a results folder or a
suite run's id (in the results folder given with ``--results``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from clusterbench.core.errors import UserError

from . import baseline
from .sides import Side, from_summary

RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def load_side(name: str, results: Path, experiment: str | None = None, revision: str | None = None) -> Side:
    path = Path(name).expanduser()
    if path.is_dir():
        from .store import from_store

        return from_store(path.resolve(), experiment, revision)
    if path.is_file():
        return _from_file(path)
    if RUN_ID.match(name):
        from .store import from_run

        return from_run(results, name)
    raise UserError(f"{name}: no such file, results folder or suite run id")


def _from_file(path: Path) -> Side:
    try:
        obj = json.loads(path.read_text())
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not JSON ({e})") from None
    if baseline.is_baseline(obj):
        return baseline.from_json(obj, str(path))
    if isinstance(obj, dict) and isinstance(obj.get("cells"), list):
        return from_summary(obj, str(path))
    raise UserError(f"{path}: neither a 'clusterbench run --json' summary nor a baseline file")
