"""The HTML report is a template page (report.html.j2 on base.html.j2, the shared stylesheet) whose
sections stay open to more: a section added from outside lands in the page where it asked."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from clusterbench.track import html_report
from clusterbench.track.aggregate import CellRecord, aggregate


@pytest.fixture
def report():
    records = [CellRecord(f"d{d}|pixels|{c}|seed={s}|k=default|reduce=none", f"d{d}", "pixels", c, s,
                          {"nmi": 0.5 + 0.1 * d + (0.05 if c == "kmeans" else 0) + 0.01 * s, "n_clusters": 10.0},
                          f"run{d}{c}{s}") for d in range(3) for c in ("kmeans", "agglomerative") for s in (0, 1)]
    exp = html_report.Experiment("clusterbench/t", "7", records, aggregate(records))
    return html_report.Report("clusterbench: <t>", [exp], "nmi", html_report.run_link("http://ui:5000"))


def test_the_page_comes_from_the_templates_with_the_shared_stylesheet(report):
    from clusterbench.pages import stylesheet

    text = html_report.render(report)
    assert text.startswith("<!DOCTYPE html>") and "<h1>clusterbench: &lt;t&gt;</h1>" in text  # titles are escaped
    style = re.search(r"<style>(.*?)</style>", text, re.S).group(1)
    assert style.strip() == stylesheet().strip() and ".report tr.best td" in style
    assert text.count("<tr class=\"best\">") == 3 and text.count("★") == 1 + 3  # legend + kmeans on each dataset
    assert "0.555 ± 0.007" in text  # d0 kmeans: mean of 0.55 and 0.56, sample std 0.00707
    link = "http://ui:5000/#/experiments/7/runs/run0kmeans0?workflowType=machine_learning"
    assert f'<a href="{link}">seed 0</a>' in text
    assert "critical-difference view" in text and text.count("data:image/png;base64,") == 1
    assert text.count("no pictures in this run") == 6


def test_report_rules_do_not_reach_other_pages():
    from clusterbench.pages import stylesheet

    css = stylesheet()
    start = css.index("*/", css.index("/* report:")) + 2
    end = css.find("\n/*", start)  # the report's block ends where another page's begins
    rules = re.sub(r"@media[^{]*\{", "", css[start:end if end > 0 else None])
    selectors = [s.strip() for block in re.findall(r"([^{}]+)\{", rules) for s in block.split(",")]
    assert selectors and all(s.startswith(".report") for s in selectors), selectors


def test_a_section_added_from_outside_appears_where_it_asked(report, monkeypatch):
    monkeypatch.setattr(html_report, "SECTIONS", list(html_report.SECTIONS))

    def k_table(r):
        return f"<h2>K chosen</h2><p>{len(r.experiments[0].records)} cells</p>"

    html_report.add_section(k_table, before=html_report.pictures_section)
    html_report.add_section(k_table)  # twice is once
    text = html_report.render(report)
    assert text.count("<h2>K chosen</h2><p>12 cells</p>") == 1
    assert text.index("Average rank across datasets") < text.index("K chosen") < text.index("<h2>Pictures</h2>")


def test_the_report_does_not_import_the_explain_package():
    code = "import sys, clusterbench.track.html_report, clusterbench.track.suite_summary; " \
           "print(sorted(m for m in sys.modules if m.startswith('clusterbench.explain')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
