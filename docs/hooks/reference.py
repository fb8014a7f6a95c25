"""MkDocs hook: the methods reference (methods.md) written at build time from the registries, so
it cannot drift from the code. Every dataset, embedder, clusterer and K estimator gets its name,
the first paragraph of its docstring and a table of its parameters, read by the same functions
``clusterbench list`` prints with (:mod:`clusterbench.core.describe`)."""

from __future__ import annotations

import re

PAGE = "methods.md"

# (heading, how a spec names an entry of this kind, what it is)
_KINDS = (
    ("Datasets", "-d {name}", "what is clustered: images (or precomputed features) and, where known, labels"),
    ("Embedders", "-e {name}", "images to an (N, D) float32 feature matrix"),
    ("Clusterers", "-c {name}", "features to labels (noise = -1)"),
    ("K estimators", "--k auto:{name}", "a per-K score and a rule that picks K from the sweep"),
)


def _registries():
    from clusterbench.core.catalog import registries
    from clusterbench.k.estimators import K_ESTIMATORS

    return (*registries(), K_ESTIMATORS)


def _markdown_text(text: str) -> str:
    """Docstring text (reStructuredText roles, double backticks) as Markdown: ``:class:`~a.B``` -> `B`."""
    text = re.sub(r":\w+:`~?(?:[\w.]+\.)?([\w]+)`", r"`\1`", text)
    return text.replace("``", "`")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def entry_markdown(registry, name: str, spec: str) -> str:
    """One entry: heading, first docstring paragraph, its parameters."""
    from clusterbench.core.describe import first_paragraph, parameters

    cls = registry.get(name)
    lines = [f"### `{name}`", "", _markdown_text(first_paragraph(cls)) or "(no docstring)", ""]
    params = parameters(registry, name)
    required = ",".join(f"{p.name}=..." for p in params if p.required)
    lines += [f"Spec: `{spec.format(name=name + (':' + required if required else ''))}`; "
              f"from {registry.origin(name)}.", ""]
    if not params:
        return "\n".join([*lines, "No parameters.", ""])
    lines += ["| parameter | default | allowed |", "|---|---|---|"]
    for p in params:
        default = "required" if p.required else f"`{_cell(p.default_text())}`"
        allowed = _cell(p.admits) if p.admits else "not declared: judged by the entry (a default's type)"
        lines.append(f"| `{p.name}` | {default} | {allowed} |")
    return "\n".join([*lines, ""])


def methods_markdown() -> str:
    """The whole methods page, from the registries as they are now (plug-ins included)."""
    out = [
        "# Methods",
        "",
        "Generated from the registries when the site is built: the same entries, parameters and",
        "defaults `clusterbench list` prints. A spec is `name` or `name:key=value,key=value`, the",
        "same on the command line and in suite files; every value is checked against the",
        "declaration shown under *allowed* before anything runs.",
        "",
    ]
    for (title, spec, what), registry in zip(_KINDS, _registries(), strict=True):
        names = registry.list()
        out += [f"## {title}", "", f"{what.capitalize()}: {', '.join(f'`{n}`' for n in names)}.", ""]
        out += [entry_markdown(registry, name, spec) for name in names]
    return "\n".join(out)


def on_files(files, config):
    """Add the generated page to the build (nothing is written into docs/)."""
    from mkdocs.structure.files import File

    existing = files.get_file_from_path(PAGE)
    if existing is not None:
        files.remove(existing)
    files.append(File.generated(config, PAGE, content=methods_markdown()))
    return files
