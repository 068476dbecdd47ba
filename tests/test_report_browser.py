"""The report in a real browser: headless Chromium (Debian's chromium) renders the page; the
screenshot must show every chart's colours inside that chart's section, and the DOM Chromium
parsed must hold the charts' SVG elements."""

from __future__ import annotations

import re

import pytest

from touchline.pipelines import report
from touchline.pipelines.report_charts import PALETTE, SERIES
from touchline.transforms.warehouse import open_warehouse

from .browser import chromium, colour_counts, dump_dom, pixels, screenshot
from .report_fixture import report_warehouse
from .test_report import START

pytestmark = pytest.mark.browser

BAND = 1300  # px per section in the banded layout
#: section -> colours that must be drawn inside it (at least MIN_PIXELS pixels each)
EXPECTED = {
    "runs": [PALETTE["app"], PALETTE["web"], PALETTE["support"], PALETTE["transactions"]],
    "scores": [PALETTE["customer"], PALETTE["all"]],
    "trend": [PALETTE["customer"], PALETTE["all"]],
    "journeys": [PALETTE["app"], PALETTE["web"], SERIES[0]],
    "friction": [PALETTE["negative"], PALETTE["positive"], SERIES[0]],
    "dead_letters": [SERIES[0]],
    "identity": [SERIES[0], SERIES[1]],
}
MIN_PIXELS = 40
#: the banded layout: every section exactly BAND px tall at a known offset, nothing else on the page
BANDED_CSS = ("<style>header, nav, footer { display: none } body, main { margin: 0; padding: 0 } "
              f"section {{ box-sizing: border-box; height: {BAND}px; margin: 0; overflow: hidden; border-radius: 0 }}</style>")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    path, _, last = report_warehouse()
    folder = tmp_path_factory.mktemp("browser")
    out = folder / "report.html"
    wh = open_warehouse(path)
    try:
        states = report.write_report(wh, str(out), START, last)
    finally:
        wh.close()
    assert set(states.values()) == {"ok"}, states
    return out, list(states)


def test_chromium_renders_every_chart_in_its_section(page, tmp_path):
    binary = chromium()
    html_path, sections = page
    banded = tmp_path / "banded.html"
    banded.write_text(html_path.read_text().replace("</head>", BANDED_CSS + "</head>"))
    shot = tmp_path / "banded.png"
    screenshot(binary, banded.as_uri(), str(shot), 900, BAND * len(sections))
    image = pixels(str(shot))
    assert image.size == (900, BAND * len(sections))
    assert sections == list(EXPECTED)
    for i, section in enumerate(sections):
        counts = colour_counts(image, EXPECTED[section], (0, i * BAND, 900, (i + 1) * BAND))
        assert all(n >= MIN_PIXELS for n in counts.values()), (section, counts)
    # and the real page (header, navigation, all sections) renders them too
    full = tmp_path / "full.png"
    screenshot(binary, html_path.as_uri(), str(full), 900, BAND * len(sections))
    counts = colour_counts(pixels(str(full)), sorted({c for cs in EXPECTED.values() for c in cs}))
    assert all(n >= MIN_PIXELS for n in counts.values()), counts


def test_the_dom_chromium_parsed_holds_the_charts(page):
    html_path, _ = page
    dom = dump_dom(chromium(), html_path.as_uri())
    charts = dict(re.findall(r'<svg class="chart" data-chart="([^"]+)"[^>]*>(.*?)</svg>', dom, re.S))
    assert set(charts) >= {"sources", "score-distribution", "score-trend", "outcomes", "channel-flow", "friction",
                           "drivers", "dead-letters", "identifier-kinds"}, sorted(charts)
    assert charts["score-distribution"].count("<rect") >= 10
    assert charts["score-trend"].count("<path") >= 1 and charts["score-trend"].count("<circle") >= 3
    assert charts["channel-flow"].count("<path") >= 2  # Sankey links
    for name, body in charts.items():
        assert "<title>" in body, f"{name}: tooltips"
