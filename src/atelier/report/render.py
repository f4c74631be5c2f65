"""Rendering an executed notebook to HTML: the full report, and the "story" with the code hidden.

Both renders depend only on the executed notebook, so the same notebook gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbconvert import HTMLExporter


def render_story(executed: Path, notebook: nbformat.NotebookNode | None = None) -> Path:
    """Render `<name>.story.html` beside the executed notebook: markdown and outputs, no code."""
    executed = Path(executed)
    notebook = notebook if notebook is not None else nbformat.read(executed, as_version=4)
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
    notebook = nbformat.read(executed, as_version=4)
    resources = {"metadata": {"name": executed.stem}}  # the page title; nbconvert's default is "Notebook"
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(notebook, resources=resources)
    html = executed.with_suffix(".html")
    html.write_text(body, encoding="utf-8", newline="\n")
    render_story(executed, notebook)
    return html
