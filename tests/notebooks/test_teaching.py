"""Every phase notebook teaches the same way, checked statically (nothing is executed): it opens with its
learning goals and the questions it answers, ends with numbered "Try this" exercises, and
docs/solutions.md has a section for it with one numbered solution per exercise."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from conftest import REPO

from atelier.core.paths import NOTEBOOK_STAGES

NOTEBOOKS = sorted((REPO / "notebooks").glob("0*.ipynb"))
SOLUTIONS = REPO / "docs" / "solutions.md"
GOALS, QUESTIONS = "**Learning goals.**", "**Questions this report answers.**"
TRY_THIS = "## Try this"
#: A list item of a numbered list, at the start of a line (continuation lines are indented, nested lists too).
ITEM = re.compile(r"^(\d+)\. \S", re.M)
#: A bold label that opens a paragraph, e.g. "**Learning goals.**".
LABEL = re.compile(r"^(?=\*\*[^*\n]+\.\*\*)", re.M)


def numbers(text: str) -> list[int]:
    """The numbers of the top-level numbered list items in `text`, in order."""
    return [int(number) for number in ITEM.findall(text)]


def labelled_block(source: str, label: str) -> str:
    """The text of the paragraph (and the list under it) that opens with bold `label`, up to the next label."""
    blocks = [block for block in LABEL.split(source) if block.startswith(label)]
    assert len(blocks) == 1, f"expected one paragraph opening with {label}, found {len(blocks)}"
    return blocks[0][len(label) :].strip()


def exercises(path: Path) -> list[int]:
    """The numbers of the notebook's "Try this" exercises (its last cell)."""
    return numbers(nbformat.read(path, as_version=4).cells[-1].source)


def solution_sections() -> dict[str, tuple[str, str]]:
    """docs/solutions.md's level-2 sections, keyed by the notebook file their heading names: (heading, body)."""
    sections = {}
    for section in re.split(r"^## ", SOLUTIONS.read_text(encoding="utf-8"), flags=re.M)[1:]:
        heading, _, body = section.partition("\n")
        for name in re.findall(r"notebooks/(\w+\.ipynb)", heading):
            assert name not in sections, f"docs/solutions.md has two sections for {name}"
            sections[name] = (heading, body)
    return sections


def test_the_phase_notebooks_are_found():
    assert [path.stem for path in NOTEBOOKS] == sorted(NOTEBOOK_STAGES.values())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_opens_with_its_learning_goals_and_questions(path):
    first = nbformat.read(path, as_version=4).cells[0]
    assert first.cell_type == "markdown"
    assert first.source.startswith(f"# {int(path.name[:2])} · "), "the first cell opens with the phase's title"
    goals = labelled_block(first.source, GOALS)
    assert numbers(goals) == list(range(1, len(numbers(goals)) + 1)) and len(numbers(goals)) >= 2, (
        f"{GOALS} is followed by a numbered list (1, 2, ...)"
    )
    questions = labelled_block(first.source, QUESTIONS)
    assert len(questions.split()) >= 10, f"{QUESTIONS} is followed by the questions, in a sentence or more"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_ends_with_numbered_try_this_exercises(path):
    last = nbformat.read(path, as_version=4).cells[-1]
    assert last.cell_type == "markdown" and last.source.startswith(TRY_THIS), (
        f"the last cell is the '{TRY_THIS}' section"
    )
    found = exercises(path)
    assert found and found == list(range(1, len(found) + 1)), f"exercises numbered 1, 2, ...; found {found}"
    assert "docs/solutions.md" in last.source, "the section says where the solutions are"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_solutions_answer_every_exercise(path):
    sections = solution_sections()
    assert path.name in sections, f"docs/solutions.md has no section naming notebooks/{path.name}"
    heading, body = sections[path.name]
    assert heading.startswith(f"{int(path.name[:2])} · "), f"the section for {path.name} is numbered like the notebook"
    solved, asked = numbers(body), exercises(path)
    assert solved == asked, (
        f"notebooks/{path.name} has {len(asked)} exercises but docs/solutions.md answers "
        f"{len(solved)} (numbered {solved})"
    )


def test_solutions_follow_the_notebook_order():
    assert list(solution_sections()) == [path.name for path in NOTEBOOKS]
