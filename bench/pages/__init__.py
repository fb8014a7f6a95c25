"""Every HTML page the harness writes (report, explain, cluster browser, history) is a Jinja2
template under ``templates/`` sharing one stylesheet, rendered here into a single self-contained
file: the stylesheet is inlined and pictures travel as data URIs, so a page opens offline."""

from __future__ import annotations

import base64
from functools import cache
from importlib import resources

import jinja2


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("clusterbench.pages", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,  # a misspelt field is an error, not an empty cell
    )
    env.globals["stylesheet"] = stylesheet()
    return env


@cache
def stylesheet() -> str:
    return resources.files("clusterbench.pages").joinpath("templates", "style.css").read_text()


def render(template: str, **context) -> str:
    """The page ``template`` (a file name under templates/) filled with ``context``."""
    return _environment().get_template(template).render(**context)


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
