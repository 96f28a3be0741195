"""Student versions of the course notebooks: exercise solutions removed, everything else kept.

    python -m reprolab.course.student notebooks/ --out notebooks/student/
    python -m reprolab.course.student notebooks/ --zip dist/reprolab-student-notebooks.zip   # a release's bundle

Every code cell tagged ``solution`` is replaced by a stub code cell tagged ``exercise`` that holds only comments
(``# YOUR CODE HERE`` and, as a hint, the solution's first line if it is a comment) plus ``answer_NN_k = None`` for
each answer variable the solution sets (the checker cell after it, :mod:`reprolab.course.check`, then says "no
answer yet") — it runs without error, so a student notebook executes top to bottom; the course keeps solution cells self-contained (no later cell needs
what a solution defines). Outputs and execution counts are cleared.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import zipfile
from pathlib import Path

import nbformat

from reprolab.errors import ReprolabError

SOLUTION_TAG, STUB_TAG = "solution", "exercise"
STUB = "# YOUR CODE HERE\n"
ANSWER = re.compile(r"^(answer_\w+)\s*=", re.M)


def _answers(source: str) -> str:
    """``answer_NN_k = None`` for every answer variable the solution assigns (in order, once each)."""
    names = dict.fromkeys(ANSWER.findall(source))
    return "".join(f"{n} = None  # your answer (the text above says in what form)\n" for n in names)


def _hint(source: str) -> str:
    """The solution's first line as a hint when it is a comment ("# Solution: do X" → "# Hint: do X")."""
    first = next((ln.strip() for ln in source.splitlines() if ln.strip()), "")
    if not first.startswith("#") or first == STUB.strip():
        return ""
    text = first.lstrip("# ").strip()
    for prefix in ("Solution:", "solution:", "Solution"):
        if text.startswith(prefix):
            text = text[len(prefix) :].strip()
    return f"# Hint: {text}\n" if text else ""


def studentise(nb):
    """A copy of notebook ``nb`` (nbformat node) with solution cells stubbed and outputs cleared."""
    out = nbformat.from_dict(nb)
    cells = []
    for cell in out.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type == "code" and SOLUTION_TAG in tags:
            stub = nbformat.v4.new_code_cell(STUB + _hint(cell.source) + _answers(cell.source))
            stub.metadata["tags"] = [STUB_TAG]
            cells.append(stub)
            continue
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cells.append(cell)
    out.cells = cells
    return out


def make_students(src, out) -> list[Path]:
    """Write a student version of every ``src/*.ipynb`` (or of the one file ``src``) into ``out``; returns paths."""
    src, out = Path(src), Path(out)
    files = sorted(src.glob("*.ipynb")) if src.is_dir() else [src]
    if not files or not all(f.exists() for f in files):
        raise ReprolabError(f"no notebooks found at {src}; pass the notebooks/ folder or one .ipynb file")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for f in files:
        nb = nbformat.read(f, as_version=4)
        if not any(SOLUTION_TAG in c.get("metadata", {}).get("tags", []) for c in nb.cells):
            print(f"[reprolab.course.student] {f.name}: no cell tagged '{SOLUTION_TAG}', copied as is", file=sys.stderr)
        target = out / f.name
        nbformat.write(studentise(nb), target)
        written.append(target)
    return written


def make_student_zip(src, zip_path) -> Path:
    """The student copies of ``src`` in one zip (``notebooks/NN_name.ipynb`` inside), as published with a release
    (``make release``): students download and open it without the solutions ever being on their disk."""
    zip_path = Path(zip_path)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        written = make_students(src, tmp)
        partial = zip_path.with_suffix(".zip.part")  # written whole, then renamed: no half zip after a crash
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as z:
            for path in written:
                z.write(path, f"notebooks/{path.name}")
        partial.replace(zip_path)
    return zip_path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m reprolab.course.student", description=__doc__.splitlines()[0])
    p.add_argument("src", help="folder of notebooks (or one .ipynb)")
    p.add_argument("--out", default="notebooks/student", help="where to write the student versions")
    p.add_argument("--zip", default=None, help="instead, write them into this zip (the release's student bundle)")
    args = p.parse_args(argv)
    try:
        if args.zip:
            print(make_student_zip(args.src, args.zip))
            return 0
        for path in make_students(args.src, args.out):
            print(path)
    except ReprolabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
