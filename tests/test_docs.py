"""The README is a front door that still carries the two set-up commands, its links resolve, and
the generated methods page covers every registered entry and parameter."""

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from clusterbench.core.catalog import registries
from clusterbench.core.describe import parameters
from clusterbench.k.estimators import K_ESTIMATORS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
INSTALL = "python3 -m venv .venv && .venv/bin/pip install -e '.[cpu,dev]' && .venv/bin/clusterbench run"
TESTS = "python3 -m pip install -q tox && python3 -m tox"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _hook():
    spec = importlib.util.spec_from_file_location("docs_reference_hook", ROOT / "docs" / "hooks" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def methods_page() -> str:
    return _hook().methods_markdown()


def _sections(page: str) -> dict[str, str]:
    """Entry name -> its part of the page (from its heading to the next one)."""
    parts = re.split(r"^### `([^`]+)`$", page, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_readme_is_short_and_keeps_both_setup_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    lines = text.splitlines()
    assert INSTALL in lines and TESTS in lines  # byte-identical, each on a line of its own


def test_readme_relative_links_point_to_files():
    targets = [t for t in LINK.findall(README.read_text()) if not re.match(r"[a-z]+:|#", t)]
    assert len(targets) >= 8  # the docs pages
    missing = [t for t in targets if not (ROOT / t.split("#")[0]).exists()]
    assert missing == []


def test_nav_pages_exist_and_the_methods_page_is_generated():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert config["theme"]["name"] == "material" and config["strict"] is True
    assert config["hooks"] == ["docs/hooks/reference.py"]
    pages = [next(iter(entry.values())) for entry in config["nav"]]
    assert "methods.md" in pages and not (ROOT / "docs" / "methods.md").exists()
    assert [p for p in pages if p != "methods.md" and not (ROOT / "docs" / p).exists()] == []


def test_methods_page_lists_every_entry_and_parameter(methods_page):
    sections = _sections(methods_page)
    kinds = (*registries(), K_ESTIMATORS)
    expected = {name for registry in kinds for name in registry.list()}
    assert set(sections) == expected and len(sections) == sum(len(r.list()) for r in kinds)
    for registry in kinds:
        for name in registry.list():
            rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([^`]+)` \| (.*) \|$", sections[name], re.M)}
            params = parameters(registry, name)
            assert set(rows) == {p.name for p in params}, name
            for p in params:
                default = "required" if p.required else f"`{p.default_text()}`"
                assert rows[p.name].startswith(default + " |"), (name, p.name, rows[p.name])


def test_methods_page_states_what_each_declaration_allows(methods_page):
    kmeans = _sections(methods_page)["kmeans"]
    assert "| `n_init` | `1` | an integer >= 1 |" in kmeans
    assert "| `backend` | `auto` | auto, faiss or sklearn |" in kmeans
    assert "k-means on every point" in kmeans  # its docstring's first paragraph
    folder = _sections(methods_page)["folder"]
    assert "Spec: `-d folder:root=...`" in folder and "| `root` | required | an existing directory |" in folder
    assert "| `covariance` | `diag` | full, diag, tied or spherical |" in _sections(methods_page)["bic"]
