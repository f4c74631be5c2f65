"""The reports' landing page: every phase with its question, headline figures and key plot.

reports/index.html lists every phase in `paths.NOTEBOOK_STAGES`: its title and question (from the
executed notebook), links to the full and the story HTML, a few headline figures from metrics/*.json
(HEADLINES) and one key plot. The page is self-contained (inline CSS, images as data URIs) and
deterministic: the same reports and metrics give the same bytes, so it can be diffed and cached.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat

from atelier.core import paths
from atelier.core.config import load_params
from atelier.report.render import banner, run_label

MISSING = "—"
KEY_PLOT_TAG = "key-plot"
QUESTION_CHARACTERS = 180
QUESTIONS_LABEL = "**Questions this report answers.**"

Format = str | Callable[[Any], str]
#: (label, metrics file relative to the project root, dotted key ("" = the whole file), format).
Headline = tuple[str, str, str, Format]


def _number(value: Any) -> float:
    """`value` as a float; None and NaN are missing figures, not numbers to print."""
    if value is None or isinstance(value, bool) or (isinstance(value, float) and math.isnan(value)):
        raise ValueError("missing figure")
    return float(value)


def _percent(value: Any, sign: bool = False) -> str:
    return f"{100 * _number(value):{'+' if sign else ''}.1f}"


def uplift_with_ci(result: dict) -> str:
    """A relative uplift with its bootstrap interval: '+29.2 % (95 % CI +19.3 … +40.5 %)'."""
    low, high = _percent(result["ci_low"], True), _percent(result["ci_high"], True)
    return f"{_percent(result['relative_uplift'], True)} % (95 % CI {low} … {high} %)"


def champion_auc_with_ci(model: dict) -> str:
    """The champion's out-of-time ROC-AUC with its bootstrap 95 % interval."""
    test = model["test"][model["champion"]["name"]]
    low, high = (_number(v) for v in test["roc_auc_95ci"])
    return f"{_number(test['roc_auc']):.3f} (95 % CI {low:.3f} … {high:.3f})"


def champion_lift(model: dict) -> str:
    return f"{_number(model['test'][model['champion']['name']]['lift_top10']):.1f}× the base rate"


def quarantined_rows(tables: dict) -> str:
    quarantined = sum(int(_number(t["rows_quarantined"])) for t in tables.values())
    rows = sum(int(_number(t["rows_in"])) for t in tables.values())
    return f"{quarantined:,} of {rows:,} rows"


def last_snapshot(cutoffs: dict) -> str:
    cutoff = max(cutoffs)
    return f"{int(_number(cutoffs[cutoff]['customers'])):,} customers at {cutoff}"


def books(counts: dict) -> str:
    """Whether every record received was applied or set aside with a reason."""
    received, applied = int(_number(counts["received"])), int(_number(counts["applied"]))
    verdict = "yes" if counts["balanced"] else "NO"
    return f"{verdict}: {received:,} received = {applied:,} applied + {received - applied:,} set aside"


def retraining(result: dict) -> str:
    if not result["retrained"]:
        return "no retraining"
    challenger, champion = result["challenger"]["version"], result["champion"]["version"]
    if result["promoted"]:
        return f"yes: {challenger} replaces {champion}"
    return f"no: {champion} stays champion over {challenger}"


def fairness_flags(result: dict) -> str:
    flagged = result["flagged"]
    return f"{len(flagged)} of {len(result['ratios'])}" + (
        f" ({', '.join(flagged[:3])}{' …' if len(flagged) > 3 else ''})" if flagged else ""
    )


def rollback_drills(drills: dict) -> str:
    if not drills:
        return "no drill on this data"
    return "; ".join(
        f"{kind}: "
        + (
            f"caught on day {d['detected_day']} by {d['detection_rule']}, back to {d['rolled_back_to']}"
            if d.get("detected_day")
            else "not caught"
        )
        for kind, d in drills.items()
    )


def retraining_gains(against: dict) -> str:
    return (
        "; ".join(
            f"{policy} {_number(r['mean_difference']):+.4f} (95 % CI {_number(r['ci_low']):+.4f} … "
            f"{_number(r['ci_high']):+.4f})"
            for policy, r in against.items()
        )
        or "no baseline"
    )


def estimate_with_ci(row: dict, reference: str, label: str) -> str:
    """An off-policy estimate with its interval, beside the value it should hit (rates in %)."""
    return (f"{_number(row['value']):.2%} (95 % CI {_number(row['ci_low']):.2%} … {_number(row['ci_high']):.2%}); "
            f"{label} {_number(row[reference]):.2%}")


def ope_uplift(headline: dict) -> str:
    estimate, truth = headline["uplift_dr"], headline["uplift_truth"]
    return (f"{_percent(estimate['relative'], sign=True)} % (95 % CI {_percent(estimate['ci_low'], sign=True)} … "
            f"{_percent(estimate['ci_high'], sign=True)} %); truth {_percent(truth['relative'], sign=True)} %")


HEADLINES: dict[str, list[Headline]] = {
    "prep": [
        ("Snapshots (cutoffs)", "metrics/prep.json", "cutoffs", lambda cutoffs: f"{len(cutoffs)}"),
        ("Latest snapshot", "metrics/prep.json", "cutoffs", last_snapshot),
        ("Prepared features", "metrics/prep.json", "features.prepared", "{:,}"),
        ("Quarantined by validate", "metrics/validate.json", "tables", quarantined_rows),
    ],
    "segment": [
        ("Segments (k)", "metrics/segment.json", "k", "{}"),
        ("Silhouette", "metrics/segment.json", "quality.silhouette", "{:.3f}"),
        ("Davies-Bouldin", "metrics/segment.json", "quality.davies_bouldin", "{:.2f}"),
        (
            "Bootstrap ARI (mean, min)",
            "metrics/segment.json",
            "stability",
            lambda s: f"{_number(s['ari_mean']):.3f} (min {_number(s['ari_min']):.3f})",
        ),
        ("ARI vs true personas", "metrics/segment.json", "truth.ari", "{:.3f}"),
    ],
    "model": [
        ("Champion", "metrics/model.json", "champion", lambda c: f"{c['name']} {c['version']}"),
        ("Out-of-time ROC-AUC", "metrics/model.json", "", champion_auc_with_ci),
        ("Share of the oracle's AUC", "metrics/model.json", "oracle.champion_ratio", lambda r: f"{_percent(r)} %"),
        ("Lift in the top 10 %", "metrics/model.json", "", champion_lift),
    ],
    "recommend": [
        ("Learned recommender", "metrics/recommend.json", "learned", "{}"),
        ("NDCG@k gain over the category rule", "metrics/recommend.json", "gain_over_rule",
         lambda g: f"{_number(g['difference']):+.3f} ({_number(g['ci_low']):+.3f} to {_number(g['ci_high']):+.3f})"),
        ("Share of the true-best list's preference", "metrics/recommend.json", "methods",
         lambda m: ", ".join(f"{name} {_percent(m[name]['truth_share']['mean'])} %"
                             for name in ("category_rule", "als", "item_item") if "truth_share" in m.get(name, {}))),
    ],
    "replay": [
        ("Conversion uplift", "metrics/replay.json", "ab_test.conversion", uplift_with_ci),
        ("Stream books balanced", "metrics/replay.json", "books", books),
        ("Drift trigger", "metrics/replay.json", "drift.trigger", lambda day: day or "not triggered"),
        ("Retrained model promoted", "metrics/replay.json", "retraining", retraining),
    ],
    "ope": [
        ("Personalized page, DR estimate", "metrics/ope.json", "headline.personalized_dr",
         lambda row: estimate_with_ci(row, "truth", "truth")),
        ("Uplift over the default page, DR", "metrics/ope.json", "headline", ope_uplift),
        ("ZOZOTOWN BTS click rate from random logs (IPW)", "metrics/ope.json", "headline.bts_all_ipw",
         lambda row: estimate_with_ci(row, "bts_measured", "measured")),
    ],
    "robustness": [
        ("Fairness ratios below the threshold", "metrics/robustness.json", "fairness", fairness_flags),
        (
            "Injected bad rows",
            "metrics/robustness.json",
            "data_checks",
            lambda d: f"{d['injected_rows']:,} injected, {d['missed']} missed, {d['false_alarms']} false alarms",
        ),
        ("Retraining, AUC against never", "metrics/robustness.json", "retraining.against_never", retraining_gains),
        (
            "Explanations passing every check",
            "metrics/robustness.json",
            "explanations.verdict_shares",
            lambda v: f"{_percent(v.get('trust', 0))} %",
        ),
        ("Bad models promoted by mistake", "metrics/robustness.json", "rollback", rollback_drills),
    ],
}


def lookup(document: Any, dotted: str) -> Any:
    """The value at a dotted key ('quality.silhouette'); '' is the whole document. KeyError if absent."""
    for part in dotted.split(".") if dotted else []:
        if not isinstance(document, dict) or part not in document:
            raise KeyError(dotted)
        document = document[part]
    return document


def headline_value(root: Path, file: str, key: str, fmt: Format) -> str:
    """One headline figure as text; MISSING when the file, the key or the number is not there."""
    try:
        value = lookup(json.loads((Path(root) / file).read_text(encoding="utf-8")), key)
        if callable(fmt):
            return str(fmt(value))
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return MISSING
        return fmt.format(value)
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError):
        return MISSING


def _plain(markdown: str) -> str:
    """Markdown inline text without emphasis, code ticks and link targets."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    return " ".join(re.sub(r"[*`]", "", text).split())


def title_and_question(notebook: nbformat.NotebookNode) -> tuple[str, str]:
    """The first markdown heading and the first paragraph after it (shortened at a word)."""
    lines = "\n\n".join(c.source for c in notebook.cells if c.cell_type == "markdown").splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("#")), None)
    if start is None:
        return "", ""
    title = _plain(lines[start].lstrip().lstrip("#"))
    asked = next((i for i, line in enumerate(lines) if line.startswith(QUESTIONS_LABEL)), None)
    if asked is not None:  # the notebook lists the questions it answers: show those
        lines = [lines[asked][len(QUESTIONS_LABEL) :]] + lines[asked + 1 :]
        start = -1
    paragraph: list[str] = []
    for line in lines[start + 1 :]:
        if not line.strip() or line.lstrip().startswith("#"):
            if paragraph:
                break
            continue
        paragraph.append(line)
    question = _plain(" ".join(paragraph))
    if asked is None and len(question) > QUESTION_CHARACTERS:
        question = question[:QUESTION_CHARACTERS].rsplit(" ", 1)[0].rstrip(",;:.") + " …"
    return title, question


def key_plot(notebook: nbformat.NotebookNode) -> str | None:
    """Base64 PNG of the cell tagged `key-plot`, else of the first image output; None if there is none."""
    cells = [c for c in notebook.cells if c.cell_type == "code"]
    tagged = [c for c in cells if KEY_PLOT_TAG in c.get("metadata", {}).get("tags", [])]
    for cell in tagged + cells:
        for output in cell.get("outputs", []):
            image = output.get("data", {}).get("image/png")
            if image:
                return "".join(image.split())
    return None


#: Inline CSS. Text stays in a readable column; plots may use more of a wide screen (up to 80rem), and on a
#: narrow one a wide multi-panel plot keeps a legible size and scrolls sideways; the phases table drops its
#: notebook and question columns on a phone (the question is in each phase's section below).
CSS = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222;
line-height:1.4}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #ddd;vertical-align:top}
section{border-top:2px solid #444;margin-top:2rem}.question{color:#555;font-style:italic}
.missing{color:#999}
figure{margin:1rem 0;width:min(80rem,calc(100vw - 2rem));position:relative;left:50%;transform:translateX(-50%);
overflow-x:auto;text-align:center}
figure img{max-width:100%;height:auto}figure img.wide{min-width:min(48rem,100%)}
dl{display:grid;grid-template-columns:minmax(8rem,max-content) auto;gap:.2rem 1rem}
dt{font-weight:600}dd{margin:0}
@media (max-width:40rem){body{margin:1rem auto}
.phases th:nth-child(2),.phases td:nth-child(2),.phases th:nth-child(4),.phases td:nth-child(4){display:none}
.phases th,.phases td{padding:.3rem .3rem}.phases td:nth-child(3){overflow-wrap:anywhere}
.phases td:nth-child(1){white-space:nowrap}
dl{grid-template-columns:1fr}dd{margin:0 0 .4rem}figure img.wide{min-width:48rem;max-width:none}}"""
#: A plot at least this many times as wide as it is tall has several panels: on a phone it scrolls instead of
#: shrinking until its labels cannot be read.
WIDE_ASPECT = 1.6


def _aspect(image: str) -> float:
    """Width over height of a base64 PNG (from its header), or 0 if it cannot be read."""
    try:
        header = base64.b64decode(image[:44])
        width, height = int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
        return width / height if height else 0.0
    except (ValueError, IndexError):
        return 0.0


def _links(report_dir: Path, name: str) -> str:
    links = []
    for label, file in (("full", f"{name}.html"), ("story", f"{name}.story.html")):
        if (report_dir / file).is_file():
            links.append(f'<a href="{html.escape(file)}">{label}</a>')
        else:
            links.append(f'<span class="missing">{label}: not rendered</span>')
    return " · ".join(links)


def _phase(root: Path, stage: str, name: str) -> tuple[str, str]:
    """The phase's row in the phases table and its section."""
    report_dir = root / paths.REPORT_DIR
    executed = report_dir / f"{name}.ipynb"
    e = html.escape
    if not executed.is_file():
        row = f'<tr><td>{e(stage)}</td><td>{e(name)}</td><td colspan="3" class="missing">not built yet</td></tr>'
        return row, ""
    notebook = nbformat.read(executed, as_version=4)
    title, question = title_and_question(notebook)
    failed = notebook.metadata.get("papermill", {}).get("exception")
    status = " <strong>(failed: see the full report)</strong>" if failed else ""
    links = _links(report_dir, name)
    row = (
        f'<tr><td><a href="#{e(stage)}">{e(stage)}</a></td><td>{e(name)}</td><td>{e(title) or MISSING}{status}</td>'
        f"<td>{e(question)}</td><td>{links}</td></tr>"
    )
    figures = "".join(
        f"<dt>{e(label)}</dt><dd>{e(headline_value(root, file, key, fmt))}</dd>"
        for label, file, key, fmt in HEADLINES.get(stage, [])
    )
    figures = f"<dl>{figures}</dl>" if figures else '<p class="missing">No headline figures declared.</p>'
    image = key_plot(notebook)
    wide = ' class="wide"' if image and _aspect(image) >= WIDE_ASPECT else ""
    plot = (
        f'<figure><img{wide} alt="{e(f"Key plot of {name}")}" src="data:image/png;base64,{e(image)}"></figure>'
        if image
        else '<p class="missing">This report has no plot.</p>'
    )
    section = (
        f'<section id="{e(stage)}"><h2>{e(title or name)}</h2><p class="question">{e(question)}</p>'
        f"<p>{links}</p>{figures}{plot}</section>"
    )
    return row, section


def build_index(root: Path) -> Path:
    """Write reports/index.html for the project at `root`; return its path."""
    root = Path(root)
    phases = [_phase(root, stage, name) for stage, name in paths.NOTEBOOK_STAGES.items()]
    rows, sections = "\n".join(r for r, _ in phases), "\n".join(s for _, s in phases if s)
    params_file = root / paths.PARAMS_FILE
    label = run_label(load_params(params_file)) if params_file.is_file() else None
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Atelier: reports</title><style>{CSS}</style></head>
<body>{banner(label) if label else ""}<h1>Atelier: reports</h1>
<p>Each phase's executed notebook: <em>full</em> shows the code, <em>story</em> only the narrative and results.</p>
<table class="phases">
<thead><tr><th>Stage</th><th>Notebook</th><th>Title</th><th>Question</th><th>Reports</th></tr></thead>
<tbody>
{rows}
</tbody></table>
{sections}
</body></html>
"""
    index = root / paths.REPORT_DIR / "index.html"
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text(page, encoding="utf-8", newline="\n")
    return index
