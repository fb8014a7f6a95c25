"""Print every gate's measured ratio next to its limit, so CI logs show the margins."""


def pytest_terminal_summary(terminalreporter):
    from clusterbench.benchmarking.gates import CHECKED

    if not CHECKED:
        return
    terminalreporter.section("speed gates (measured in this run)")
    for name, value, limit, kind in CHECKED:
        verdict = "ok" if (value >= limit if kind == ">=" else value <= limit) else "FAILED"
        terminalreporter.write_line(f"{name:<28} {value:8.3f}  (must be {kind} {limit:g})  {verdict}")
