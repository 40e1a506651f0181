"""The layers hold: the pure cores load no I/O module, and imports point one way (docs/architecture.md)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORES = ("ari_app/core", "rating/core", "console/core")
IO_MODULES = ("asyncio", "aiohttp", "asyncpg", "socket", "yaml", "structlog", "subprocess", "threading")
# The data libraries the rules read: holidays loads threading (a lock) and, through importlib.metadata,
# socket; they are loaded first, so what the core itself brings in is what is left.
DATA_LIBRARIES = ("holidays", "phonenumbers")


def modules_under(folder: str) -> list[str]:
    return sorted(".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                  for p in (ROOT / folder).rglob("*.py"))


def imported_packages(path: Path) -> set[str]:
    """The top-level packages a module imports, at any depth of its code (lazy imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


class TestPureCore:
    def test_the_cores_are_there(self) -> None:
        for folder in CORES:
            assert len(modules_under(folder)) >= 4, f"{folder}: expected the pure core's modules"

    def test_importing_every_core_module_loads_no_io_module(self) -> None:
        """A fresh interpreter imports all of ari_app.core and rating.core; none of them brings I/O in."""
        modules = [m for folder in CORES for m in modules_under(folder)]
        probe = (f"import importlib, json, sys\n"
                 f"for name in {DATA_LIBRARIES!r}: importlib.import_module(name)\n"
                 f"before = set(sys.modules)\n"
                 f"for name in {modules!r}: importlib.import_module(name)\n"
                 f"print(json.dumps(sorted(m for m in {IO_MODULES!r} if m in set(sys.modules) - before)))")
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == []


    @pytest.mark.parametrize("module", [p for folder in CORES for p in sorted((ROOT / folder).rglob("*.py"))],
                             ids=lambda p: str(p.relative_to(ROOT)))
    def test_a_core_module_imports_no_io_module_itself(self, module: Path) -> None:
        assert not set(IO_MODULES) & imported_packages(module)


class TestImportsPointOneWay:
    @pytest.mark.parametrize("module", [p for p in sorted((ROOT / "rating").rglob("*.py"))],
                             ids=lambda p: str(p.relative_to(ROOT)))
    def test_rating_never_imports_ari_app(self, module: Path) -> None:
        assert "ari_app" not in imported_packages(module)

    @pytest.mark.parametrize("module", [p for p in sorted((ROOT / "plumbing").rglob("*.py"))],
                             ids=lambda p: str(p.relative_to(ROOT)))
    def test_plumbing_knows_no_business(self, module: Path) -> None:
        assert not {"ari_app", "rating"} & imported_packages(module)

    @pytest.mark.parametrize("module", [p for folder in ("ari_app", "rating", "plumbing")
                                        for p in sorted((ROOT / folder).rglob("*.py"))],
                             ids=lambda p: str(p.relative_to(ROOT)))
    def test_only_the_composition_root_imports_the_console(self, module: Path) -> None:
        """The console sits on top (decision 0032): it uses ari_app and rating, they never use it, but for
        ari_app/cli.py registering its commands."""
        if module == ROOT / "ari_app" / "cli.py":
            return
        assert "console" not in imported_packages(module)

    @pytest.mark.parametrize("module", [p for folder in CORES for p in sorted((ROOT / folder).rglob("*.py"))],
                             ids=lambda p: str(p.relative_to(ROOT)))
    def test_a_core_imports_only_cores(self, module: Path) -> None:
        """The pure core reaches no edge: within fairline's packages it imports only ari_app.core,
        ari_app.errors, rating.core, rating.errors and console.core."""
        tree = ast.parse(module.read_text(), str(module))
        edges = set()
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                     else [])
            for name in names:
                if name.split(".")[0] in ("ari_app", "rating", "plumbing", "console") and not name.startswith(
                        ("ari_app.core", "ari_app.errors", "rating.core", "rating.errors", "console.core")):
                    edges.add(name)
        assert not edges
