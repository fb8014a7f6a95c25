"""Print every gate's measured ratio next to its limit, so CI logs show the margins."""

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items):
    # Every test here times our path against a reference: `timing` keeps them out of the parallel
    # run (another worker's load would skew the ratio) and out of the fast tier.
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.timing)


def pytest_terminal_summary(terminalreporter):
    from clusterbench.benchmarking.gates import CHECKED

    if not CHECKED:
        return
    terminalreporter.section("speed gates (measured in this run)")
    for name, value, limit, kind in CHECKED:
        verdict = "ok" if (value >= limit if kind == ">=" else value <= limit) else "FAILED"
        terminalreporter.write_line(f"{name:<28} {value:8.3f}  (must be {kind} {limit:g})  {verdict}")
