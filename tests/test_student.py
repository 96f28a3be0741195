"""Student copies (reprolab/course/student.py) and exercise checkers (reprolab/course/check.py) end to end.

* every exercise has a checker cell right after its solution, and the student stub sets the answer to ``None``;
* a student copy runs up to its first exercise, and its first checker then says "no answer yet";
* on the reference notebook, every checker accepts the reference solution and rejects a perturbed answer.
The last two execute notebooks (FAST parameters, the stand-in named explicitly): marked slow, run in CI.
"""

import os
import re
from pathlib import Path

import nbformat
import pytest

from reprolab.course.student import main, make_students

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CHECK = re.compile(r"^(check\.nb\d\d_\d+\((answer_\d\d_\d+)\b.*\))\s*$", re.M | re.S)


def _tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def checks(nb) -> list[tuple[int, str, str]]:
    """(cell index, the checker call, the answer variable) of every checker cell."""
    out = []
    for i, c in enumerate(nb.cells):
        m = CHECK.search(c.source) if c.cell_type == "code" else None
        if m:
            out.append((i, m.group(1), m.group(2)))
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_solution_sets_its_answer_and_is_followed_by_its_checker(path):
    nb = nbformat.read(path, as_version=4)
    found = checks(nb)
    sols = [i for i, c in enumerate(nb.cells) if "solution" in _tags(c)]
    assert [i - 1 for i, _, _ in found] == sols, f"{path.name}: every solution cell needs its checker cell right after"
    for i, call, answer in found:
        assert re.search(rf"^{answer}\s*=", nb.cells[i - 1].source, re.M), f"{path.name}: {answer} not set"
        assert call.startswith(f"check.nb{answer[7:]}("), f"{path.name}: {call} checks another exercise"


def test_student_stubs_start_every_answer_at_none(tmp_path):
    for _src, dst in zip(NOTEBOOKS, make_students(ROOT / "notebooks", tmp_path)):
        nb = nbformat.read(dst, as_version=4)
        for i, _, answer in checks(nb):
            ns: dict = {}
            exec(nb.cells[i - 1].source, ns)
            assert ns[answer] is None, f"{dst.name}: the stub before cell {i} does not set {answer} = None"


def _prepare(nb, stop_at=None):
    """The FAST notebook with the stand-in named explicitly, cut before cell ``stop_at``."""
    if stop_at is not None:
        nb.cells = nb.cells[: stop_at + 1]
    params = next(i for i, c in enumerate(nb.cells) if "parameters" in _tags(c))
    nb.cells.insert(params + 1, nbformat.v4.new_code_cell('ENCODER = "standin"'))
    return nb


def _run(nb, shared_datasets):
    from nbclient import NotebookClient

    os.environ.setdefault("REPROLAB_DATA", str(shared_datasets))
    NotebookClient(
        nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}}
    ).execute()
    return "".join(
        o.get("text", "") + str(o.get("data", {})) for c in nb.cells if c.cell_type == "code" for o in c.outputs
    )


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_copy_runs_to_its_first_exercise_and_its_checker_says_not_yet(path, tmp_path, shared_datasets):
    (copy,) = make_students(path, tmp_path)
    nb = nbformat.read(copy, as_version=4)
    first_check = checks(nb)[0][0]
    text = _run(_prepare(nb, first_check), shared_datasets)
    assert "✗ not yet" in text and "no answer yet" in text


PERTURB = '''
def _perturb(a):
    """A wrong answer of the same form."""
    import numpy as np
    if isinstance(a, dict):
        k = next(iter(a))
        return {**a, k: _perturb(a[k])}
    if isinstance(a, str):
        return a + "?"
    if isinstance(a, (int, np.integer)) and not isinstance(a, bool):
        return a + 1
    if isinstance(a, (tuple, list)):
        return type(a)([_perturb(a[0]), *a[1:]]) if not isinstance(a[0], str) else type(a)(reversed(a))
    if isinstance(a, np.ndarray):
        return a + 0.123
    return a + 0.123 if float(a) != 0 else 0.123
'''


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_checkers_accept_the_reference_solution_and_reject_a_wrong_answer(path, shared_datasets):
    nb = _prepare(nbformat.read(path, as_version=4))
    found = checks(nb)
    for i, call, answer in reversed(found):
        nb.cells[i].source = (
            f"from reprolab.course import check\n_r = {call}\nassert _r, repr(_r)\n_keep = {answer}\n"
            f"{answer} = _perturb({answer})\n_w = {call}\n{answer} = _keep\nassert not _w, 'a wrong answer passed'\n"
            f"print('checked {answer}')"
        )
    nb.cells.insert(0, nbformat.v4.new_code_cell(PERTURB))
    text = _run(nb, shared_datasets)
    assert text.count("checked answer_") == len(found)


def test_release_zip_holds_every_student_copy_and_no_solution(tmp_path):
    """``make release`` publishes the student copies as one zip: every notebook, stubs in place of solutions."""
    import zipfile

    target = tmp_path / "dist" / "student.zip"
    assert main([str(ROOT / "notebooks"), "--zip", str(target)]) == 0
    with zipfile.ZipFile(target) as z:
        names = sorted(z.namelist())
        assert names == [f"notebooks/{p.name}" for p in NOTEBOOKS]
        for name, src in zip(names, NOTEBOOKS):
            nb = nbformat.reads(z.read(name).decode(), as_version=4)
            sols = [c.source for c in nbformat.read(src, as_version=4).cells if "solution" in _tags(c)]
            assert sols, f"{src.name} has no exercise"
            assert not any("solution" in _tags(c) for c in nb.cells)
            assert all(s not in (c.source for c in nb.cells) for s in sols), f"{src.name}: a solution leaked"
    assert not list(target.parent.glob("*.part"))
