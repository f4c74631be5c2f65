"""The story render and the reports' landing page, on tiny hand-made executed notebooks (no kernel)."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from atelier.core import paths
from atelier.report import index as report_index
from atelier.report.index import MISSING, build_index, headline_value, key_plot, title_and_question
from atelier.report.notebook import render_html

CODE_MARKER = "distinctive_code_marker = compute_the_answer()"
OUTPUT_MARKER = "distinctive output marker 4242"


def png(red: int) -> str:
    """A valid 1x1 PNG of the given red level, base64-encoded as notebooks store it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixels = zlib.compress(bytes([0, red, 0, 0]))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    raw = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    return base64.b64encode(raw).decode()


FIRST_IMAGE, KEY_IMAGE = png(10), png(200)


def executed_notebook(title: str = "2 · Segments that hold", tag_key_plot: bool = True) -> nbformat.NotebookNode:
    """An 'executed' notebook: a heading and question, a code cell with a stream output, two plots."""
    key_cell = new_code_cell(
        "plots.k_sweep(sweep)", outputs=[new_output("display_data", data={"image/png": KEY_IMAGE})]
    )
    if tag_key_plot:
        key_cell.metadata["tags"] = ["key-plot"]
    return new_notebook(
        cells=[
            new_markdown_cell(
                f"# {title}\n\n*Which customers behave alike, and does it last?* More text\n\nSecond paragraph."
            ),
            new_code_cell(CODE_MARKER, outputs=[new_output("stream", name="stdout", text=OUTPUT_MARKER + "\n")]),
            new_markdown_cell("## A section\n\nThe narrative stays in the story."),
            new_code_cell("plots.first(x)", outputs=[new_output("display_data", data={"image/png": FIRST_IMAGE})]),
            key_cell,
        ]
    )


def write_report(root: Path, name: str, notebook: nbformat.NotebookNode) -> Path:
    executed = root / "reports" / f"{name}.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, executed)
    return executed


def test_story_html_keeps_markdown_and_outputs_but_not_code(tmp_path):
    executed = write_report(tmp_path, "02_segmentation", executed_notebook())
    full = render_html(executed)
    story = tmp_path / "reports" / "02_segmentation.story.html"
    assert full == executed.with_suffix(".html") and story.is_file()
    full_text, story_text = full.read_text(encoding="utf-8"), story.read_text(encoding="utf-8")
    assert "distinctive_code_marker" in full_text
    assert "distinctive_code_marker" not in story_text
    assert OUTPUT_MARKER in story_text and "The narrative stays in the story." in story_text
    assert KEY_IMAGE in story_text


def test_render_is_byte_stable(tmp_path):
    executed = write_report(tmp_path, "03_propensity_model", executed_notebook())
    full = render_html(executed)
    story = executed.with_name("03_propensity_model.story.html")
    first = full.read_bytes(), story.read_bytes()
    render_html(executed)
    assert (full.read_bytes(), story.read_bytes()) == first


def test_title_and_question_come_from_the_first_heading_and_paragraph():
    title, question = title_and_question(executed_notebook())
    assert title == "2 · Segments that hold"
    assert question == "Which customers behave alike, and does it last? More text"
    long = new_notebook(cells=[new_markdown_cell("# T\n\n" + "word " * 100)])
    assert title_and_question(long)[1].endswith(" …") and len(title_and_question(long)[1]) <= 182


def test_key_plot_prefers_the_tagged_cell_over_the_first_image():
    assert key_plot(executed_notebook(tag_key_plot=True)) == KEY_IMAGE
    assert key_plot(executed_notebook(tag_key_plot=False)) == FIRST_IMAGE
    assert key_plot(new_notebook(cells=[new_markdown_cell("# No plots")])) is None


def test_headline_formats_numbers_intervals_and_missing_keys(tmp_path):
    (tmp_path / "metrics").mkdir()
    replay = {
        "ab_test": {"conversion": {"relative_uplift": 0.29213, "ci_low": 0.193493, "ci_high": 0.405389}},
        "drift": {"trigger": None},
        "books": {"balanced": True, "applied": 575201, "received": 581774},
    }
    (tmp_path / "metrics" / "replay.json").write_text(json.dumps(replay), encoding="utf-8")
    (tmp_path / "metrics" / "segment.json").write_text(json.dumps({"k": 5, "quality": {"silhouette": float("nan")}}))
    value = lambda file, key, fmt: headline_value(tmp_path, f"metrics/{file}.json", key, fmt)  # noqa: E731
    assert value("replay", "ab_test.conversion", report_index.uplift_with_ci) == "+29.2 % (95 % CI +19.3 … +40.5 %)"
    assert value("replay", "books", report_index.books) == "yes: 581,774 received = 575,201 applied + 6,573 set aside"
    assert value("replay", "drift.trigger", lambda day: day or "not triggered") == "not triggered"
    assert value("segment", "k", "{}") == "5"
    assert value("segment", "quality.silhouette", "{:.3f}") == MISSING
    assert value("segment", "quality.davies_bouldin", "{:.2f}") == MISSING
    assert value("replay", "ab_test", report_index.uplift_with_ci) == MISSING
    assert value("robustness", "fairness.max_disparity", "{:.3f}") == MISSING


def test_every_headline_reads_a_metrics_file_of_the_project():
    assert set(paths.NOTEBOOK_STAGES) - {"robustness"} <= set(report_index.HEADLINES)
    for entries in report_index.HEADLINES.values():
        assert 2 <= len(entries) <= 5
        assert all(file.startswith("metrics/") and file.endswith(".json") for _, file, _, _ in entries)


def test_index_links_built_phases_and_lists_missing_ones(tmp_path):
    for stage in ("segment", "model"):
        render_html(write_report(tmp_path, paths.NOTEBOOK_STAGES[stage], executed_notebook()))
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "segment.json").write_text(json.dumps({"k": 5, "quality": {"silhouette": 0.347783}}))
    page = build_index(tmp_path).read_text(encoding="utf-8")
    for stage in ("segment", "model"):
        name = paths.NOTEBOOK_STAGES[stage]
        assert f'href="{name}.html"' in page and f'href="{name}.story.html"' in page
    for stage in set(paths.NOTEBOOK_STAGES) - {"segment", "model"}:
        assert f'<td>{paths.NOTEBOOK_STAGES[stage]}</td><td colspan="3" class="missing">not built yet</td>' in page
    assert "<dt>Silhouette</dt><dd>0.348</dd>" in page and f"<dd>{MISSING}</dd>" in page
    assert f"data:image/png;base64,{KEY_IMAGE}" in page and FIRST_IMAGE not in page
    assert "http://" not in page and "https://" not in page


def test_index_escapes_text_from_the_notebook(tmp_path):
    write_report(tmp_path, paths.NOTEBOOK_STAGES["prep"], executed_notebook(title="Data <script>alert(1)</script>"))
    page = build_index(tmp_path).read_text(encoding="utf-8")
    assert "<script>" not in page
    assert "Data &lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_index_is_byte_identical_on_rebuild(tmp_path):
    write_report(tmp_path, paths.NOTEBOOK_STAGES["replay"], executed_notebook())
    first = build_index(tmp_path).read_bytes()
    assert build_index(tmp_path).read_bytes() == first


def test_the_questions_a_notebook_lists_are_preferred_over_its_first_paragraph():
    notebook = new_notebook(
        cells=[
            new_markdown_cell(
                "# 9 · Title\n\n*A long case-study quote.*\n\n"
                "**Questions this report answers.** Is it fair?\nDoes it drift?\n\nMore text."
            )
        ]
    )
    title, question = title_and_question(notebook)
    assert title == "9 · Title" and question == "Is it fair? Does it drift?"
