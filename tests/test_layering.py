"""Data flows one way through the package: an AST check of who imports whom.

The order is the one in the design notes, in two levels: a unit (a top-level module or a
package) may import only units listed above it, and inside a package a module may import
only the package's modules listed above it. ``__init__`` and ``__main__`` are exempt,
nothing imports ``cli``, and the simulator imports nothing of the package outside itself.
Imports under ``if TYPE_CHECKING:`` are not run and so do not count (``_errors`` names
``Generation`` in an annotation).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import leonardo_async

PACKAGE = Path(leonardo_async.__file__).parent

#: Top to bottom. A new top-level module or package must be placed here, below
#: everything it imports.
LAYERS = [
    "_version",
    "_errors",
    "_validate",
    "models",
    "_wire",
    "_retry",
    "_schedule",
    "_limits",
    "_files",
    "_transport",
    "_listing",
    "_tracking",
    "_client",
    "_batch",
    "webhook",
    "sync",
    "cli",
]
EXEMPT = {"__init__", "__main__"}


def _top(path: Path) -> str:
    """The top-level unit a file belongs to (``cli`` for ``cli/_batch.py``)."""
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _package_parts(path: Path) -> list[str]:
    """The package a file is in, as parts below ``leonardo_async``."""
    return list(path.relative_to(PACKAGE).parent.parts)


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def imported_units(path: Path) -> set[str]:
    """The top-level units of ``leonardo_async`` that ``path`` imports at run time.

    The package root itself appears as ``__init__``.
    """
    found: set[str] = set()
    here = _package_parts(path)
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[list[str]] = []
        if isinstance(node, ast.Import):
            targets = [a.name.split(".") for a in node.names]
            targets = [t[1:] for t in targets if t[0] == "leonardo_async"]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                parts = (node.module or "").split(".")
                if parts[0] != "leonardo_async":
                    continue
                base = parts[1:]
            else:
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else list(here)
                if node.level - 1 > len(here):
                    raise AssertionError(f"{path}: relative import above the package")
                base += (node.module or "").split(".") if node.module else []
            if base:
                targets = [base]
            else:  # ``from . import x`` at the root: x is a module or a name in __init__
                targets = [
                    [a.name]
                    if (PACKAGE / f"{a.name}.py").exists() or (PACKAGE / a.name).is_dir()
                    else ["__init__"]
                    for a in node.names
                ]
        found.update(t[0] for t in targets if t)
    return found


def package_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    """Each top-level module and package is placed in the layer order (or is exempt)."""
    units = {_top(p) for p in package_files()} - EXEMPT - {"simulator"}
    unplaced = sorted(units - set(LAYERS))
    assert not unplaced, f"add {unplaced} to LAYERS in tests/test_layering.py"


@pytest.mark.parametrize(
    "path",
    [p for p in package_files() if _top(p) not in EXEMPT | {"simulator"}],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_imports_only_from_above(path: Path) -> None:
    """A module imports only modules above it (its own package's files excepted)."""
    unit = _top(path)
    level = LAYERS.index(unit)
    for imported in imported_units(path) - {unit}:
        if imported == "__init__":
            assert unit == "cli", f"{path.name} imports the package root"
            continue
        if imported == "simulator":
            assert unit == "cli", f"{unit} imports the simulator (only the CLI may)"
            continue
        assert imported in LAYERS, f"{unit} imports unplaced {imported}"
        assert LAYERS.index(imported) < level, f"{unit} imports {imported}, which is below it"


#: Each package's modules, top to bottom: a module imports only modules above it in its
#: package (and, as LAYERS says, units above the package).
PACKAGE_LAYERS = {
    "_wire": ["_json", "_envelopes", "_convert"],
    "_limits": ["_config", "_gate", "_slots", "_policy", "_redis", "_key"],
    "_transport": [
        "_base",
        "_mock",
        "_aiohttp",
        "_clock",
        "_options",
        "_connection",
        "_owner",
        "_transfers",
    ],
    "_listing": ["_pages", "_lag", "_evidence", "_reconciler"],
    "_tracking": ["_job", "_watchlist", "_lookout", "_fanin", "_tracker"],
    "_client": ["_endpoints", "_submitter", "_parts", "_client"],
    "_batch": [
        "_pricing",
        "_items",
        "_journal",
        "_pg_journal",
        "_ledger",
        "_budget",
        "_frames",
        "_slots",
        "_tally",
        "_results",
        "_pipeline",
        "_sweep",
        "_submitter",
    ],
}


def sibling_imports(path: Path) -> set[str]:
    """The modules of its own package that ``path`` imports at run time."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize(
    ("package", "module"),
    [(package, module) for package, modules in PACKAGE_LAYERS.items() for module in modules],
)
def test_package_modules_import_only_from_above(package: str, module: str) -> None:
    """Within a package, the modules stack one way (``_limits``: config, gate, slots,
    policy, key limiter)."""
    order = PACKAGE_LAYERS[package]
    for imported in sibling_imports(PACKAGE / package / f"{module}.py"):
        assert imported in order, f"{package}.{module} imports unplaced {imported}"
        assert order.index(imported) < order.index(module), f"{module} imports {imported}"


def test_every_package_module_has_a_layer() -> None:
    """Each module of each package (cli and the simulator apart) is placed in its order."""
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")} - {"cli", "simulator"}
    assert packages == set(PACKAGE_LAYERS)
    for package, order in PACKAGE_LAYERS.items():
        modules = {p.stem for p in (PACKAGE / package).glob("*.py")} - {"__init__"}
        assert modules == set(order), package


def test_the_sibling_check_sees_an_import(tmp_path: Path) -> None:
    """The order check sees ``from ._a import x`` and ``from . import _b``, not a parent's
    module or an import under ``if TYPE_CHECKING:``."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from ._a import x\nfrom . import _b\nfrom .._c import y\n"
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ._d import z\n"
    )
    assert sibling_imports(sample) == {"_a", "_b"}


def test_nothing_imports_cli() -> None:
    """Only ``__main__`` (and cli itself) import the CLI."""
    for path in package_files():
        if _top(path) in ("cli", "__main__"):
            continue
        assert "cli" not in imported_units(path), path


def test_simulator_is_independent() -> None:
    """The simulator imports nothing of leonardo_async outside itself."""
    for path in (PACKAGE / "simulator").rglob("*.py"):
        assert imported_units(path) <= {"simulator"}, path


#: Folders that use the client only as its users do, through its public surface.
CLIENT_USERS = [PACKAGE / "cli", PACKAGE.parent / "benchmarks"]


def private_client_reads(path: Path) -> list[str]:
    """Each ``client._name`` (or ``self.client._name``) in ``path``: a read of a client's
    private part."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
            continue
        owner = node.value
        name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
        if not node.attr.startswith("__") and name.lower().endswith("client"):
            found.append(ast.unparse(node))
    return found


@pytest.mark.parametrize(
    "path",
    [p for folder in CLIENT_USERS for p in sorted(folder.rglob("*.py"))],
    ids=lambda p: str(p.relative_to(PACKAGE.parent)),
)
def test_cli_and_benchmarks_read_no_private_part_of_the_client(path: Path) -> None:
    """The CLI and the benchmarks use the client's public surface, not its private parts."""
    where = path.relative_to(PACKAGE.parent).as_posix()
    reads = private_client_reads(path)
    assert not reads, f"{where} reads {reads}: use (or add) a public method"


def test_the_private_read_check_sees_a_read(tmp_path: Path) -> None:
    """The check above finds ``client._x`` and ``self.client._y``, not ``self._x``."""
    sample = tmp_path / "sample.py"
    sample.write_text("client._listing\nself.client._tracker\nself._x\nclient.__class__\n")
    assert sorted(private_client_reads(sample)) == ["client._listing", "self.client._tracker"]
