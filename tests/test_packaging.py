"""The product's wheel is the product only: the portal emulator, the demo and the port helper
are the b24app-devportal distribution (devportal/pyproject.toml), which the product never
imports."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EMULATOR_MODULES = {"devportal", "b24app.devportal", "b24app.demo", "b24app.demo_data"}
EMULATOR_MODULES |= {"b24app.ports"}


def _imported_modules(source: str) -> set[str]:
    """Every module a file imports, imports inside functions included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _is_emulator(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in EMULATOR_MODULES)


def test_product_wheel_holds_no_emulator_code(tmp_path: Path) -> None:
    # Built by the test environment's own setuptools (pyproject.toml's test extra holds the
    # version [build-system] asks for): an isolated build would first install setuptools
    # into a fresh environment, ~10 of the test's ~13 s, for the same wheel.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
         str(ROOT), "-w", str(tmp_path)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("b24app-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        sources = {n: archive.read(n).decode() for n in names if n.endswith(".py")}
    assert "b24app/cli.py" in names and "b24app/templates/base.html" in names  # a whole product
    shipped = {n[:-3].replace("/", ".").removesuffix(".__init__") for n in sources}
    assert not {m for m in shipped if _is_emulator(m)}
    assert not [n for n in names if n.startswith("devportal/")]
    importers = {
        name: sorted(m for m in _imported_modules(text) if _is_emulator(m))
        for name, text in sources.items()
    }
    assert {name: mods for name, mods in importers.items() if mods} == {}
