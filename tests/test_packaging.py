"""environment.yml and pyproject.toml list the same packages (environment.yml with the CPU-only torch, for Binder);
.ci/run calls the README's test command."""

import re
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (requires-python allows it): the same parser from PyPI
    import tomli as tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _applies_to_311(req: str) -> bool:
    """environment.yml pins Python 3.11: a requirement marked for older Pythons only (tomli) is not in it."""
    return "python_version < '3.11'" not in req


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    ours = {_name(r) for r in project["dependencies"] if _applies_to_311(r)}
    for extra in project["optional-dependencies"].values():
        ours |= {_name(r) for r in extra if _applies_to_311(r)}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda = {_name(d) for d in pip if not d.startswith("-")}  # pip options (the index line) are not packages
    assert ours == conda, f"only in pyproject: {ours - conda}; only in environment.yml: {conda - ours}"


def test_environment_yml_installs_the_cpu_only_torch():
    """Binder builds from environment.yml and has no GPU: torch from PyTorch's CPU index, not the CUDA build."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip[0] == "--extra-index-url https://download.pytorch.org/whl/cpu"  # before torch, for every pip line
    assert "--index-url" not in " ".join(pip).replace("--extra-index-url", "")  # PyPI stays the main index


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make demo" in readme and "make test" in readme
    assert readme.index("make demo") < 600, "README must open with the two set-up commands"
    assert re.search(r"^make test\b", ci, re.M)
