"""The landing page reads on a wide screen and on a phone, and a labelled run (make quick) says so everywhere."""

from __future__ import annotations

import base64
import struct
import zlib

import nbformat
import pytest
import yaml
from conftest import REPO
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from atelier.core import paths
from atelier.report import index as report_index
from atelier.report.render import RUN_LABEL_TAG, add_run_label, render_html

from .test_report_index import executed_notebook, write_report


def png(width: int, height: int) -> str:
    """A valid grey PNG of the given size, base64-encoded as notebooks store it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return base64.b64encode(raw).decode()


def _report_with_plot(image: str) -> nbformat.NotebookNode:
    return new_notebook(cells=[
        new_markdown_cell("# 1 · A phase\n\n*What is there?*"),
        new_code_cell("plots.curves()", outputs=[new_output("display_data", data={"image/png": image})]),
    ])


def test_the_page_scales_to_the_device_and_adapts_to_a_phone(tmp_path):
    write_report(tmp_path, paths.NOTEBOOK_STAGES["prep"], executed_notebook())
    page = report_index.build_index(tmp_path).read_text(encoding="utf-8")
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert '<table class="phases">' in page and "@media (max-width:40rem)" in page


def test_a_multi_panel_plot_is_marked_wide_and_a_single_one_is_not(tmp_path):
    assert report_index._aspect(png(500, 100)) == 5.0 and report_index._aspect("not a png") == 0.0
    write_report(tmp_path, paths.NOTEBOOK_STAGES["segment"], _report_with_plot(png(400, 100)))
    write_report(tmp_path, paths.NOTEBOOK_STAGES["model"], _report_with_plot(png(120, 100)))
    page = report_index.build_index(tmp_path).read_text(encoding="utf-8")
    segment, model = page.split('<section id="segment">')[1], page.split('<section id="model">')[1]
    assert segment.split("</figure>")[0].count('class="wide"') == 1
    assert 'class="wide"' not in model.split("</figure>")[0]


def test_a_run_label_in_params_puts_a_banner_on_the_landing_page(tmp_path):
    write_report(tmp_path, paths.NOTEBOOK_STAGES["prep"], executed_notebook())
    assert "run-label" not in report_index.build_index(tmp_path).read_text(encoding="utf-8")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"seed": 1, "run_label": "Quick run <small>"}),
                                          encoding="utf-8")
    page = report_index.build_index(tmp_path).read_text(encoding="utf-8")
    assert '<div class="run-label"' in page and "Quick run &lt;small&gt;" in page
    assert page.index("run-label") < page.index("<h1>")


def test_the_run_label_is_the_first_cell_once_and_goes_when_unset(tmp_path):
    notebook = executed_notebook()
    cells = len(notebook.cells)
    assert add_run_label(notebook, "Quick run") and add_run_label(notebook, "Quick run, again")
    assert len(notebook.cells) == cells + 1 and RUN_LABEL_TAG in notebook.cells[0].metadata["tags"]
    assert "Quick run, again" in notebook.cells[0].source and not add_run_label(notebook, "Quick run, again")
    executed = write_report(tmp_path, "02_segmentation", notebook)
    render_html(executed)
    for name in ("02_segmentation.html", "02_segmentation.story.html"):
        assert "Quick run, again" in (tmp_path / "reports" / name).read_text(encoding="utf-8")
    assert report_index.title_and_question(notebook)[0] == "2 · Segments that hold", "the banner is not a title"
    assert add_run_label(notebook, None) and len(notebook.cells) == cells


def _heading(name: str) -> str:
    """The first heading of the project's own notebook (its real, long title)."""
    source = nbformat.read(REPO / paths.NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    first = next(cell.source for cell in source.cells if cell.cell_type == "markdown")
    return first.splitlines()[0].lstrip("# ").strip()


@pytest.mark.parametrize("width", [1400, 390], ids=["wide screen", "phone"])
def test_the_landing_page_never_scrolls_sideways_in_chromium(tmp_path, chromium, width):
    for name in paths.NOTEBOOK_STAGES.values():
        write_report(tmp_path, name, executed_notebook(title=_heading(name)))
    index = report_index.build_index(tmp_path)
    page = chromium.new_page(viewport={"width": width, "height": 900})
    page.goto(index.resolve().as_uri())
    overflowing = page.evaluate("() => [...document.querySelectorAll('body *')].filter(e => "
                                "e.getBoundingClientRect().right > window.innerWidth + 0.5).map(e => e.tagName)")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), overflowing
    assert page.evaluate("document.querySelectorAll('table.phases tbody tr').length") == len(paths.NOTEBOOK_STAGES)
    page.close()
