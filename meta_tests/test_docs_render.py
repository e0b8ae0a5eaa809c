"""Build the docs site and look at it in a headless Chromium.

The first test runs the exact ``tox -e docs`` command on the repository
and times it.  The others build a copy of the site whose ``results/``
holds a report for every known column (made up here, in a temporary
folder: the widest matrix the site can show), open the PEP and the matrix
in Chromium at 1280 px, and check what a reader would see: styles loaded,
requirement boxes styled, the matrix inside the window.

Chromium is the Debian package ``chromium``; the tests are skipped when it
is not installed.  Set ``COEXTRA_SCREENSHOTS=DIR`` to keep the
screenshots.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 1280
#: The most a full build of the site may take, in seconds, on this
#: project's 2-core machine.
BUILD_SECONDS = 60

Image = pytest.importorskip("PIL.Image")
pytest.importorskip("sphinx")

sys.path.insert(0, str(ROOT / "docs" / "_ext"))
from coextra_docs.reports import KNOWN_COLUMNS, OUTCOMES  # noqa: E402

#: Flags for a headless run as root in a container, with nothing fetched.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)

#: Measures the page once the stylesheets have applied (a parser-inserted
#: script runs after the stylesheets before it) and leaves the figures in
#: the DOM, where --dump-dom shows them.
PROBE = """
<script>
(function () {
  var matrix = document.querySelector("table.coextra-matrix");
  var box = document.querySelector("div.coextra-req");
  var rect = matrix ? matrix.getBoundingClientRect() : null;
  var wrapper = matrix ? matrix.parentElement : null;
  var probe = document.createElement("pre");
  probe.id = "coextra-probe";
  probe.textContent = JSON.stringify({
    viewport: window.innerWidth,
    pageWidth: document.documentElement.scrollWidth,
    matrixLeft: rect ? rect.left : null,
    matrixRight: rect ? rect.right : null,
    wrapperScrolls: wrapper ? wrapper.scrollWidth > wrapper.clientWidth : null,
    wrapperWidths: wrapper ? [wrapper.scrollWidth, wrapper.clientWidth] : null,
    bodyFont: getComputedStyle(document.body).fontFamily,
    sheets: document.styleSheets.length,
    boxBorder: box ? getComputedStyle(box).borderLeftColor : null,
    boxId: box ? box.id : null,
    boxes: document.querySelectorAll("div.coextra-req").length
  });
  document.body.appendChild(probe);
})();
</script>
"""


def chromium() -> str:
    """Path of the Chromium binary, or skip."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")


def run_chromium(args: list[str], profile: Path) -> str:
    """Run headless Chromium once; return what it printed on stdout."""
    command = [
        chromium(),
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        *args,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def sphinx_build(source: Path, out: Path) -> float:
    """Run the tox -e docs command; return the seconds it took."""
    command = [
        sys.executable,
        "-m",
        "sphinx",
        "-n",
        "-W",
        "--keep-going",
        "-q",
        "-b",
        "html",
        str(source),
        str(out),
        "-d",
        str(out.parent / "doctrees"),
    ]
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    assert done.returncode == 0, done.stdout + done.stderr
    return elapsed


def test_repository_site_builds_in_under_a_minute(tmp_path: Path) -> None:
    """The tox -e docs build passes in time; pages are two clicks away."""
    if not (ROOT / "pep" / "pep-9999.rst").is_file():
        pytest.fail("pep/pep-9999.rst is missing")
    elapsed = sphinx_build(ROOT, tmp_path / "html")
    assert elapsed < BUILD_SECONDS, f"the build took {elapsed:.1f} s"
    index = (tmp_path / "html" / "index.html").read_text(encoding="utf-8")
    # One click from the front page: the PEP, the index, matrix, benchmarks.
    for page in (
        "pep/pep-9999.html",
        "docs/requirements.html",
        "docs/matrix.html",
        "docs/benchmarks.html",
    ):
        assert f'href="{page}"' in index, page
    # The second click: every requirement from the index page.
    registry = json.loads(
        (ROOT / "conformance" / "requirements.json").read_text("utf-8")
    )
    index_page = (tmp_path / "html" / "docs" / "requirements.html").read_text(
        encoding="utf-8"
    )
    for requirement in registry["requirements"]:
        anchor = f'href="../pep/pep-9999.html#{requirement["anchor"]}"'
        assert anchor in index_page, requirement["id"]


def full_matrix_reports(results: Path) -> None:
    """Write a report for every known column, all outcomes represented."""
    registry = json.loads(
        (ROOT / "conformance" / "requirements.json").read_text("utf-8")
    )
    outcomes = itertools.cycle(OUTCOMES)
    crash_or_fail = itertools.cycle(("crashed", "fail"))
    for key, _ in KNOWN_COLUMNS:
        counts = dict.fromkeys(OUTCOMES, 0)
        entries = []
        for requirement in registry["requirements"]:
            outcome = next(outcomes)
            entry: dict[str, Any] = {
                "id": requirement["id"],
                "level": requirement["level"],
                "title": requirement["title"],
                "area": requirement["area"],
                "outcome": outcome,
                "tests": [],
            }
            if outcome == "xfail":
                # Every other expected failure is an expected crash.
                how = next(crash_or_fail)
                entry["expectation"] = {
                    "reason": f"made up for the render test ({how})",
                    "link": None,
                    "outcome": how,
                }
            if outcome in ("fail", "xfail", "crashed", "error"):
                entry["tests"] = [
                    {
                        "nodeid": "conformance/tests/test_made_up.py::"
                        f"test_{requirement['anchor'].replace('-', '_')}",
                        "outcome": "failed",
                        "message": f"AssertionError: made up for {key}",
                    }
                ]
            entries.append(entry)
        report = {
            "spec_version": registry["spec_version"],
            "suite_version": "1.0.0",
            "implementation": {
                "name": key,
                "version": "0",
                "capabilities": [],
            },
            "requirements": entries,
            "summary": {
                "MUST": counts,
                "SHOULD": counts,
                "MAY": counts,
                "verdict": "non-conformant",
            },
        }
        path = results / f"{key}.json"
        path.write_text(json.dumps(report), encoding="utf-8")


@pytest.fixture(scope="module")
def site() -> Iterator[Path]:
    """Build a copy of the site with a report in every matrix column."""
    with tempfile.TemporaryDirectory(prefix="coextra-docs-") as name:
        source = Path(name) / "src"
        source.mkdir()
        for path in ("conf.py", "index.rst"):
            shutil.copy(ROOT / path, source / path)
        for folder in (
            "pep",
            "docs",
            "conformance/tests",
            "reference_impl/src",
            "implementations/cpython-3.13",
        ):
            if not (ROOT / folder).is_dir():
                continue
            shutil.copytree(
                ROOT / folder,
                source / folder,
                ignore=shutil.ignore_patterns("_build", "__pycache__"),
            )
        for path in (
            "conformance/report.schema.json",
            "benchmarks/results.schema.json",
            "benchmarks/results/latest.json",
            # The extension reads the PEP through the shared parser and
            # builds the capability table from the adapter and the header.
            "tools/pep_source.py",
            "conformance/adapter.py",
            "conformance/abi/coextra_abi.h",
        ):
            if (ROOT / path).is_file():
                (source / path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / path, source / path)
        (source / "results").mkdir()
        full_matrix_reports(source / "results")
        sphinx_build(source, Path(name) / "build" / "html")
        yield Path(name) / "build" / "html"


def probe(page: Path, profile: Path) -> dict[str, Any]:
    """Load a copy of the page with PROBE added; return its figures."""
    probed = page.with_name(page.stem + "-probe.html")
    html = page.read_text(encoding="utf-8")
    probed.write_text(html.replace("</body>", PROBE + "</body>"), "utf-8")
    dom = run_chromium(
        [f"--window-size={WIDTH},1000", "--dump-dom", probed.as_uri()],
        profile,
    )
    found = re.search(r'<pre id="coextra-probe">(.*?)</pre>', dom, re.S)
    assert found is not None, "the probe script did not run"
    text = found.group(1).replace("&quot;", '"').replace("&amp;", "&")
    figures: dict[str, Any] = json.loads(text)
    return figures


def screenshot(page: Path, height: int, profile: Path, name: str) -> Path:
    """Screenshot a page at WIDTH px into ``name``.png; return its path."""
    keep = os.environ.get("COEXTRA_SCREENSHOTS")
    folder = Path(keep) if keep else profile.parent
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.png"
    run_chromium(
        [
            f"--window-size={WIDTH},{height}",
            f"--screenshot={target}",
            page.as_uri(),
        ],
        profile,
    )
    return target


def load(path: Path) -> Any:
    """Read a PNG file as an RGB image."""
    return Image.open(path).convert("RGB")


def share(image: Any, predicate: Any) -> float:
    """Fraction of the pixels for which ``predicate(r, g, b)`` holds."""
    small = image.resize((image.width // 4, image.height // 4))
    data = small.tobytes()  # RGB triples
    count = len(data) // 3
    hits = sum(
        1 for i in range(0, 3 * count, 3) if predicate(*data[i : i + 3])
    )
    return hits / count


def near(colour: tuple[int, int, int], tolerance: int = 12) -> Any:
    """Return a predicate matching pixels close to ``colour``."""
    return lambda r, g, b: all(
        abs(a - b_) <= tolerance
        for a, b_ in zip((r, g, b), colour, strict=True)
    )


def is_white(r: int, g: int, b: int) -> bool:
    """Pure or almost pure white."""
    return min(r, g, b) >= 250


def test_pep_page_renders_styled(site: Path, tmp_path: Path) -> None:
    """The PEP page is styled and shows red-bordered MUST boxes."""
    page = site / "pep" / "pep-9999.html"
    figures = probe(page, tmp_path / "profile")
    assert figures["sheets"] >= 2, "the theme's stylesheets loaded"
    assert "sans-serif" in figures["bodyFont"], "the theme's font stack"
    assert figures["boxes"] > 0, "requirements are rendered as boxes"
    # --coextra-must, the red left border of a MUST box (coextra.css).
    assert figures["boxBorder"] == "rgb(179, 38, 30)", figures
    assert figures["pageWidth"] <= WIDTH, "no horizontal scrolling"

    top = load(screenshot(page, 1200, tmp_path / "profile", "pep-9999"))
    assert top.size == (WIDTH, 1200)
    assert share(top, is_white) < 0.9, "the page is not mostly blank"
    # What a reader following a link to the first requirement sees.  The
    # page is shifted rather than screenshot whole and cropped: the
    # Rationale grows, and the first box is already more than 16,000 px
    # down, past what one screenshot can hold.
    assert figures["boxId"], "requirement boxes carry their anchor as id"
    image = screenshot_at(
        page, figures["boxId"], tmp_path / "profile", "pep-9999-requirements"
    )
    # MUST boxes draw red left borders and badges.
    assert share(image, near((179, 38, 30), 30)) > 0.0005
    data = image.resize((320, 750)).tobytes()
    colours = len({data[i : i + 3] for i in range(0, len(data), 3)})
    assert colours > 200, "text, links and boxes give many colours"


def test_matrix_fits_1280_px(site: Path, tmp_path: Path) -> None:
    """A matrix with every column fits a 1280 px window."""
    page = site / "docs" / "matrix.html"
    figures = probe(page, tmp_path / "profile")
    assert figures["matrixRight"] is not None, "the matrix is on the page"
    assert figures["matrixRight"] <= figures["viewport"], figures
    assert figures["wrapperScrolls"] is False, figures
    assert figures["pageWidth"] <= WIDTH, figures

    image = load(screenshot(page, 3200, tmp_path / "profile", "matrix"))
    # Outcome colours from coextra.css: pass green and fail red cells.
    assert share(image, near((0xDC, 0xF1, 0xE0), 6)) > 0.005
    assert share(image, near((0xF9, 0xD7, 0xD5), 6)) > 0.005
    html = page.read_text(encoding="utf-8")
    heads = re.findall(r'<th class="head"><p>([^<]*)</p>', html)
    assert [label for _, label in KNOWN_COLUMNS] == heads[
        1 : 1 + len(KNOWN_COLUMNS)
    ]


# -- round two: what a reviewer on a 1280 px screen needs -------------------

#: Figures of one page, measured after its stylesheets applied; the
#: expression is the body of a function returning a JSON-able object.
MEASURE = """
<script>
(function () {
  function figures() { %s }
  var probe = document.createElement("pre");
  probe.id = "coextra-probe";
  probe.textContent = JSON.stringify(figures());
  document.body.appendChild(probe);
})();
</script>
"""


def measure(page: Path, profile: Path, body: str) -> Any:
    """Load a copy of the page with ``body`` run in it; return its result."""
    probed = page.with_name(page.stem + "-measure.html")
    html = page.read_text(encoding="utf-8")
    script = MEASURE % body
    probed.write_text(html.replace("</body>", script + "</body>"), "utf-8")
    dom = run_chromium(
        [f"--window-size={WIDTH},1000", "--dump-dom", probed.as_uri()],
        profile,
    )
    found = re.search(r'<pre id="coextra-probe">(.*?)</pre>', dom, re.S)
    assert found is not None, "the measuring script did not run"
    text = found.group(1).replace("&quot;", '"').replace("&amp;", "&")
    text = text.replace("&lt;", "<").replace("&gt;", ">")
    return json.loads(text)


#: How many lines an element's text takes: 1 unless it wrapped.
LINES = """
function lines(element) {
  var rects = element.getClientRects();
  var tops = {};
  for (var i = 0; i < rects.length; i++) {
    tops[Math.round(rects[i].top)] = true;
  }
  return Object.keys(tops).length;
}
function wrapped(selector) {
  var found = [];
  document.querySelectorAll(selector).forEach(function (element) {
    if (lines(element) > 1) { found.push(element.textContent); }
  });
  return found;
}
"""


def test_pep_outline_is_visible_at_1280_px(site: Path, tmp_path: Path) -> None:
    """The PEP shows its outline beside the text, inside the window."""
    page = site / "pep" / "pep-9999.html"
    figures = measure(
        page,
        tmp_path / "profile",
        """
        var toc = document.querySelector(".toc-drawer");
        var content = document.querySelector(".content");
        var rect = toc.getBoundingClientRect();
        return {
          display: getComputedStyle(toc).display,
          left: rect.left, right: rect.right, width: rect.width,
          contentRight: content.getBoundingClientRect().right,
          links: toc.querySelectorAll("a.reference").length,
          viewport: window.innerWidth,
          pageWidth: document.documentElement.scrollWidth
        };
        """,
    )
    assert figures["display"] != "none", figures
    assert figures["width"] > 150, figures
    assert figures["right"] <= figures["viewport"], figures
    assert figures["contentRight"] <= figures["left"] + 1, "no overlap"
    assert figures["links"] > 20, "the outline lists the PEP's sections"
    assert figures["pageWidth"] <= WIDTH, figures
    image = load(screenshot(page, 1000, tmp_path / "profile", "pep-outline"))
    # The outline's text is drawn in the right-hand column.
    column = image.crop((int(figures["left"]), 0, WIDTH, 1000))
    assert share(column, lambda r, g, b: min(r, g, b) < 200) > 0.01


def test_requirement_index_fits_without_breaking_ids(
    site: Path, tmp_path: Path
) -> None:
    """IDs and test names stay on one line and the table fits."""
    page = site / "docs" / "requirements.html"
    figures = measure(
        page,
        tmp_path / "profile",
        LINES
        + """
        var table = document.querySelector("table.coextra-index");
        var wrapper = table.parentElement;
        return {
          right: table.getBoundingClientRect().right,
          scrolls: wrapper.scrollWidth > wrapper.clientWidth,
          wrappedIds: wrapped("td.coextra-id-cell code"),
          wrappedTests: wrapped("td.coextra-tests code"),
          tests: document.querySelectorAll("td.coextra-tests code").length,
          pageWidth: document.documentElement.scrollWidth
        };
        """,
    )
    assert figures["wrappedIds"] == [], figures["wrappedIds"]
    assert figures["wrappedTests"] == [], figures["wrappedTests"]
    assert figures["right"] <= WIDTH, figures
    assert figures["scrolls"] is False, figures
    assert figures["pageWidth"] <= WIDTH, figures
    screenshot(page, 1000, tmp_path / "profile", "requirements")


def test_benchmark_tables_keep_identifiers_whole(
    site: Path, tmp_path: Path
) -> None:
    """Benchmark names are never broken and every table fits."""
    page = site / "docs" / "benchmarks.html"
    figures = measure(
        page,
        tmp_path / "profile",
        LINES
        + """
        var overflow = [];
        document.querySelectorAll("table.coextra-bench").forEach(
          function (table) {
            var wrapper = table.parentElement;
            if (wrapper.scrollWidth > wrapper.clientWidth) {
              overflow.push(table.textContent.slice(0, 60));
            }
          });
        return {
          tables: document.querySelectorAll("table.coextra-bench").length,
          wrapped: wrapped("table.coextra-bench td:first-child p"),
          overflow: overflow,
          pageWidth: document.documentElement.scrollWidth
        };
        """,
    )
    assert figures["tables"] > 3, figures
    assert figures["wrapped"] == [], figures["wrapped"]
    assert figures["overflow"] == [], figures["overflow"]
    assert figures["pageWidth"] <= WIDTH, figures
    screenshot(page, 3000, tmp_path / "profile", "benchmarks")


def test_matrix_shows_crashes_titles_evidence_and_coverage(
    site: Path, tmp_path: Path
) -> None:
    """Crashes look like crashes, titles show, evidence is a click away."""
    page = site / "docs" / "matrix.html"
    figures = measure(
        page,
        tmp_path / "profile",
        """
        var crash = document.querySelector("td.outcome-crash");
        var xfail = document.querySelector(
          "td.outcome-xfail:not(.outcome-crash)");
        var title = document.querySelector("span.coextra-title");
        var broken = [];
        document.querySelectorAll("table.coextra-matrix td a[href^='#']")
          .forEach(function (link) {
            var id = link.getAttribute("href").slice(1);
            if (!document.getElementById(id)) { broken.push(id); }
          });
        return {
          crashBg: getComputedStyle(crash).backgroundColor,
          crashText: crash.textContent,
          xfailBg: getComputedStyle(xfail).backgroundColor,
          titleWidth: title.getBoundingClientRect().width,
          titleVisible: getComputedStyle(title).visibility,
          evidenceLinks: document.querySelectorAll(
            "table.coextra-matrix td a[href^='#evidence-']").length,
          broken: broken,
          coverage: document.querySelectorAll(
            "#matrix-coverage li").length,
          columns: document.querySelectorAll(
            "table.coextra-matrix thead th").length - 1,
          right: document.querySelector("table.coextra-matrix")
            .getBoundingClientRect().right
        };
        """,
    )
    assert figures["crashBg"] == "rgb(122, 28, 20)", figures
    assert figures["crashText"].startswith("crash"), figures
    assert figures["xfailBg"] != figures["crashBg"], figures
    assert figures["titleWidth"] > 40, figures
    assert figures["titleVisible"] == "visible", figures
    assert figures["evidenceLinks"] > 0, figures
    assert figures["broken"] == [], figures["broken"][:5]
    assert figures["coverage"] == figures["columns"] == len(KNOWN_COLUMNS)
    assert figures["right"] <= WIDTH, figures
    image = load(screenshot(page, 2400, tmp_path / "profile", "matrix-top"))
    assert share(image, near((122, 28, 20), 10)) > 0.001, "crash cells"


#: Shifts the page's main column so that the element with the id sits
#: near the top of the window: headless Chromium's --screenshot captures
#: the top of the page whatever the fragment, so scrolling cannot be used.
SHIFT = """
<script>
(function () {
  var target = document.getElementById(%s);
  var article = document.querySelector("article");
  var top = target.getBoundingClientRect().top
    - article.getBoundingClientRect().top;
  article.style.transform = "translateY(" + (120 - top) + "px)";
})();
</script>
"""


def screenshot_at(page: Path, element: str, profile: Path, name: str) -> Any:
    """Screenshot a page where ``element`` is; return the image.

    That is what a reader following a link to ``#element`` sees.
    """
    shifted = page.with_name(f"{page.stem}-at-{element}.html")
    html = page.read_text(encoding="utf-8")
    script = SHIFT % json.dumps(element)
    shifted.write_text(html.replace("</body>", script + "</body>"), "utf-8")
    return load(screenshot(shifted, 800, profile, name))


def test_evidence_of_a_cell_is_one_click_away(
    site: Path, tmp_path: Path
) -> None:
    """Following a deviating cell shows what the suite saw."""
    page = site / "docs" / "matrix.html"
    html = page.read_text(encoding="utf-8")
    anchor = re.search(r'href="#(evidence-[^"]+)"', html)
    assert anchor is not None, "a cell links to its evidence"
    block = html.split(f'id="{anchor[1]}"')[1].split("</pre>")[0]
    assert "made up for" in block, "the failing test's message is shown"
    image = screenshot_at(page, anchor[1], tmp_path / "profile", "evidence")
    # The evidence is a grey code block right under the shifted top.
    assert share(image.crop((300, 120, 1000, 400)), is_white) < 0.9


def test_typing_a_requirement_id_lands_on_it(
    site: Path, tmp_path: Path
) -> None:
    """search.html?q=R-FREE-3 goes to R-FREE-3, not to a result list."""
    targets = (site / "_static" / "coextra-requirements.js").read_text(
        encoding="utf-8"
    )
    assert '"R-FREE-3": "pep/pep-9999.html#r-free-3"' in targets
    url = (site / "search.html").as_uri() + "?q=r-free-3"
    dom = run_chromium(
        ["--virtual-time-budget=5000", "--dump-dom", url], tmp_path / "p"
    )
    assert 'id="r-free-3"' in dom, "the browser is on the PEP page"
    assert "search-results" not in dom
    # Where the reader lands: the box of R-FREE-3 (its red MUST border).
    pep = site / "pep" / "pep-9999.html"
    image = screenshot_at(pep, "r-free-3", tmp_path / "profile", "search-id")
    assert share(image, near((179, 38, 30), 30)) > 0.0005


@pytest.mark.parametrize(
    ("name", "selector", "minimum"),
    [
        ("docs/api", "table.coextra-api tbody tr", 8),
        ("docs/changes", "table.coextra-changes tbody tr", 8),
        ("docs/tests", "p.coextra-page-req", 40),
        ("docs/reference_source", "div.coextra-c-file span[id]", 500),
        ("docs/patches", "div.highlight-diff", 1),
    ],
)
def test_new_pages_render_at_1280_px(
    site: Path, tmp_path: Path, name: str, selector: str, minimum: int
) -> None:
    """API, changes, tests, C source and patches: filled and in the window."""
    page = site / f"{name}.html"
    figures = measure(
        page,
        tmp_path / "profile",
        f"""
        return {{
          count: document.querySelectorAll("{selector}").length,
          pageWidth: document.documentElement.scrollWidth
        }};
        """,
    )
    assert figures["count"] >= minimum, figures
    assert figures["pageWidth"] <= WIDTH, figures
    screenshot(page, 1000, tmp_path / "profile", name.replace("/", "-"))


def test_requirement_box_links_to_tests_and_c_lines(
    site: Path, tmp_path: Path
) -> None:
    """Each box: one click to its tests, one to its C lines."""
    pep = (site / "pep" / "pep-9999.html").read_text(encoding="utf-8")
    assert 'href="../docs/tests.html#tests-r-free-3"' in pep
    assert 'href="../docs/reference_source.html#impl-r-free-3"' in pep
    tests = (site / "docs" / "tests.html").read_text(encoding="utf-8")
    block = tests.split('id="tests-r-free-3"')[1].split('id="tests-')[0]
    assert "test_destruction_frees_every_value_once" in block
    source = site / "docs" / "reference_source.html"
    text = source.read_text(encoding="utf-8")
    impl = text.split('id="impl-r-free-3"')[1].split('id="impl-')[0]
    line = re.search(r'href="#(coextra-c-L-\d+)"', impl)
    assert line is not None
    assert f'id="{line[1]}"' in text
    pep_page = site / "pep" / "pep-9999.html"
    screenshot_at(pep_page, "r-free-3", tmp_path / "profile", "box-links")
    image = screenshot_at(source, line[1], tmp_path / "profile", "c-line")
    # Highlighted C code fills the window from the cited line on.
    assert share(image.crop((300, 120, 1000, 700)), is_white) < 0.5
