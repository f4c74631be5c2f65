"""Clean reports: no progress bars in the executed copy or the HTML, counts printed as integers."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from tqdm import tqdm

from atelier.report import tables
from atelier.report.notebook import run_notebook
from atelier.report.render import render_html, strip_engine_chatter, strip_progress_bars
from atelier.segment import density


def _bar_text(total: int | None = 5, description: str = "grid search") -> str:
    """What a real tqdm bar writes to a non-terminal stream (as a kernel's stderr is)."""
    stream = io.StringIO()
    items = range(5) if total else iter(range(5))
    for _ in tqdm(items, desc=description, file=stream, mininterval=0):
        pass
    return stream.getvalue()


def _notebook_with(*stderr_texts: str) -> nbformat.NotebookNode:
    outputs = [new_output("stream", name="stderr", text=text) for text in stderr_texts]
    outputs.append(new_output("stream", name="stdout", text="result 42\n"))
    return new_notebook(cells=[new_markdown_cell("# 1 · A report"), new_code_cell("run()", outputs=outputs)])


@pytest.mark.parametrize("total", [5, None], ids=["with a total", "without a total"])
def test_progress_bars_are_stripped_and_everything_else_stays(total):
    bar = _bar_text(total)
    assert "it/s" in bar or "s/it" in bar
    notebook = _notebook_with(bar, "\n", "UserWarning: the sample is small\n")
    assert strip_progress_bars(notebook) == 2  # the bar and the newline a closed bar leaves
    outputs = notebook.cells[1].outputs
    assert [(o.name, o.text) for o in outputs] == [
        ("stderr", "UserWarning: the sample is small\n"),
        ("stdout", "result 42\n"),
    ]


def test_a_warning_sharing_an_output_with_a_bar_is_kept():
    notebook = _notebook_with("ConvergenceWarning: stopped early\n" + _bar_text())
    assert strip_progress_bars(notebook) == 1
    assert notebook.cells[1].outputs[0].text == "ConvergenceWarning: stopped early\n"


def test_text_that_only_looks_a_bit_like_a_bar_is_kept():
    texts = ["50% | of customers [see below]\n", "progress: 3/5 done\n", "\n"]
    notebook = _notebook_with(*texts)
    assert strip_progress_bars(notebook) == 0
    assert [o.text for o in notebook.cells[1].outputs[:-1]] == texts


def test_rendered_html_has_no_progress_bars_but_the_executed_notebook_keeps_what_it_holds(tmp_path):
    executed = tmp_path / "01_report.ipynb"
    nbformat.write(_notebook_with(_bar_text(description="prep: snapshots"), "\n"), executed)
    full = render_html(executed).read_text(encoding="utf-8")
    story = executed.with_name("01_report.story.html").read_text(encoding="utf-8")
    for html in (full, story):
        assert "prep: snapshots" not in html and "result 42" in html
    assert "prep: snapshots" in executed.read_text(encoding="utf-8"), "render_html only reads the notebook"


def test_describe_counts_are_integers():
    frame = pd.DataFrame({"a": [1.5, 2.5, np.nan], "b": [1.0, 2.0, 3.0]})
    described = tables.describe(frame)
    assert described["count"].tolist() == [2, 3] and described["count"].dtype == "int64"
    assert described.loc["a", "mean"] == 2.0
    with pd.option_context("display.float_format", "{:,.3f}".format):
        assert "2.000" not in described[["count"]].to_string()


def test_density_summary_keeps_cluster_counts_integer():
    results = {
        name: {"clusters": 2, "noise_share": 0.08, "ari_vs_kmeans_all": 0.3, "ari_vs_kmeans_clustered": 0.4}
        for name in density.METHODS
    }
    summary = density.summary(results)
    assert summary["clusters"].dtype == "int64" and summary["noise_share"].dtype == "float64"
    with pd.option_context("display.float_format", "{:,.3f}".format):
        assert "2.000" not in summary.to_string() and "0.080" in summary.to_string()


@pytest.mark.slow
def test_a_kernel_s_progress_bars_reach_the_log_but_not_the_report(tmp_path, caplog):
    """A real papermill run: tqdm inside the kernel, as the grid search and the replay use it."""
    source = tmp_path / "source.ipynb"
    parameters = new_code_cell("steps = 1")
    parameters.metadata["tags"] = ["parameters"]
    nbformat.write(new_notebook(
        cells=[
            new_markdown_cell("# 9 · A test report"),
            parameters,
            new_code_cell("import sys\nfrom tqdm import tqdm\nfor _ in tqdm(range(steps), desc='distinct' + ' loop', "
                          "file=sys.stderr, mininterval=0):\n    pass\nprint('finished', steps)"),
            new_code_cell("import pandas as pd\npd.set_option('display.float_format', '{:,.3f}'.format)\n"
                          "pd.DataFrame.from_dict({'dbscan': {'clusters': 2, 'noise': 0.1}}, orient='index')"),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    ), source)
    executed = tmp_path / "reports" / "09_test.ipynb"
    executed.parent.mkdir()
    with caplog.at_level(logging.INFO):
        html = run_notebook(source, executed, {"steps": 3}, tmp_path)
    assert "distinct loop" in caplog.text, "the bar belongs in the log"
    for text in (html.read_text(encoding="utf-8"), executed.read_text(encoding="utf-8"),
                 Path(str(html).replace(".html", ".story.html")).read_text(encoding="utf-8")):
        assert "distinct loop" not in text and "finished 3" in text
        assert "2.000" not in text and "0.100" in text


def test_engine_chatter_is_stripped_and_the_rest_printed_stays():
    spark = ("WARNING: Using incubator modules: jdk.incubator.vector\n",
             "Using Spark's default log4j profile: org/apache/spark/log4j2-defaults.properties\n"
             'Setting default log level to "WARN".\n'
             "To adjust logging level use sc.setLogLevel(newLevel). For SparkR, use setLogLevel(newLevel).\n",
             "26/12/04 01:39:17 WARN NativeCodeLoader: Unable to load native-hadoop library for your platform... "
             "using builtin-java classes where applicable\n",
             "Starting Streaming TransformWithStateInPandas Python worker.\n\n",
             "26/12/04 01:39:18 WARN TaskSetManager: Lost task 0.0 in stage 3.0\n")  # a real warning: kept
    notebook = _notebook_with(*spark)
    notebook.cells[1].outputs.append(new_output("stream", name="stdout", text=(
        "[IterativeImputer] Completing matrix with shape (71261, 27)\n"
        "[IterativeImputer] Change: 563.244126704494, scaled tolerance: 1.4599186226851852 \n"
        "[IterativeImputer] Early stopping criterion reached.\n"
        "iterative imputation: 30 raw features, 57 prepared columns\n")))
    assert strip_engine_chatter(notebook) == 5
    assert [(o.name, o.text) for o in notebook.cells[1].outputs] == [
        ("stderr", "26/12/04 01:39:18 WARN TaskSetManager: Lost task 0.0 in stage 3.0\n"),
        ("stdout", "result 42\n"),
        ("stdout", "iterative imputation: 30 raw features, 57 prepared columns\n"),
    ]
    assert strip_engine_chatter(notebook) == 0
