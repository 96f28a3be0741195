"""Course notebooks are stored clean, are parameterised, carry exercises, and their student versions run.

Running the notebooks themselves is nbval's job (``pytest notebooks --nbval-lax``); this file checks what nbval
does not: no stored outputs, the ``parameters`` cell, solution tagging and the student-version generator.
"""

import os
import re
from pathlib import Path

import nbformat
import pytest

from reprolab.course.student import STUB, make_students

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
COURSE = ["00_zero_shot_clip", "01_image_reprogramming", "02_text_reprogramming", "03_residual_alpha"]


def _read(path):
    return nbformat.read(path, as_version=4)


def _tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def test_course_notebooks_exist():
    assert [p.stem for p in NOTEBOOKS][:4] == COURSE


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_without_outputs_or_execution_counts(path):
    for i, cell in enumerate(_read(path).cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has stored outputs; run `make strip`"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count; run `make strip`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_is_tagged_parameters_and_defines_fast(path):
    code = [c for c in _read(path).cells if c.cell_type == "code"]
    assert "parameters" in _tags(code[0]), f"{path.name}: the first code cell must be tagged 'parameters'"
    ns: dict = {}
    exec(code[0].source, ns)  # parameters cells are plain assignments
    assert ns["FAST"] is True and ns["ENCODER"] == "auto"
    assert sum("parameters" in _tags(c) for c in code) == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_solution_follows_an_exercise(path):
    cells = _read(path).cells
    sols = [i for i, c in enumerate(cells) if c.cell_type == "code" and "solution" in _tags(c)]
    assert sols, f"{path.name} has no cell tagged 'solution'"
    for i in sols:
        before = [c for c in cells[:i] if c.cell_type == "markdown"]
        assert before and "Exercise" in before[-1].source, f"{path.name} cell {i}: solution without an Exercise"


def test_student_versions_replace_solutions_only(tmp_path):
    written = make_students(ROOT / "notebooks", tmp_path)
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    for src, dst in zip(NOTEBOOKS, written):
        a, b = _read(src).cells, _read(dst).cells
        assert len(a) == len(b)
        for ca, cb in zip(a, b):
            if "solution" in _tags(ca):
                assert cb.cell_type == "code" and "exercise" in _tags(cb) and cb.source.startswith(STUB)
                code = [ln for ln in cb.source.splitlines() if ln.strip() and not ln.startswith("#")]
                assert all(re.fullmatch(r"answer_\w+ = None  # .*", ln) for ln in code)  # only empty answers
            else:
                assert cb.source == ca.source and "solution" not in _tags(cb)


@pytest.mark.slow
def test_student_version_of_00_runs_up_to_the_first_exercise(tmp_path, shared_datasets):
    """Executes the generated student notebook in a fresh kernel, with the FAST parameters (plus the stand-in
    named explicitly and a smaller test subset, so the test needs no network and stays quick)."""
    from nbclient import NotebookClient

    (path,) = make_students(ROOT / "notebooks" / "00_zero_shot_clip.ipynb", tmp_path)
    nb = _read(path)
    first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "Exercise" in c.source)
    nb.cells = nb.cells[:first]
    params = next(i for i, c in enumerate(nb.cells) if "parameters" in _tags(c))
    nb.cells.insert(params + 1, nbformat.v4.new_code_cell('ENCODER = "standin"\nN_TEST = 100'))
    os.environ.setdefault("REPROLAB_DATA", str(shared_datasets))
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}}
    ).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "zero-shot accuracy" in text and "offline stand-in" in text
