"""Every command's values are checked as the command line is read, by the same declarations as
spec parameters: one line ``clusterbench: error: ...``, exit status 2, nothing run, nothing made."""

from __future__ import annotations

import argparse
from typing import Annotated

import pytest

from clusterbench.cli import build_parser, main
from clusterbench.core.arguments import Address, Closest, Port, value

GRID = ["-d", "digits:limit=200", "-e", "pixels", "-c", "kmeans", "--k", "10"]


@pytest.fixture
def place(tmp_path):
    """A file where a folder would be needed, and a folder where a file would be needed."""
    (tmp_path / "file").write_text("in the way")
    (tmp_path / "folder").mkdir()
    return tmp_path


CASES = [
    (["run", *GRID, "--seed", "-1"], "--seed -1 must be >= 0"),
    (["run", *GRID, "--seed", "one"], "--seed one must be an integer >= 0"),
    (["run", *GRID, "--explain", "-2"], "--explain -2 must be >= 0"),
    (["run", *GRID, "--executor", "ray", "--ray-address", "host:notaport"],
     "--ray-address host:notaport is not HOST:PORT, ray://HOST:PORT or auto: port 'notaport' is not a number in "
     "[1, 65535]"),
    (["run", *GRID, "--ray-address", "http://head:6379"],
     "--ray-address http://head:6379 is not allowed: scheme http:// is not ray://"),
    (["run", *GRID, "--json", "{tmp}/folder"], "--json {tmp}/folder cannot be written: {tmp}/folder is a folder where "
     "a file is needed"),
    (["run", *GRID, "--results", "{tmp}/file/results"], "--results {tmp}/file/results cannot be written: {tmp}/file "
     "is a file where a folder is needed"),
    (["report", "--results", "{tmp}/MISSING"], "--results {tmp}/MISSING does not exist (nothing has run there; name "
     "the results folder of a run, or give --tracking-uri)"),
    (["report", "--results", "{tmp}", "--html", "{tmp}/folder"], "--html {tmp}/folder cannot be written: "
     "{tmp}/folder is a folder where a file is needed"),
    (["explain", "-d", "digits", "-e", "pixels", "--n", "0"], "--n 0 must be >= 1"),
    (["explain", "-d", "digits", "-e", "pixels", "--topk", "0"], "--topk 0 must be >= 1"),
    (["explain", "-d", "digits", "-e", "pixels", "--seed", "-5"], "--seed -5 must be >= 0"),
    (["explain", "-d", "digits", "-e", "pixels", "--out", "{tmp}/file/out"], "--out {tmp}/file/out cannot be "
     "written: {tmp}/file is a file where a folder is needed"),
    (["export", "--out", "{tmp}/file/out"], "--out {tmp}/file/out cannot be written: {tmp}/file is a file where a "
     "folder is needed"),
    (["ui", "--port", "0"], "--port 0 must be in [1, 65535]"),
    (["ui", "--port", "http"], "--port http must be an integer in [1, 65535]"),
    (["ui", "--workers", "0"], "--workers 0 must be >= 1"),
    (["ui", "--host", "my host"], "--host my host is not allowed: host 'my host' is not a host name or an IP address"),
    (["server", "--port", "70000"], "--port 70000 must be in [1, 65535]"),
    (["list", "clusterer"], "what: invalid choice: 'clusterer' (choose from datasets, embedders, clusterers, "
     "k-estimators)"),
    (["run", "--sed", "1"], "unrecognized arguments: --sed"),
]


@pytest.mark.parametrize(("argv", "line"), CASES, ids=[" ".join(a[:1] + a[-2:]) for a, _ in CASES])
def test_a_bad_value_is_one_line_before_anything_runs(argv, line, place, capsys):
    tmp = str(place)
    before = sorted(p.name for p in place.iterdir())
    assert main([a.replace("{tmp}", tmp) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.replace("'", "") == f"clusterbench: error: {line.replace('{tmp}', tmp)}\n".replace("'", "")
    assert sorted(p.name for p in place.iterdir()) == before  # nothing made


@pytest.mark.parametrize("command", ["compare", "baseline", "history"])
def test_commands_that_only_read_refuse_a_missing_results_folder(command, tmp_path, capsys):
    if command not in build_parser()._subparsers._group_actions[0].choices:  # third-party: argparse's commands
        pytest.skip(f"no {command} command in this build")
    args = {"compare": ["a.json", "b.json"], "baseline": ["--out", str(tmp_path / "b.json")],
            "history": ["--html", str(tmp_path / "h.html")]}[command]
    assert main([command, *args, "--results", str(tmp_path / "MISSING")]) == 2
    assert capsys.readouterr().err == f"clusterbench: error: --results {tmp_path / 'MISSING'} does not exist\n"
    assert list(tmp_path.iterdir()) == []


def test_good_values_are_read_as_their_declarations_type():
    args = build_parser().parse_args(["run", "--seed", "3", "--seed", "0", "--explain", "2",
                                      "--ray-address", "ray://head:10001"])
    assert args.seed == [3, 0] and args.explain == 2 and args.ray_address == "ray://head:10001"
    ui = build_parser().parse_args(["ui", "--port", "8080", "--host", "0.0.0.0", "--workers", "2"])
    assert (ui.port, ui.host, ui.workers) == (8080, "0.0.0.0", 2)
    assert build_parser().parse_args(["ui"]).port == 5000  # defaults are not re-read


def test_the_checks_are_the_spec_declarations():
    """What a later command uses: ``type=value(...)`` with a params declaration."""
    port = value(Port)
    assert port("443") == 443
    with pytest.raises(argparse.ArgumentTypeError, match=r"^65536 must be in \[1, 65535\]$"):
        port("65536")
    head = value(Annotated[str, Address(("ray",), ("auto",))])
    assert head("auto") == "auto" and head("10.0.0.2:6379") == "10.0.0.2:6379"
    sort = value(Annotated[str, Closest(("nmi", "ari", "silhouette"))])
    with pytest.raises(argparse.ArgumentTypeError, match=r"^nmii is not a known choice \(did you mean nmi\?\)"):
        sort("nmii")
