"""The built documentation site, opened in a real headless Chromium (Debian's), measured in the pages themselves.

:func:`measure_pages` opens a harness page of the served site that loads each page in a frame 1280 px wide,
waits for the theme's own scripts, then reports every table and code block of the article whose rendered
content is wider than the place it has (it scrolls sideways, or it sticks out of the content column). The
reports come back through ``--dump-dom``, so no browser-driver library is needed, and one browser start
measures every page. :func:`screenshot` saves what
a reader sees at the same width.
"""

from __future__ import annotations

import functools
import html
import http.server
import json
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: The width a reader's laptop browser window has.
VIEWPORT = (1280, 900)
REPORT_ID = "rendered-width-report"

# Sideways overflow, measured on rendered boxes: an element whose content is wider than its box (it scrolls),
# or whose box ends right of the article's column. One pixel of slack for sub-pixel rounding. The harness page
# opens each page in turn in a frame of the reader's width (same origin, so it can read the frame's document),
# measures it once the theme's scripts ran, and writes all the reports into itself for --dump-dom.
HARNESS = """<!doctype html>
<html><body style="margin:0">
<script>
const PAGES = %(pages)s;
const measure = (doc) => {
  const column = doc.querySelector("article.md-content__inner") || doc.querySelector("article");
  if (!column) return {error: "no article"};
  const right = column.getBoundingClientRect().right;
  const found = [];
  const describe = (element) => (element.innerText || "").trim().replace(/\\s+/g, " ").slice(0, 60);
  for (const table of column.querySelectorAll("table")) {
    const box = table.closest(".md-typeset__scrollwrap") || table.parentElement;
    const wide = table.scrollWidth > table.clientWidth + 1 || box.scrollWidth > box.clientWidth + 1;
    if (wide || table.getBoundingClientRect().right > right + 1) {
      found.push({kind: "table", text: describe(table), content: box.scrollWidth, column: box.clientWidth});
    }
  }
  for (const pre of column.querySelectorAll("pre")) {
    const code = pre.querySelector("code") || pre;
    const wide = code.scrollWidth > code.clientWidth + 1 || pre.scrollWidth > pre.clientWidth + 1;
    if (wide || pre.getBoundingClientRect().right > right + 1) {
      found.push({kind: "code", text: describe(pre), content: code.scrollWidth, column: code.clientWidth});
    }
  }
  return {
    tables: column.querySelectorAll("table").length,
    code_blocks: column.querySelectorAll("pre").length,
    column_width: column.clientWidth,
    overflowing: found,
  };
};
const open = (page) => new Promise((resolve) => {
  const frame = document.createElement("iframe");
  frame.style.cssText = "width:%(width)spx;height:%(height)spx;border:0;display:block";
  frame.addEventListener("load", () => setTimeout(() => {
    const report = measure(frame.contentDocument);
    frame.remove();
    resolve(report);
  }, 300));
  frame.src = page;
  document.body.appendChild(frame);
});
(async () => {
  const reports = {};
  for (const page of PAGES) reports[page] = await open(page);
  const out = document.createElement("pre");
  out.id = "%(report_id)s";
  out.textContent = JSON.stringify(reports);
  document.body.appendChild(out);
})();
</script>
</body></html>
"""


def chromium() -> str | None:
    """The Chromium executable (Debian's package ``chromium``), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium_command(user_data_dir: str, *arguments: str) -> list[str]:
    executable = chromium()
    assert executable, "Chromium is not installed: `make chromium` (apt-get install chromium)"
    return [
        executable,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={user_data_dir}",
        f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}",
        *arguments,
    ]


def _run_chromium(*arguments: str) -> str:
    with tempfile.TemporaryDirectory(prefix="dify-docs-chromium-") as profile:
        completed = subprocess.run(
            _chromium_command(profile, *arguments), capture_output=True, text=True, timeout=120, check=False
        )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout


def add_harness(site: Path, pages: list[str]) -> str:
    """Write the measuring harness for ``pages`` (paths relative to the site's root) into the site; its name."""
    name = "rendered-width-harness.html"
    text = HARNESS % {"pages": json.dumps(pages), "width": VIEWPORT[0], "height": VIEWPORT[1], "report_id": REPORT_ID}
    (site / name).write_text(text)
    return name


@contextmanager
def serve(site: Path) -> Iterator[str]:
    """Serve a site directory over HTTP on 127.0.0.1; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Log nothing per request."""


def measure_pages(harness_url: str) -> dict[str, dict]:
    """The reports of the harness at ``harness_url``, by page (see :data:`HARNESS`)."""
    dom = _run_chromium("--virtual-time-budget=600000", "--dump-dom", harness_url)
    match = re.search(rf'<pre id="{REPORT_ID}">(.*?)</pre>', dom, re.S)
    assert match, f"{harness_url}: the harness reported nothing: {dom[-2000:]}"
    return json.loads(html.unescape(match.group(1)))


def screenshot(url: str, path: Path, height: int = 2400) -> Path:
    """A PNG of the page at ``url`` as a reader sees it, 1280 px wide and ``height`` px tall."""
    with tempfile.TemporaryDirectory(prefix="dify-docs-chromium-") as profile:
        command = _chromium_command(profile, "--virtual-time-budget=10000", f"--screenshot={path}", url)
        command = [
            f"--window-size={VIEWPORT[0]},{height}" if part.startswith("--window-size") else part for part in command
        ]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0 and path.exists(), completed.stderr[-2000:]
    return path
