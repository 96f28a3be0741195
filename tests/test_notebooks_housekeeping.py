"""Course notebooks are stored clean, open with the same setup cell, are parameterised, carry exercises, and their
student versions run.

Running the notebooks themselves is nbval's job (``pytest notebooks --nbval-lax``); this file checks what nbval
does not: no stored outputs, the setup cell (and what it does off this machine), the ``parameters`` cell,
solution tagging and the student-version generator.
"""

import os
import re
import sys
import types
from pathlib import Path

import nbformat
import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (requires-python allows it): the same parser from PyPI
    import tomli as tomllib

from reprolab.course.student import STUB, make_students

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
COURSE = ["00_zero_shot_clip", "01_image_reprogramming", "02_text_reprogramming", "03_residual_alpha"]
# The first code cell of every notebook, verbatim: a no-op where reprolab imports; on Colab/Binder it installs the
# kit (from the checkout when there is one, else from REPO_URL) and turns on Colab's widget manager.
SETUP_CELL = """\
# Setup: does nothing where reprolab is installed; on Colab or Binder it installs the kit first (once, a few minutes).
REPO_URL = "https://github.com/YOUR-ORG/reprolab"  # = Repository in pyproject.toml's [project.urls] (README: publishing a fork)
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("reprolab") is None:  # from this checkout when there is one (Binder), else from REPO_URL
    here = os.path.abspath("..")
    src = f"file://{here}" if os.path.isfile(os.path.join(here, "pyproject.toml")) else f"git+{REPO_URL}"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"reprolab[standin] @ {src}"], check=True)
if "google.colab" in sys.modules:  # Colab draws ipywidgets through its custom widget manager
    from google.colab import output

    output.enable_custom_widget_manager()
# DEVICE = "auto" (next cell) uses the GPU when there is one (Colab: Runtime > Change runtime type > GPU)."""


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
def test_first_code_cell_is_the_setup_cell(path):
    code = [c for c in _read(path).cells if c.cell_type == "code"]
    assert code[0].source == SETUP_CELL, f"{path.name}: the first code cell must be the setup cell, verbatim"
    assert "setup" in _tags(code[0])


def _run_setup(monkeypatch, tmp_path, installed: bool, colab: bool, checkout: bool):
    """Execute the setup cell with pip, find_spec and google.colab replaced; return (pip calls, widget calls)."""
    import importlib.util
    import subprocess

    pip, widgets = [], []
    monkeypatch.setattr(subprocess, "run", lambda cmd, check: pip.append(cmd))
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: (real(name, *a) if installed else None) if name == "reprolab" else real(name, *a),
    )
    if colab:
        fake = types.ModuleType("google.colab")
        fake.output = types.SimpleNamespace(enable_custom_widget_manager=lambda: widgets.append(1))
        monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
        monkeypatch.setitem(sys.modules, "google.colab", fake)
    (tmp_path / "nb").mkdir(exist_ok=True)
    if checkout:
        (tmp_path / "pyproject.toml").write_text("[project]\nname = 'reprolab'\n")
    monkeypatch.chdir(tmp_path / "nb")
    exec(SETUP_CELL, {})
    return pip, widgets


def test_setup_cell_does_nothing_where_reprolab_is_installed(monkeypatch, tmp_path):
    assert _run_setup(monkeypatch, tmp_path, installed=True, colab=False, checkout=False) == ([], [])


def test_setup_cell_installs_the_kit_on_colab_and_binder(monkeypatch, tmp_path):
    pip, widgets = _run_setup(monkeypatch, tmp_path, installed=False, colab=True, checkout=False)
    assert pip == [[sys.executable, "-m", "pip", "install", "-q", "reprolab[standin] @ git+" + _repo_url()]]
    assert widgets == [1]
    pip, widgets = _run_setup(monkeypatch, tmp_path, installed=False, colab=False, checkout=True)  # Binder
    assert pip == [[sys.executable, "-m", "pip", "install", "-q", f"reprolab[standin] @ file://{tmp_path}"]]
    assert widgets == []


def _repo_url() -> str:
    ns: dict = {}
    exec(SETUP_CELL.split("import importlib")[0], ns)
    return ns["REPO_URL"]


def test_the_repository_address_is_the_one_in_pyproject_everywhere():
    """pyproject.toml's [project.urls] Repository is the one setting; the setup cell (pinned verbatim above, so in
    every notebook) and README's pip, Colab and Binder links repeat it."""
    url = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    assert _repo_url() == url and url.startswith("https://github.com/")
    owner_repo = url.removeprefix("https://github.com/")
    readme = (ROOT / "README.md").read_text()
    links = re.findall(
        r"(?:github\.com|colab\.research\.google\.com/github|mybinder\.org/v2/gh)/([\w.-]+/[\w.-]+)", readme
    )
    assert len(links) >= len(NOTEBOOKS) + 2  # a Colab link per notebook, the Binder link, the pip line
    assert set(links) == {owner_repo}
    colab = re.findall(r"colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/main/notebooks/([\w.-]+)\)", readme)
    assert colab == [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_second_code_cell_is_tagged_parameters_and_defines_fast(path):
    code = [c for c in _read(path).cells if c.cell_type == "code"][1:]
    assert "parameters" in _tags(code[0]), f"{path.name}: the code cell after the setup cell must be 'parameters'"
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
