"""The docs site as a reader sees it at 1280 px: no table or code block hides content off to the side.

The site is built with MkDocs (as ``make docs`` does), served over HTTP and opened in Debian's headless
Chromium; the widths are measured in the rendered pages (see :mod:`tests.docs_site.browser`). Screenshots of
the key pages are written to ``build/screenshots/`` for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs_site import browser

REPO = Path(__file__).resolve().parents[2]
#: The pages a newcomer reads first, and the ones with the widest tables.
KEY_PAGES = ["./", "installation/", "warehouse-sync/", "assets/", "security/", "changelog/", "examples/"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built from the repository's docs, with the measuring script added to every page."""
    pytest.importorskip("material", reason="the docs extra (Material for MkDocs) is installed in the Airflow 3 venv")
    if browser.chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed; `make test` installs it (`make chromium`).")
        pytest.skip("Chromium is not installed (`make chromium`)")
    site = tmp_path_factory.mktemp("docs") / "site"
    completed = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return site


@pytest.fixture(scope="module")
def site_url(site: Path) -> Iterator[str]:
    with browser.serve(site) as url:
        yield url


def _pages(site: Path) -> list[str]:
    pages = sorted(
        str(page.parent.relative_to(site)) + "/" for page in site.glob("**/index.html") if page.parent != site
    )
    return ["./", *[page for page in pages if not page.startswith("search/")]]


def test_no_table_or_code_block_is_wider_than_its_column(site: Path, site_url: str) -> None:
    pages = _pages(site)
    assert set(KEY_PAGES) <= set(pages)
    reports = browser.measure_pages(site_url + browser.add_harness(site, pages))
    assert sorted(reports) == sorted(pages)
    overflowing: list[str] = []
    for page, report in reports.items():
        assert report.get("column_width", 0) > 600, f"{page}: {report}"
        overflowing += [
            f"{page}: {found['kind']} '{found['text']}' needs {found['content']} px of {found['column']}"
            for found in report["overflowing"]
        ]
    assert sum(report["tables"] for report in reports.values()) >= 20  # the measurement saw the tables
    assert overflowing == [], "\n".join(overflowing)


def test_without_the_wrapping_stylesheet_tables_and_code_overflow(site: Path, site_url: str) -> None:
    """The measurement can fail: unstyled, the Performance page's many-column tables and long code lines do."""
    original = (site / "performance" / "index.html").read_text()
    assert "stylesheets/wrap.css" in original
    (site / "performance" / "unwrapped.html").write_text(original.replace("stylesheets/wrap.css", "no-such.css"))
    reports = browser.measure_pages(site_url + browser.add_harness(site, ["performance/unwrapped.html"]))
    kinds = {found["kind"] for found in reports["performance/unwrapped.html"]["overflowing"]}
    assert kinds == {"table", "code"}


def test_screenshots_of_the_key_pages(site_url: str) -> None:
    directory = REPO / "build" / "screenshots"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    for page in KEY_PAGES:
        name = (page.strip("./") or "home").replace("/", "-")
        shot = browser.screenshot(site_url + page, directory / f"{name}.png")
        assert shot.stat().st_size > 10_000  # a rendered page, not a blank one
