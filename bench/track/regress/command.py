"""``clusterbench compare``, ``baseline`` and ``history``: their arguments and what each does.

compare exits 0 when nothing regressed, 1 when something did (a line per configuration and metric),
2 for a usage mistake (raised as ``UserError``, turned into one line by the CLI)."""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path

from clusterbench.core.errors import UserError

EXIT_OK, EXIT_REGRESSED = 0, 1


def _results(args) -> Path:
    return Path(args.results or os.environ.get("CLUSTERBENCH_RESULTS", "results")).expanduser().resolve()


def _writable(path: str, flag: str) -> Path:
    out = Path(path).expanduser().resolve()
    if not out.parent.is_dir() or not os.access(out.parent, os.W_OK):
        raise UserError(f"{flag} {path}: directory {out.parent} does not exist or is not writable")
    return out


def add_regression_commands(sub) -> None:
    cmp = sub.add_parser("compare", help="did HEAD get worse than BASE? quality, K chosen, speed (calibrated), memory; "
                         "exit 1 naming each regression")
    cmp.add_argument("base", help="a 'run --json' file, a baseline file, a results folder or a suite run id")
    cmp.add_argument("head", help="the same kinds, measured with the change")
    cmp.add_argument("--results", help="results folder holding run ids (default ./results or $CLUSTERBENCH_RESULTS)")
    cmp.add_argument("--experiment", "--suite-name", dest="experiment", metavar="NAME",
                     help="of a results folder, only this experiment (default: every one)")
    cmp.add_argument("--revision", metavar="LABEL", help="of a results folder, the cells run at this revision")
    cmp.add_argument("--base-revision", metavar="LABEL", help="--revision for BASE only")
    cmp.add_argument("--head-revision", metavar="LABEL", help="--revision for HEAD only")
    cmp.add_argument("--tolerance", action="append", metavar="METRIC=VALUE", help="e.g. nmi=0.02, quality=0.005, "
                     "speed=2 (a factor), memory=1.5, k=1, z=3; repeatable (defaults: docs/ci.md)")
    cmp.add_argument("--suite", metavar="FILE", help="suite file whose [gate] table sets tolerances (default: "
                     "HEAD's suite, when its file is found)")
    cmp.add_argument("--markdown", metavar="PATH", help="also write the table as Markdown (a pull-request comment); "
                     "with $GITHUB_STEP_SUMMARY set it is appended there too")

    base = sub.add_parser("baseline", help="write a small, diff-friendly baseline file to commit beside a suite")
    base.add_argument("source", nargs="?", help="a 'run --json' file or suite run id (default: the results folder)")
    base.add_argument("--out", required=True, metavar="FILE", help="the baseline JSON to write")
    base.add_argument("--results", help="results folder (default ./results or $CLUSTERBENCH_RESULTS)")
    base.add_argument("--experiment", "--suite-name", dest="experiment", metavar="NAME", help="only this experiment")
    base.add_argument("--revision", metavar="LABEL", help="the cells run at this revision (default: the newest)")

    hist = sub.add_parser("history", help="an offline page plotting each metric of each configuration across revisions")
    hist.add_argument("--html", required=True, metavar="FILE", help="the page to write")
    hist.add_argument("--results", help="results folder (default ./results or $CLUSTERBENCH_RESULTS)")
    hist.add_argument("--experiment", "--suite-name", dest="experiment", metavar="NAME", help="only this experiment")
    hist.add_argument("--metric", action="append", metavar="NAME", help="only these metrics (repeatable; default: "
                      "every tracked metric measured)")
    hist.add_argument("--tolerance", action="append", metavar="METRIC=VALUE", help="as in compare")


def _gate(args, head) -> dict:
    from clusterbench.core.suite import resolve_suite_path

    name = args.suite or head.suite
    if not name:
        return {}
    try:
        path = resolve_suite_path(name)
    except UserError:
        if args.suite:
            raise
        return {}  # HEAD's suite is not on this machine: the defaults and --tolerance hold
    try:
        gate = tomllib.loads(path.read_text()).get("gate", {})
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise UserError(f"{path}: cannot read its [gate] table ({e})") from None
    if not isinstance(gate, dict):
        raise UserError(f"{path}: [gate] must be a table of METRIC = VALUE")
    return gate


def cmd_compare(args) -> int:
    from .compare import compare
    from .load import load_side
    from .render import markdown, regression_line
    from .rules import parse_tolerances

    out = _writable(args.markdown, "--markdown") if args.markdown else None
    results = _results(args)
    base = load_side(args.base, results, args.experiment, args.base_revision or args.revision)
    head = load_side(args.head, results, args.experiment, args.head_revision or args.revision)
    tolerances = parse_tolerances(args.tolerance, _gate(args, head), "[gate]")
    result = compare(base, head, tolerances)
    text = markdown(result, base, head)
    print(text)
    if out is not None:
        out.write_text(text)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as f:
            f.write(text + "\n")
    if not result.rows:
        print("clusterbench: warning: no configuration in both BASE and HEAD; nothing compared", file=sys.stderr)
    for row in result.regressions:
        print(regression_line(row))
    return EXIT_REGRESSED if result.regressions else EXIT_OK


def cmd_baseline(args) -> int:
    from . import baseline
    from .load import load_side
    from .store import from_store

    out = _writable(args.out, "--out")
    results = _results(args)
    side = load_side(args.source, results, args.experiment, args.revision) if args.source else \
        from_store(results, args.experiment, args.revision)
    baseline.write(side, out)
    print(f"baseline of {len(side.configs)} configuration(s) from {side.label} written to {out}", file=sys.stderr)
    return EXIT_OK


def cmd_history(args) -> int:
    from .history import write_history
    from .rules import parse_tolerances

    out = _writable(args.html, "--html")
    tolerances = parse_tolerances(args.tolerance)
    n = write_history(_results(args), out, args.experiment, args.metric, tolerances)
    print(f"history of {n} suite run(s) written to {out}", file=sys.stderr)
    return EXIT_OK


REGRESSION_COMMANDS = {"compare": cmd_compare, "baseline": cmd_baseline, "history": cmd_history}
