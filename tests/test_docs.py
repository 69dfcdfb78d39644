"""The documentation site: it builds strictly, and what its getting-started and deployment pages and README tell a
reader to type exists (make targets, spine-cad subcommands, pip extras). tests/test_slow_getting_started.py runs
the getting-started page's commands after `make demo`; .ci/small_install.sh runs the screening-only installs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from importlib.metadata import metadata
from pathlib import Path

import pytest

from dernet.cli import SUBCOMMANDS

from .conftest import CHROMIUM, CHROMIUM_ARGS, ROOT
from .docs_pages import blocks, commands, table_spans

# The pictures each page shows (docs/make_assets.py makes them from the demo's outputs).
PICTURES = {
    "getting-started": {"overlay.png", "roc.png", "confusion.png", "gradcam.png", "web_page.png"},
    "screening": {"overlay.png", "roc.png", "pr.png", "confusion.png", "gradcam.png", "web_page.png", "study_roc.png"},
    "workflow": {"detectors.png"},
}
PAGES = [ROOT / "docs" / "getting-started.md", ROOT / "docs" / "deployment.md", ROOT / "README.md"]


def _commands(page: Path) -> list[str]:
    """Every command of the page's bash blocks and every `code span` of its tables."""
    return [c for block in blocks(page) if block.language == "bash" for c in commands(block)] + table_spans(page)


def _make_targets() -> set[str]:
    return set(re.findall(r"^([a-zA-Z][a-zA-Z0-9_-]*):", (ROOT / "Makefile").read_text(), re.M))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_the_commands_a_page_shows_exist(page: Path) -> None:
    typed = _commands(page)
    targets = {m for c in typed for m in re.findall(r"\bmake ([a-z][a-z0-9-]*)", c)}
    subcommands = {m for c in typed for m in re.findall(r"\bspine-cad ([a-z][a-z0-9-]*)", c)}
    extras = {e for c in typed for group in re.findall(r"pip install '\.\[([a-z0-9,]+)\]'", c)
              for e in group.split(",")}  # fmt: skip
    if page.name != "deployment.md":
        assert {"demo", "test"} <= targets  # the two commands
    assert targets <= _make_targets(), targets - _make_targets()
    assert subcommands - {"subcommand"} <= {s.name for s in SUBCOMMANDS}
    optional = set(metadata("spine-cad").get_all("Provides-Extra"))
    assert extras <= optional, extras - optional


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built strictly (`make docs`'s command) into a temp folder."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    site = tmp_path_factory.mktemp("docs") / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return site


def test_the_site_builds_strictly_with_its_pictures(site: Path) -> None:
    for page in ("index", "getting-started", "workflow", "screening", "deployment", "performance", "architecture",
                 "contributing"):  # fmt: skip
        assert (site / f"{page}.html").is_file(), page
    for page, expected in PICTURES.items():
        shown = set(re.findall(r'src="assets/([a-z_]+\.png)"', (site / f"{page}.html").read_text()))
        assert expected <= shown, (page, expected - shown)
        assert all((site / "assets" / name).stat().st_size > 5_000 for name in shown), page
    assert "Comprehensive SR Document" in (site / "deployment.html").read_text()  # the rendered SR (dsrdump)
    assert "class=\"doc doc-heading\"" in (site / "reference" / "screening.html").read_text()  # the API reference
    for page in site.rglob("*.html"):
        assert not re.search(r'<(?:script|link)[^>]+(?:src|href)="(?:https?:)?//', page.read_text()), page


def test_the_site_searches_from_the_disk_without_the_network(site: Path) -> None:
    """Opened as file:// in Chromium, with every request that leaves the disk refused: search still answers."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None and not os.environ.get("CI"):  # in CI, where .ci/run installs it, a missing one fails
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    remote = []
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.route(re.compile(r"^(?!file:|data:|blob:|about:)"), lambda route: (remote.append(route.request.url),
                                                                              route.abort()))  # fmt: skip
        page.goto((site / "index.html").as_uri())
        results = page.locator(".md-search-result__item")
        deadline = time.monotonic() + 30
        while not results.count():  # a query typed before the search worker has its index is dropped: type again
            assert time.monotonic() < deadline, page.locator(".md-search-result__meta").inner_text()
            page.locator(".md-search__input").fill("")
            page.locator(".md-search__input").press_sequentially("rejection")  # key events, as a reader types
            page.wait_for_timeout(500)
        titles = " ".join(results.all_inner_texts()).lower()
        browser.close()
    assert "screening" in titles, titles[:500]
    assert not remote, remote
