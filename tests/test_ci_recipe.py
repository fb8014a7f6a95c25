"""The CI jobs in docs/ci.md run: the GitHub Actions job's steps (all but installing and posting the
comment) on the quick suite, gated against the committed baseline; the GitLab job runs the same
clusterbench commands."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "ci.md").read_text()


def _job(marker: str) -> dict:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC, flags=re.S)
    return yaml.safe_load(next(b for b in blocks if marker in b))


def _commands(lines) -> list[str]:
    return [line.strip() for text in lines for line in text.splitlines() if line.strip().startswith("clusterbench ")]


def test_both_jobs_run_the_same_clusterbench_commands():
    github = _job(".github/workflows/")["jobs"]["suite"]
    gitlab = _job(".gitlab-ci.yml")["clustering-regressions"]
    steps = [s["run"] for s in github["steps"] if "run" in s]
    assert _commands(steps) == _commands(gitlab["script"] + gitlab["after_script"][:1])
    assert github["env"] == {k: v for k, v in gitlab["variables"].items()}


@pytest.mark.slow
def test_the_github_job_runs_the_quick_suite_and_passes_against_the_committed_baseline(tmp_path):
    job = _job(".github/workflows/")["jobs"]["suite"]
    env = {**os.environ, **job["env"], "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           # a shared 2-core test machine swings more than a CI runner does
           "SPEED": "4"}
    for name in ("SUITE", "BASELINE"):  # the job's files, where the checkout would have them
        (tmp_path / job["env"][name]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / job["env"][name], tmp_path / job["env"][name])
    ran = []
    for step in job["steps"]:
        if "run" not in step or step.get("name") == "Install" or step["run"].startswith("gh "):
            continue  # installing is the user's own pin; posting needs GitHub
        done = subprocess.run(["bash", "-eo", "pipefail", "-c", step["run"]], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=900)
        ran.append(step["name"])
        assert done.returncode == 0, f"{step['name']}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert ran == ["Run the suite", "Compare with the baseline", "History page"]
    table = (tmp_path / "compare.md").read_text()
    assert table.startswith("### clusterbench compare: no regression")
    assert r"`digits\|pixels\|kmeans:n_init=5\|k=default\|reduce=none` | nmi | 0.74 | 0.74 | +0.0000 | ok" in table
    assert table in (tmp_path / "summary.md").read_text()
    assert "<code>" in (tmp_path / "history.html").read_text()
