"""``clusterbench`` command line: run, list, report, ui.

Exit status: 0 every cell succeeded, 1 some cell failed, 2 usage or configuration error.
User mistakes print one line (``clusterbench: error: ...``), never a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import warnings
from pathlib import Path

from clusterbench.core.arguments import OneLineParser, declare_values
from clusterbench.core.errors import DataWarning, UserError
from clusterbench.core.faults import StoreFault, fault_line
from clusterbench.core.interrupts import request_stop
from clusterbench.track.regress.command import REGRESSION_COMMANDS, add_regression_commands

EXIT_OK, EXIT_CELL_FAILED, EXIT_USAGE = 0, 1, 2
# commands that only read a results folder: its --results must exist, and its store is never created
READING_COMMANDS = {"report", "export", "ui", "compare", "baseline", "history"}


def _results_dir(args) -> Path:
    return Path(args.results or os.environ.get("CLUSTERBENCH_RESULTS", "results")).expanduser().resolve()


def _tracking_uri(args) -> str | None:
    return args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")


def _store_uri(args) -> str:
    """The tracking URI; a results folder's own store, moved or restored from a cache, is first
    pointed at the artifacts in the folder where it is now (clusterbench.track.portable)."""
    from clusterbench.track.portable import relocate_store
    from clusterbench.track.tracking import default_tracking_uri

    uri = _tracking_uri(args) or default_tracking_uri(_results_dir(args))
    relocate_store(uri, _results_dir(args) / "mlartifacts")
    return uri


def _add_run(sub) -> None:
    """``clusterbench run``: a suite or a -d/-e/-c grid, and how it runs."""
    run = sub.add_parser("run", help="run a suite (default: the bundled quick suite) or a grid given with -d/-e/-c")
    run.add_argument("suite", nargs="?", help="suite TOML file or bundled suite name (quick, fashion, seeds)")
    run.add_argument("-d", "--dataset", action="append", default=[], metavar="SPEC", help="dataset spec, repeatable")
    run.add_argument("-e", "--embedder", action="append", default=[], metavar="SPEC", help="embedder spec, repeatable")
    run.add_argument("-c", "--clusterer", action="append", default=[], metavar="SPEC", help="clusterer spec, repeatable")
    run.add_argument("--k", action="append", help="K: an integer, 'auto' (the default k estimator, gap), 'auto:NAME' "
                     "(a k estimator: gap, prediction-strength, stability, ...) or 'semantic'; repeatable, a cell each")
    run.add_argument("--seed", type=int, action="append", help="seed (repeatable; overrides the suite's seeds)")
    run.add_argument("--reduce", help="reducer before clustering, e.g. pca=256,whiten=true,l2=true")
    run.add_argument("--results", help="results directory (default ./results or $CLUSTERBENCH_RESULTS)")
    run.add_argument("--tracking-uri", help="MLflow tracking URI (default sqlite store in the results directory)")
    run.add_argument("--optuna-storage", help="Optuna storage URL (default sqlite:///RESULTS/optuna.db); a PostgreSQL/MySQL "
                     "URL lets processes on several machines work on the same studies")
    run.add_argument("--tune", metavar="KEY=VALUE,...", help="settings for --k auto / semantic, e.g. objective=davies_bouldin,"
                     "n_trials=30,k_max=20 or vectors=PATH,threshold=0.5 (override the suite's [tune] table)")
    run.add_argument("--json", metavar="PATH", help="write a machine-readable summary of every cell")
    run.add_argument("--revision", metavar="LABEL", help="what this run measures, for compare and history (default: "
                     "the git commit of the repository holding the suite file)")
    run.add_argument("--force", action="store_true", help="recompute cells, embeddings and studies already done")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--explain", type=int, default=0, metavar="N", help="put a Grad-CAM panel of N images into "
                     "each cell's MLflow run (explain/; embedders with a classifier head)")
    run.add_argument("--executor", default="local", metavar="local|ray", help="where cells run: in this process one "
                     "after another (default) or as tasks on a Ray cluster (embedding tasks, then cell tasks)")
    run.add_argument("--ray-address", metavar="ADDR", help="Ray head to join (HOST:PORT, ray://HOST:PORT or auto); "
                     "default: a local cluster sized to this machine")
    run.add_argument("--pictures", metavar="true|false", help="gallery, contingency matrix, 2-D map and sizes in each "
                     "cell's run, report.html in the suite's (default: the suite's 'pictures', else true)")


def _add_servers(sub) -> None:
    """``clusterbench server`` and ``clusterbench ui``."""
    srv = sub.add_parser("server", help="start an MLflow tracking server (the store for workers on several machines)")
    srv.add_argument("--backend-store-uri", help="database behind it, e.g. postgresql://user:pw@host/mlflow "
                     "(default: sqlite in RESULTS/server)")
    srv.add_argument("--artifacts", help="where artifacts go (default RESULTS/server/mlartifacts; a shared path "
                     "or object store for several machines)")
    srv.add_argument("--results", help="results directory")
    srv.add_argument("--host", default="127.0.0.1", help="interface to bind (0.0.0.0 for other machines)")
    srv.add_argument("--port", type=int, default=5000)

    ui = sub.add_parser("ui", help="start the MLflow UI over the project's store")
    ui.add_argument("--results", help="results directory")
    ui.add_argument("--tracking-uri")
    ui.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--workers", type=int, default=1, metavar="N", help="server processes (default 1: enough for one "
                    "person; MLflow's own default is 4)")
    ui.add_argument("--jobs", action="store_true", help="also start MLflow's job runner (GenAI scorers and "
                    "evaluations; clusterbench runs need none)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="clusterbench", description="Benchmark harness for unsupervised image clustering.")
    sub = parser.add_subparsers(dest="command", required=True)

    _add_run(sub)
    add_regression_commands(sub)  # compare, baseline, history

    lst = sub.add_parser("list", help="list datasets, embedders, clusterers with their parameters")
    lst.add_argument("what", nargs="?", choices=["datasets", "embedders", "clusterers", "k-estimators"])
    lst.add_argument("pattern", nargs="?", default="*", help="glob on names")

    rep = sub.add_parser("report", help="compare across seeds and datasets: Markdown on stdout, optionally a "
                         "self-contained HTML page")
    rep.add_argument("--experiment", "--suite", dest="experiment", metavar="NAME",
                     help="only this experiment (clusterbench/NAME or the suite name NAME)")
    rep.add_argument("--results", help="results directory")
    rep.add_argument("--tracking-uri")
    rep.add_argument("--sort", help="metric to sort and rank by (default nmi; silhouette where no cell has labels)")
    rep.add_argument("--markdown", "--output", "-o", dest="markdown", metavar="PATH", help="also write the Markdown here")
    rep.add_argument("--html", metavar="PATH", help="write the HTML report (mean ± std, ranks, pictures; opens offline)")
    rep.add_argument("--ui-url", help="base URL of the MLflow UI the run links point to (default: the tracking "
                     "server, or http://127.0.0.1:5000 as 'clusterbench ui' serves a local store)")

    bench = sub.add_parser("bench", help="measure this machine's speed figures (ours vs the plain references)")
    bench.add_argument("--quick", action="store_true", help="smaller sizes (about a minute)")

    ex = sub.add_parser("explain", help="what a classifier embedder looks at: Grad-CAM and guided backprop of N images")
    ex.add_argument("dataset_positional", nargs="?", metavar="DATASET", help="dataset spec (the older form of -d)")
    ex.add_argument("-d", "--dataset", metavar="SPEC", help="dataset spec, as in run")
    ex.add_argument("-e", "--embedder", required=True, metavar="SPEC", help="embedder spec with a classifier head")
    ex.add_argument("--n", type=int, default=8, help="images to explain, stratified over labels (default 8)")
    ex.add_argument("--topk", type=int, default=5, help="classes listed per image (default 5)")
    ex.add_argument("--method", default="gradcam", help="gradcam (default) or gradcam++")
    ex.add_argument("--out", help="output directory (default RESULTS/explain/<dataset>-<embedder>/)")
    ex.add_argument("--json", metavar="PATH", help="also write a summary: top-k and the CAM peak per image")
    ex.add_argument("--seed", type=int, default=0, help="seed of the image sample")
    ex.add_argument("--results", help="results directory (default ./results or $CLUSTERBENCH_RESULTS)")

    exp = sub.add_parser("export", help="a cell's clusters as folders of links to (or copies of) your files, "
                         "with an offline cluster browser (index.html)")
    exp.add_argument("--out", required=True, metavar="DIR", help="folder to write (new, empty, or an earlier export)")
    exp.add_argument("--cell", metavar="KEY", help="the cell's key (default: the suite's recommended cell, else "
                     "the only finished one)")
    exp.add_argument("--experiment", "--suite", dest="experiment", metavar="NAME", help="only this experiment")
    exp.add_argument("--copy", action="store_true", help="copy the files instead of linking to them")
    exp.add_argument("--results", help="results directory (default ./results or $CLUSTERBENCH_RESULTS)")
    exp.add_argument("--tracking-uri")

    _add_servers(sub)
    return declare_values(parser, READING_COMMANDS)  # --seed, --port, --results, --json, ... checked as read


def cmd_run(args) -> int:
    from clusterbench.core.reduce import Reducer
    from clusterbench.core.registry import Spec
    from clusterbench.core.suite import Suite, load_suite, parse_k
    from clusterbench.run.runner import Runner
    from clusterbench.track.report import print_table

    grid = args.dataset or args.embedder or args.clusterer
    if grid and args.suite:
        raise UserError("give either a suite file or -d/-e/-c specs, not both")
    if grid:
        missing = [flag for flag, v in (("-d", args.dataset), ("-e", args.embedder), ("-c", args.clusterer)) if not v]
        if missing:
            raise UserError(f"a grid needs at least one of each of -d, -e, -c; missing {' '.join(missing)}")
        from clusterbench.track.run_names import grid_suite_name

        # named after what it runs, so its experiment and suite runs say so (not all "cli")
        suite = Suite(name=grid_suite_name(args.dataset, args.embedder, args.clusterer),
                      datasets=[Spec.parse(s) for s in args.dataset], embedders=[Spec.parse(s) for s in args.embedder],
                      clusterers=[Spec.parse(s) for s in args.clusterer], source="command line")
    else:
        from clusterbench.core.suite import default_suite_path

        suite = load_suite(args.suite or default_suite_path())
    if args.k:
        suite.k = parse_k(args.k)
    if args.seed:
        suite.seeds = list(dict.fromkeys(args.seed))
    if args.reduce:
        suite.reduce = Reducer.parse(args.reduce)
    if args.tune:
        suite.tune = {**suite.tune, **Spec.parse(f"tune:{args.tune}").params}
    # every spec against its declared parameters, the reducer, K and the tuning settings, once: a
    # mistake anywhere is refused before anything runs, and the checked cells are what runs
    checked = Runner.check(suite)
    pictures = _flag("--pictures", args.pictures)
    from clusterbench.run.executors import make_executor

    executor = make_executor(args.executor, args.ray_address)  # Ray missing or its head unreachable: one line
    # every folder and store the run writes, before its first cell: a read-only cache/ or a full disk
    from clusterbench.run.preflight import preflight_run

    preflight_run(_results_dir(args), _tracking_uri(args), args.optuna_storage, {"--json": args.json})
    runner = Runner(_results_dir(args), _tracking_uri(args), force=args.force, progress=not args.no_progress,
                    optuna_storage=args.optuna_storage, explain=args.explain, pictures=pictures, executor=executor)
    runner.revision = args.revision
    results = runner.run(suite, checked)
    print_table(results)
    from clusterbench.run.recommendations import summary_line

    for entry in runner.recommendations:  # the terminal ends with the answer
        print(summary_line(entry))
    if args.json:
        from clusterbench.core.atomic import write_json

        write_json(args.json, {"suite": suite.name, "cells": [r.to_json() for r in results],
                               "recommendations": runner.recommendations, "calibration_seconds": runner.calibration,
                               **{k.rpartition(".")[2]: v for k, v in (runner.revision_tags or {}).items()}})
    return EXIT_CELL_FAILED if any(r.status == "failed" for r in results) else EXIT_OK


def _check_writable(path: Path, flag: str = "--json") -> None:
    parent = path.expanduser().resolve().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UserError(f"{flag} {path}: directory {parent} does not exist or is not writable")


def _flag(name: str, value: str | None) -> bool | None:
    if value is None:
        return None
    if value.strip().lower() in ("true", "yes", "1", "on"):
        return True
    if value.strip().lower() in ("false", "no", "0", "off"):
        return False
    raise UserError(f"{name} {value}: expected true or false")


def cmd_list(args) -> int:
    from clusterbench.core.catalog import registries
    from clusterbench.core.describe import parameters, summary
    from clusterbench.k.estimators import K_ESTIMATORS

    kinds = dict(zip(("datasets", "embedders", "clusterers"), registries(), strict=True))
    kinds["k-estimators"] = K_ESTIMATORS  # --k auto:NAME
    for kind, registry in kinds.items():
        if args.what and kind != args.what:
            continue
        print(f"{kind}:")
        for name in registry.list(args.pattern):
            params = [p.listing() for p in parameters(registry, name)]
            line = summary(registry.get(name))
            print(f"  {name:<20} {', '.join(params)}")
            # and the package it comes from: clusterbench, or a plug-in's distribution and version
            print(f"  {'':<20} {line + ' ' if line else ''}[{registry.origin(name)}]")
    return EXIT_OK


def _check_reading(args) -> str:
    """A reading command's store: there (never created by reading), sound, readable, not held locked."""
    from clusterbench.track.tracking import check_store, default_tracking_uri

    if not _tracking_uri(args) and not _results_dir(args).is_dir():
        raise UserError(f"--results {_results_dir(args)} does not exist (nothing has run there; name the results "
                        "folder of a run, or give --tracking-uri)")
    uri = _tracking_uri(args) or default_tracking_uri(_results_dir(args))
    check_store(uri, write=False)
    return uri


def _check_sort(uri: str, args) -> None:
    """``report --sort``: a metric the store's cells carry (the closest named when not)."""
    from clusterbench.core.arguments import unknown_choice
    from clusterbench.track.tracking import metric_names

    names = sorted(metric_names(uri, args.experiment))
    if args.sort is None:  # unlabelled runs have no NMI: rank by what they have
        args.sort = "nmi" if "nmi" in names or not names else "silhouette"
    if names and args.sort not in names:
        raise UserError(f"--sort {args.sort} {unknown_choice(args.sort, names, 'metric')}")


def cmd_report(args) -> int:
    from clusterbench.track.report import report

    for flag, path in (("--html", args.html), ("--markdown", args.markdown)):
        if path:
            _check_writable(Path(path), flag)
    _check_sort(_check_reading(args), args)
    uri = _store_uri(args)
    text = report(uri, experiment=args.experiment, sort=args.sort, html_path=args.html, ui_url=args.ui_url)
    print(text)
    if args.markdown:
        from clusterbench.core.atomic import atomic_file

        with atomic_file(args.markdown, "w") as f:
            f.write(text + "\n")
    if args.html:
        print(f"HTML report: {Path(args.html).resolve()}", file=sys.stderr)
    return EXIT_OK


def cmd_ui(args) -> int:
    """``mlflow ui`` sized for one person: one server process and no job runner (MLflow's defaults,
    4 workers and a job runner with 7 consumers, are 16 processes and ~2.9 GB here)."""
    from clusterbench.track.tracking import mark_experiment_kinds

    if args.workers < 1:
        raise UserError(f"--workers {args.workers}: give at least 1")
    results = _results_dir(args)
    _check_reading(args)
    uri = _store_uri(args)
    try:  # experiments from before the kind tag open on the runs table too
        mark_experiment_kinds(uri)
    except Exception as e:  # noqa: BLE001 - the UI still starts; MLflow reports a broken store itself
        print(f"clusterbench: warning: could not tag the experiments of {uri}: {type(e).__name__}", file=sys.stderr)
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", args.host, "--port", str(args.port),
           "--workers", str(args.workers)]
    if uri.startswith("sqlite:"):
        cmd += ["--default-artifact-root", (results / "mlartifacts").as_uri()]
    # MLflow reads this switch from the environment only (no command-line option in 3.x)
    os.environ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "true" if args.jobs else "false"
    # the link asks for MLflow's model-training view: the UI otherwise opens on its GenAI pages
    print(f"MLflow UI on http://{args.host}:{args.port}/#/experiments?workflowType=machine_learning over {uri}",
          file=sys.stderr)
    os.execv(sys.executable, cmd)
    return EXIT_OK  # not reached


def cmd_server(args) -> int:
    """``mlflow server`` with artifacts served through it, so workers need only its URL."""
    from clusterbench.track.tracking import check_store

    root = _results_dir(args) / "server"
    store = args.backend_store_uri or f"sqlite:///{root / 'mlflow.db'}"
    check_store(store, write=True)  # a damaged, locked or read-only store: one line before MLflow starts
    root.mkdir(parents=True, exist_ok=True)
    artifacts = args.artifacts or str(root / "mlartifacts")
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store, "--artifacts-destination",
           artifacts, "--host", args.host, "--port", str(args.port), "--workers", "1"]
    print(f"MLflow tracking server on http://{args.host}:{args.port} over {store}: "
          f"clusterbench run ... --tracking-uri http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    os.execv(sys.executable, cmd)
    return EXIT_OK  # not reached


def cmd_bench(args) -> int:
    from clusterbench.benchmarking.figures import figures_table
    from clusterbench.track.report import markdown_table

    rows = figures_table(quick=args.quick, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(markdown_table(["figure", "ours", "reference", "ratio", "note"], rows))
    return EXIT_OK


def cmd_explain(args) -> int:
    from clusterbench.explain.command import run_command

    if args.dataset and args.dataset_positional:
        raise UserError("explain: give the dataset once, with -d SPEC")
    args.dataset = args.dataset or args.dataset_positional
    if not args.dataset:
        raise UserError("explain: name the dataset with -d SPEC (as in clusterbench run)")
    return run_command(args)


def cmd_export(args) -> int:
    from clusterbench.export import export

    _check_reading(args)
    uri = _store_uri(args)
    export(uri, args.out, experiment=args.experiment, cell=args.cell, copy=args.copy,
           log=lambda msg: print(msg, file=sys.stderr, flush=True))
    return EXIT_OK


COMMANDS = {"run": cmd_run, "list": cmd_list, "report": cmd_report, "ui": cmd_ui, "server": cmd_server, "bench": cmd_bench,
            "explain": cmd_explain, "export": cmd_export, **REGRESSION_COMMANDS}


_python_format_warning = warnings.formatwarning


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """Our notes about the user's data read as one line; other libraries' warnings as usual."""
    if issubclass(category, DataWarning):
        return f"clusterbench: warning: {message}\n"
    return _python_format_warning(message, category, filename, lineno, line)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # a refused value (one line already printed), or --help
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    warnings.formatwarning = _format_warning
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
    try:
        return COMMANDS[args.command](args)
    except StoreFault as e:  # a full disk, a damaged or locked store: status 1 mid-run (cells kept), 2 before
        print(f"clusterbench: error: {e}", file=sys.stderr)
        return e.status
    except UserError as e:
        print(f"clusterbench: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("clusterbench: interrupted; finished cells are kept and a rerun resumes", file=sys.stderr)
        return 130
    except Exception as e:
        line = fault_line(e)  # a disk or store fault no layer named: still one line
        if line is None:
            raise
        print(f"clusterbench: error: {line}", file=sys.stderr)
        return EXIT_CELL_FAILED


if __name__ == "__main__":
    sys.exit(main())
