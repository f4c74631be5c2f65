"""Rendering an executed notebook to HTML: the full report, and the "story" with the code hidden.

Both renders depend only on the executed notebook, so the same notebook gives the same bytes.
Progress bars (tqdm's lines on stderr) belong in the `dvc repro` log and in an interactive session,
not in a document people read: `strip_progress_bars` removes them, and both renders apply it. So does
`strip_engine_chatter` for what the engines print while they work (Spark's JVM start-up lines, its
streaming workers' start/stop lines, the iterative imputer's rounds): the `dvc repro` log keeps them.
"""

from __future__ import annotations

import copy
import html
import re
from pathlib import Path
from typing import Any

import nbformat
from nbconvert import HTMLExporter
from nbformat.v4 import new_markdown_cell

#: One status line of a tqdm bar, with a total ("desc:  40%|████      | 2/5 [00:04<00:06,  2.33s/it]")
#: or without ("desc: 12it [00:01,  8.50it/s]").
PROGRESS_LINE = re.compile(
    r"^(?:[^\r\n]*: )?\s*(?:\d{1,3}%\|[^|\r\n]*\| *[\d.]+[kMGTP]?/[\d.]+[kMGTP]?|[\d.]+[kMGTP]?it)"
    r" \[[^\]\r\n]*\]\s*$"
)


def _without_progress(text: str) -> tuple[str, bool]:
    """`text` without its tqdm status lines, and whether it had any.

    tqdm redraws a bar with carriage returns and ends it with a newline: a line whose carriage-return
    segments are all bars (or empty) goes, with its newline; any other line keeps its non-bar segments.
    """
    kept, found = [], False
    for line in text.split("\n"):
        segments = line.split("\r")
        bars = [bool(PROGRESS_LINE.match(segment)) for segment in segments]
        if any(bars):
            found = True
            rest = [segment for segment, bar in zip(segments, bars) if not bar and segment]
            if rest:
                kept.append("".join(rest))
        else:
            kept.append(line)
    return ("\n".join(kept) if found else text), found


def strip_progress_bars(notebook: nbformat.NotebookNode) -> int:
    """Remove tqdm progress bars from the notebook's stderr outputs, in place; return how many outputs changed.

    A stderr output that held only progress (and the newline a closed bar writes after it) is dropped;
    any other text on stderr (a warning, say) stays.
    """
    changed = 0
    for cell in notebook.cells:
        outputs, kept, after_bar = cell.get("outputs", []), [], False
        for output in outputs:
            if output.get("output_type") != "stream" or output.get("name") != "stderr":
                kept.append(output)
                after_bar = False
                continue
            text = output.get("text", "")
            cleaned, had_bar = _without_progress(text)
            if had_bar or (after_bar and not text.strip()):
                changed += 1
                after_bar = True
                if cleaned.strip():
                    output["text"] = cleaned
                    kept.append(output)
            else:
                kept.append(output)
        if "outputs" in cell:
            cell["outputs"] = kept
    return changed


#: The tag of the banner cell `add_run_label` puts at the top of a report.
RUN_LABEL_TAG = "run-label"
#: The banner's look, shared by the reports and the landing page.
BANNER_STYLE = "background:#fff4ce;border:1px solid #d9a400;border-radius:4px;padding:.6rem 1rem;margin:.5rem 0"


def run_label(params: dict[str, Any]) -> str | None:
    """The label a run's reports carry (params.yaml `run_label`, set by `make quick`), or None."""
    label = params.get("run_label")
    return str(label).strip() or None if label is not None else None


def banner(label: str) -> str:
    """The run label as an HTML banner (for the landing page and the reports' first cell)."""
    return f'<div class="run-label" style="{BANNER_STYLE}"><strong>{html.escape(label)}</strong></div>'


def add_run_label(notebook: nbformat.NotebookNode, label: str | None) -> bool:
    """Put the run label at the top of the notebook as a banner cell (replacing an earlier one); return whether
    the notebook changed."""
    cells = [c for c in notebook.cells if RUN_LABEL_TAG not in c.get("metadata", {}).get("tags", [])]
    if label:
        cell = new_markdown_cell(banner(label))
        cell.metadata["tags"] = [RUN_LABEL_TAG]
        cells.insert(0, cell)
    changed = [c.source for c in cells] != [c.source for c in notebook.cells]
    notebook.cells = cells
    return changed


#: Lines the engines print on their own while they work (exact shapes; anything else printed stays).
ENGINE_CHATTER = re.compile("|".join((
    r"^WARNING: Using incubator modules: jdk\.incubator\.vector$",
    r"^Using Spark's default log4j profile: \S+$",
    r'^Setting default log level to "WARN"\.$',
    r"^To adjust logging level use sc\.setLogLevel\(newLevel\)\. For SparkR, use setLogLevel\(newLevel\)\.$",
    r"^\d\d/\d\d/\d\d \d\d:\d\d:\d\d WARN NativeCodeLoader: Unable to load native-hadoop library for your "
    r"platform\.\.\. using builtin-java classes where applicable$",
    r"^(?:Starting )?Streaming TransformWithStateInPandas Python worker\b.*$",
    r"^\[IterativeImputer\] (?:Completing matrix with shape \(\d+, \d+\)|Change: [\d.e+-]+, scaled tolerance: "
    r"[\d.e+-]+ ?|Early stopping criterion (?:not )?reached\.)$",
)))


def strip_engine_chatter(notebook: nbformat.NotebookNode) -> int:
    """Remove `ENGINE_CHATTER` lines (and the blank lines around them) from the notebook's stream outputs, in
    place; an output left empty is dropped. Returns how many outputs changed."""
    changed = 0
    for cell in notebook.cells:
        kept = []
        for output in cell.get("outputs", []):
            if output.get("output_type") != "stream":
                kept.append(output)
                continue
            lines = output.get("text", "").split("\n")
            chatter = [bool(ENGINE_CHATTER.match(line)) for line in lines]
            if not any(chatter):
                kept.append(output)
                continue
            changed += 1
            rest = [line for line, noise in zip(lines, chatter) if not noise]
            if any(line.strip() for line in rest):
                output["text"] = "\n".join(rest).lstrip("\n")
                kept.append(output)
        if "outputs" in cell:
            cell["outputs"] = kept
    return changed


def _clean(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of the notebook without progress bars and engine chatter (the original is left as it is)."""
    notebook = copy.deepcopy(notebook)
    strip_progress_bars(notebook)
    strip_engine_chatter(notebook)
    return notebook


def render_story(executed: Path, notebook: nbformat.NotebookNode | None = None) -> Path:
    """Render `<name>.story.html` beside the executed notebook: markdown and outputs, no code."""
    executed = Path(executed)
    notebook = _clean(notebook if notebook is not None else nbformat.read(executed, as_version=4))
    exporter = HTMLExporter(
        template_name="lab", exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True
    )
    body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"name": f"{executed.stem} (story)"}})
    story = executed.with_name(f"{executed.stem}.story.html")
    story.write_text(body, encoding="utf-8", newline="\n")
    return story


def render_html(executed: Path) -> Path:
    """Render an executed notebook to HTML beside it (nbconvert's lab template), and its code-hidden
    story version `<name>.story.html`; return the full HTML. Both depend only on the notebook."""
    executed = Path(executed)
    notebook = _clean(nbformat.read(executed, as_version=4))
    resources = {"metadata": {"name": executed.stem}}  # the page title; nbconvert's default is "Notebook"
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(notebook, resources=resources)
    html = executed.with_suffix(".html")
    html.write_text(body, encoding="utf-8", newline="\n")
    render_story(executed, notebook)
    return html
