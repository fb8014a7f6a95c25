"""A comparison for people: a Markdown table (terminal, pull-request comment, GitHub step summary)
and one line per regression."""

from __future__ import annotations

from .compare import Comparison, Row
from .sides import Side

MARKS = {"regressed": "**regressed**", "changed": "**changed**", "improved": "improved"}


def _value(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"


def _escaped(text: str) -> str:
    """A cell key's ``|`` would split a Markdown table cell, even inside a code span (GitHub)."""
    return text.replace("|", "\\|")


def _side(side: Side) -> str:
    rev = f" @ {side.revision}" if side.revision else ""
    cal = f", calibration {side.calibration:.3f} s" if side.calibration else ""
    return f"`{side.label}`{rev}{cal}"


def markdown(result: Comparison, base: Side, head: Side, all_rows: bool = True) -> str:
    n = len(result.regressions)
    lines = [f"### clusterbench compare: {n} regression{'s' if n != 1 else ''}" if n else
             "### clusterbench compare: no regression", "",
             f"base {_side(base)}  ", f"head {_side(head)}", ""]
    rows = result.rows if all_rows else [r for r in result.rows if r.verdict != "ok"]
    if rows:
        lines += ["| configuration | metric | base | head | delta | verdict | note |", "|---|---|---|---|---|---|---|"]
        ordered = sorted(rows, key=lambda r: (not r.worse, r.config))  # regressions first, then as compared
        lines += [f"| `{_escaped(r.config)}` | {r.metric} | {_value(r.base)} | {_value(r.head)} | {r.delta} | "
                  f"{MARKS.get(r.verdict, r.verdict)} | {r.note} |" for r in ordered]
    for title, configs in (("only in base", result.only_base), ("only in head", result.only_head)):
        if configs:
            lines += ["", f"{title} (not compared): " + ", ".join(f"`{c}`" for c in configs)]
    return "\n".join(lines) + "\n"


def regression_line(row: Row) -> str:
    return (f"{row.verdict.upper()}: {row.config} {row.metric}: {_value(row.base)} -> {_value(row.head)} "
            f"({row.delta}; {row.note})")
