"""clusterbench compare / baseline / history on real suite runs: a real sqlite store, real digits,
two revisions of a grid whose second run has a slowdown injected into one clusterer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from mlflow.tracking import MlflowClient

from clusterbench.cli import main
from clusterbench.track.regress.compare import noise_tolerance
from clusterbench.track.regress.sides import Stat
from clusterbench.track.tracking import default_tracking_uri

SLEEPY = "digits|pixels|sklearn:estimator=regress_sleepy.SleepyKMeans|k=default|reduce=none"
KMEANS = "digits|pixels|kmeans:n_init=1|k=default|reduce=none"
GRID = ("-d", "digits", "-e", "pixels", "-c", "sklearn:estimator=regress_sleepy.SleepyKMeans", "-c", "kmeans:n_init=1",
        "--seed", "0", "--seed", "1", "--pictures", "false")


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """Revision r1, then revision r2 with every cell rerun and SleepyKMeans made 1.5 s slower."""
    from conftest import run_cli_once

    root = tmp_path_factory.mktemp("compare")
    results = root / "results"
    status, _, err, _ = run_cli_once(results, *GRID, "--revision", "r1", json_name="base.json")
    assert status == 0, err
    os.environ["CLUSTERBENCH_TEST_DELAY"] = "1.5"
    try:
        status, _, err, _ = run_cli_once(results, *GRID, "--revision", "r2", "--force", json_name="head.json")
    finally:
        del os.environ["CLUSTERBENCH_TEST_DELAY"]
    assert status == 0, err
    return root


def _compare(capsys, *args):
    status = main(["compare", *map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


def _md(key: str) -> str:
    """A cell key as the Markdown table shows it (pipes escaped, as GitHub tables need)."""
    return key.replace("|", "\\|")


def _regressions(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(("REGRESSED:", "CHANGED:"))]


def _scaled(summary: dict, factor: float, calibrated: bool = True) -> dict:
    """The same run on a machine ``factor`` times slower: every timing and the calibration scale."""
    out = json.loads(json.dumps(summary))
    out["calibration_seconds"] = summary["calibration_seconds"] * factor if calibrated else None
    for cell in out["cells"]:
        m = cell["metrics"]
        for name in ("embed_seconds", "cluster_seconds"):
            m[name] *= factor
        m["throughput_img_per_s"] /= factor
    return out


def test_a_run_records_its_revision_and_calibration(measured):
    base = json.loads((measured / "base.json").read_text())
    assert base["revision"] == "r1" and base["calibration_seconds"] > 0
    client = MlflowClient(default_tracking_uri(measured / "results"))
    exp = client.get_experiment_by_name("clusterbench/digits x pixels x sklearn+kmeans")
    suites = client.search_runs([exp.experiment_id], "tags.`clusterbench.role` = 'suite'",
                                order_by=["attributes.start_time ASC"])
    assert [r.data.tags["clusterbench.revision"] for r in suites] == ["r1", "r2"]
    assert suites[0].data.metrics["calibration_seconds"] == pytest.approx(base["calibration_seconds"])
    assert float(suites[0].data.params["calibration_seconds"]) == pytest.approx(base["calibration_seconds"], rel=1e-5)


def test_identical_inputs_pass(measured, capsys):
    status, out, _ = _compare(capsys, measured / "base.json", measured / "base.json")
    assert status == 0 and not _regressions(out)
    assert "no regression" in out and f"`{_md(KMEANS)}` | nmi |" in out
    status, out, _ = _compare(capsys, measured / "results", measured / "results")
    assert status == 0, out


def test_a_baseline_with_nmi_higher_by_0_1_fails_naming_the_configuration(measured, tmp_path, capsys):
    path = tmp_path / "baseline.json"
    assert main(["baseline", "--results", str(measured / "results"), "--revision", "r1", "--out", str(path)]) == 0
    baseline = json.loads(path.read_text())
    baseline["configurations"][KMEANS]["metrics"]["nmi"]["mean"] += 0.1
    path.write_text(json.dumps(baseline))
    status, out, _ = _compare(capsys, path, measured / "base.json")
    assert status == 1
    assert len(_regressions(out)) == 1 and _regressions(out)[0].startswith(f"REGRESSED: {KMEANS} nmi: ")
    assert "| **regressed** |" in out
    # unchanged, the same baseline passes against the results it came from, and the file alone suffices
    baseline["configurations"][KMEANS]["metrics"]["nmi"]["mean"] -= 0.1
    path.write_text(json.dumps(baseline))
    assert _compare(capsys, path, measured / "base.json")[0] == 0
    assert _compare(capsys, path, measured / "results", "--head-revision", "r1")[0] == 0


def test_an_injected_slowdown_is_flagged_and_a_slower_machine_is_not(measured, tmp_path, capsys):
    base, head = (json.loads((measured / f"{n}.json").read_text()) for n in ("base", "head"))
    status, out, _ = _compare(capsys, measured / "base.json", measured / "head.json")
    assert status == 1
    assert any(line.startswith(f"REGRESSED: {SLEEPY} cluster_seconds: ") for line in _regressions(out))
    assert not [line for line in _regressions(out) if " nmi: " in line or " k: " in line]
    # the slow run again on a machine 3x slower (calibration included): nothing more to flag
    (tmp_path / "slow.json").write_text(json.dumps(_scaled(head, 3.0)))
    status, out, _ = _compare(capsys, measured / "head.json", tmp_path / "slow.json")
    assert status == 0, _regressions(out)
    assert "calibrated (machine x3.00)" in out
    # the injected slowdown still shows when both sides ran on the slower machine
    (tmp_path / "slow_base.json").write_text(json.dumps(_scaled(base, 3.0)))
    status, out, _ = _compare(capsys, tmp_path / "slow_base.json", tmp_path / "slow.json")
    assert status == 1 and any(f"{SLEEPY} cluster_seconds" in line for line in _regressions(out))
    # without the calibration the slower machine reads as a regression: the calibration is what spares it
    (tmp_path / "uncal.json").write_text(json.dumps(_scaled(head, 3.0, calibrated=False)))
    status, out, _ = _compare(capsys, measured / "head.json", tmp_path / "uncal.json")
    assert status == 1 and any(f"{SLEEPY} cluster_seconds" in line for line in _regressions(out))


def test_results_folder_revisions_and_suite_runs_compare_too(measured, capsys):
    status, out, _ = _compare(capsys, measured / "results", measured / "results", "--base-revision", "r1",
                              "--head-revision", "r2")
    assert status == 1 and any(f"{SLEEPY} cluster_seconds" in line for line in _regressions(out))
    assert "@ r1" in out and "@ r2" in out
    client = MlflowClient(default_tracking_uri(measured / "results"))
    suites = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                "tags.`clusterbench.role` = 'suite'", order_by=["attributes.start_time ASC"])
    status, out, _ = _compare(capsys, suites[0].info.run_id, suites[1].info.run_id, "--results", measured / "results")
    assert status == 1 and any(f"{SLEEPY} cluster_seconds" in line for line in _regressions(out))


def test_tolerances_from_the_command_line_and_the_suite_gate(measured, tmp_path, capsys):
    head = json.loads((measured / "base.json").read_text())
    for cell in head["cells"]:
        if cell["key"].startswith("digits|pixels|kmeans"):
            cell["metrics"]["nmi"] -= 0.05
    (tmp_path / "worse.json").write_text(json.dumps(head))
    assert _compare(capsys, measured / "base.json", tmp_path / "worse.json")[0] == 1
    assert _compare(capsys, measured / "base.json", tmp_path / "worse.json", "--tolerance", "nmi=0.06")[0] == 0
    suite = tmp_path / "gated.toml"
    suite.write_text('name = "gated"\ndatasets = ["digits"]\nembedders = ["pixels"]\nclusterers = ["kmeans"]\n'
                     "[gate]\nnmi = 0.06\nspeed = 2.0\n")
    from clusterbench.core.suite import load_suite

    assert load_suite(suite).name == "gated"  # [gate] is a suite key
    assert _compare(capsys, measured / "base.json", tmp_path / "worse.json", "--suite", suite)[0] == 0
    # the command line overrides the suite file
    assert _compare(capsys, measured / "base.json", tmp_path / "worse.json", "--suite", suite,
                    "--tolerance", "nmi=0.01")[0] == 1


def test_seed_noise_widens_the_quality_tolerance():
    base, head = Stat(0.70, 0.05, 5), Stat(0.65, 0.05, 5)
    assert noise_tolerance(base, head, 0.01, 3.0) == pytest.approx(3 * 0.05 * (2 / 5) ** 0.5)  # 0.0949 > 0.05
    assert noise_tolerance(Stat(0.70, 0.0, 1), Stat(0.65, 0.0, 1), 0.01, 3.0) == 0.01  # one seed a side
    assert noise_tolerance(Stat(0.70, 0.0, 3), Stat(0.65, 0.0, 3), 0.01, 3.0) == 0.01  # no spread: the floor


@pytest.mark.parametrize("args, message", [
    (["missing.json", "missing.json"], "missing.json: no such file, results folder or suite run id"),
    (["{base}", "{results}", "--experiment", "nope"], "--experiment nope: no such experiment in"),
    (["{base}", "{base}", "--tolerance", "nmi=-1"], "--tolerance nmi='-1': expected a number >= 0"),
    (["{base}", "{base}", "--tolerance", "speed=0.5"], "speed and memory take a factor >= 1"),
    (["{base}", "{base}", "--tolerance", "nmii=0.1"], "--tolerance nmii: unknown metric"),
    (["{base}", "{base}", "--revision", "r9", "--markdown", "/no/such/dir/x.md"], "--markdown /no/such/dir/x.md"),
    (["{base}", "{results}", "--revision", "r9"], "--revision r9: no finished suite run of that revision"),
])
def test_usage_mistakes_are_one_line_and_exit_2(measured, capsys, args, message):
    args = [a.format(base=measured / "base.json", results=measured / "results") for a in args]
    status, out, err = _compare(capsys, *args)
    assert status == 2 and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_markdown_file_and_github_step_summary(measured, tmp_path, capsys, monkeypatch):
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    status, out, _ = _compare(capsys, measured / "base.json", measured / "head.json", "--markdown", tmp_path / "c.md")
    table = (tmp_path / "c.md").read_text()
    assert status == 1 and table.startswith("### clusterbench compare: ")
    assert "| configuration | metric | base | head | delta | verdict | note |" in table
    assert summary.read_text().startswith("earlier step\n") and table in summary.read_text()


def test_a_baseline_file_is_small_sorted_and_one_metric_a_line(measured, tmp_path):
    path = tmp_path / "b.json"
    assert main(["baseline", str(measured / "base.json"), "--out", str(path)]) == 0
    text = path.read_text()
    obj = json.loads(text)
    assert json.dumps(obj, sort_keys=True, indent=2).replace(" ", "").replace("\n", "") == \
        text.replace(" ", "").replace("\n", "")  # sorted keys
    assert '"nmi": { "mean": ' in text and obj["configurations"][KMEANS]["metrics"]["nmi"]["n"] == 2
    assert obj["revision"] == "r1" and obj["calibration_seconds"] > 0
    # from the store: library versions too
    assert main(["baseline", "--results", str(measured / "results"), "--revision", "r2", "--out", str(path)]) == 0
    obj = json.loads(path.read_text())
    assert obj["revision"] == "r2" and "numpy" in obj["versions"]
    assert set(obj["configurations"]) == {SLEEPY, KMEANS, "digits x pixels x sklearn+kmeans (recommendation)"}


def test_history_page_marks_the_regression(measured, tmp_path):
    page = tmp_path / "history.html"
    assert main(["history", "--results", str(measured / "results"), "--html", str(page)]) == 0
    html = page.read_text()
    assert html.count("<tr><td>") == 2 and "<code>r1</code>" in html and "<code>r2</code>" in html
    assert f"cluster_seconds of <code>{SLEEPY}</code>" in html
    assert html.count("data:image/png;base64,") >= 2 * 10 and "cluster_seconds regressed" in html
    assert main(["history", "--results", str(measured / "results"), "--metric", "nmi", "--html", str(page)]) == 0
    assert page.read_text().count("data:image/png;base64,") == 2  # one plot per configuration


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_history_page_in_chromium_shows_the_red_ring(measured, tmp_path):
    import numpy as np
    from PIL import Image

    page, shot = tmp_path / "history.html", tmp_path / "shot.png"
    assert main(["history", "--results", str(measured / "results"), "--html", str(page)]) == 0
    subprocess.run(["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1400",
                    "--virtual-time-budget=8000", f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    red = (pixels[..., 0] > 180) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)
    assert red.sum() > 200  # the flagged plot's frame and ring, the flagged list


def test_configurations_on_one_side_only_are_listed_not_failed(measured, tmp_path, capsys):
    head = json.loads((measured / "base.json").read_text())
    head["cells"] = [c for c in head["cells"] if "SleepyKMeans" not in c["key"]]
    (tmp_path / "fewer.json").write_text(json.dumps(head))
    status, out, _ = _compare(capsys, measured / "base.json", tmp_path / "fewer.json")
    assert status == 0
    assert f"only in base (not compared): `{SLEEPY}`" in out and "SleepyKMeans" not in out.split("only in")[0]
    status, out, _ = _compare(capsys, tmp_path / "fewer.json", measured / "base.json")
    assert status == 0 and f"only in head (not compared): `{SLEEPY}`" in out
