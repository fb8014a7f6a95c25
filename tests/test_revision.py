"""A suite run's revision: a label, else the commit of the repository holding the suite file."""

from __future__ import annotations

import subprocess

from clusterbench.run.revision import DIRTY_TAG, REVISION_TAG, suite_revision


def _git(folder, *args):
    subprocess.run(["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                   check=True, capture_output=True)


def test_the_suite_repository_commit_and_its_dirty_flag(tmp_path):
    repo, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    repo.mkdir()
    elsewhere.mkdir()
    suite = repo / "my.toml"
    suite.write_text('name = "mine"\n')
    _git(repo, "init", "-q")
    _git(repo, "add", "my.toml")
    _git(repo, "commit", "-q", "-m", "suite")
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    # the suite file's repository, whatever the working directory
    assert suite_revision(str(suite), cwd=elsewhere) == {REVISION_TAG: commit[:12], DIRTY_TAG: "false"}
    suite.write_text('name = "mine, edited"\n')
    assert suite_revision(str(suite), cwd=elsewhere)[DIRTY_TAG] == "true"
    assert suite_revision(str(suite), "pr-42") == {REVISION_TAG: "pr-42"}
    # a grid from the command line: the working directory's repository, else unknown
    assert suite_revision("command line", cwd=repo)[REVISION_TAG] == commit[:12]
    assert suite_revision("command line", cwd=elsewhere) == {REVISION_TAG: "unknown"}
