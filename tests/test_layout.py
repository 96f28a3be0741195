"""The package layout is the architecture: imports go one way, and no module imports itself back in a circle.

The import graph is read from the source with :mod:`ast` (every ``import`` anywhere in a module, including the ones
inside functions; not those under ``if TYPE_CHECKING:``, which never run). The layers, lowest first, are the ones
``reprolab/__init__.py`` describes; a module may import from its own layer's package and from lower layers only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "reprolab"

# lowest first; "reprolab" alone is the public API in reprolab/__init__.py (it may import anything)
LAYERS = [
    ["reprolab.errors"],
    ["reprolab.checkpoint", "reprolab.distributed", "reprolab.datasets", "reprolab.encoders"],
    ["reprolab.reprogramming", "reprolab.training"],
    ["reprolab.methods"],
    ["reprolab.evaluation"],
    ["reprolab.experiment"],
    ["reprolab.course"],
    ["reprolab.bench", "reprolab.doctor", "reprolab.fetch"],
    ["reprolab.cli", "reprolab.__main__", "reprolab"],
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PKG.rglob("*.py")}


def _type_checking_blocks(tree) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                skip.update(id(n) for n in ast.walk(sub))
    return skip


def imports_of(name: str, path: Path, modules: dict) -> set[str]:
    """Kit modules that ``name`` imports (``from pkg import sub`` counts as importing ``pkg.sub``)."""
    tree = ast.parse(path.read_text())
    skip, out = _type_checking_blocks(tree), set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "reprolab")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "reprolab":
                continue
            for a in node.names:
                out.add(f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod)
    return {m for m in out if m in modules and m != name}


def graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def layer(name: str) -> int:
    best, depth = None, -1
    for i, group in enumerate(LAYERS):
        for prefix in group:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > depth:
                best, depth = i, len(prefix)
    if best is None:
        raise AssertionError(f"{name} is in no layer: add its package to LAYERS and to reprolab/__init__.py")
    return best


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle():
    assert cycles(graph()) == []


def test_imports_go_down_the_layers():
    g, wrong = graph(), []
    for name, deps in g.items():
        if name == "reprolab":
            continue
        wrong += [
            f"{name} (layer {layer(name)}) imports {d} (layer {layer(d)})" for d in deps if layer(d) > layer(name)
        ]
    assert wrong == []


def test_cycle_finder_finds_a_cycle():
    """The checker itself: a planted circle a → b → c → a is found, a line a → b → c is not."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_reader_sees_relative_and_function_level_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "reprolab"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "errors.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from reprolab.sub import b\n"
        "def f():\n    from ..errors import X\n    from . import c\n"
    )
    for n in ("b", "c"):
        (pkg / "sub" / f"{n}.py").write_text("")
    monkeypatch.setattr(__import__(__name__), "PKG", pkg)
    assert graph()["reprolab.sub.a"] == {"reprolab.errors", "reprolab.sub.c"}


@pytest.mark.parametrize("sub", sorted(p.name for p in PKG.iterdir() if (p / "__init__.py").exists()))
def test_every_subpackage_says_what_it_holds_and_may_import(sub):
    doc = ast.get_docstring(ast.parse((PKG / sub / "__init__.py").read_text())) or ""
    assert len(doc.splitlines()) >= 2 and "import" in doc, f"reprolab/{sub}/__init__.py needs a docstring"


def test_public_api_names_resolve():
    import reprolab

    missing = [n for n in reprolab.__all__ if getattr(reprolab, n, None) is None]
    assert missing == []
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        reprolab.nope  # noqa: B018
