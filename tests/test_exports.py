"""The public surface: one sorted, complete ``__all__``, and nothing public left out."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from types import ModuleType

import pytest

import leonardo_async

#: Modules whose names are public (no underscore), apart from the CLI and the simulator,
#: which are applications with their own entry points rather than library API.
PUBLIC_MODULES = sorted(
    info.name
    for info in pkgutil.iter_modules(leonardo_async.__path__)
    if not info.name.startswith("_") and info.name not in ("cli", "simulator")
)
PRIVATE_MODULES = sorted(
    info.name
    for info in pkgutil.iter_modules(leonardo_async.__path__)
    if info.name.startswith("_") and info.name != "__main__"
)


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"leonardo_async.{name}")


def _defined_here(module: ModuleType) -> list[str]:
    """Non-underscore classes and functions defined in ``module`` itself."""
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module.__name__
    ]


def test_all_is_sorted_and_unique() -> None:
    """``leonardo_async.__all__`` is sorted and lists each name once."""
    names = leonardo_async.__all__
    assert names == sorted(names)
    assert len(names) == len(set(names))


def test_every_exported_name_exists() -> None:
    """Every name in ``__all__`` can be imported from the package."""
    for name in leonardo_async.__all__:
        assert getattr(leonardo_async, name, None) is not None, name
    namespace: dict[str, object] = {}
    exec("from leonardo_async import *", namespace)
    assert set(leonardo_async.__all__) <= set(namespace)


def test_version_is_a_string() -> None:
    """``__version__`` is exported and is a string."""
    assert "__version__" in leonardo_async.__all__
    assert isinstance(leonardo_async.__version__, str)


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_public_modules_are_fully_exported(name: str) -> None:
    """Every class and function a public module defines is exported from the package."""
    module = _module(name)
    missing = [n for n in _defined_here(module) if n not in leonardo_async.__all__]
    assert not missing, f"leonardo_async.{name} defines {missing} but __all__ lacks them"
    for exported in _defined_here(module):
        assert getattr(leonardo_async, exported) is getattr(module, exported)


@pytest.mark.parametrize("name", [*PUBLIC_MODULES, *PRIVATE_MODULES])
def test_module_all_is_accurate(name: str) -> None:
    """Each module's own ``__all__`` is sorted and names things that exist."""
    module = _module(name)
    names = getattr(module, "__all__", None)
    assert names is not None, f"leonardo_async.{name} has no __all__"
    assert list(names) == sorted(names)
    for exported in names:
        assert hasattr(module, exported), f"{name}.__all__ lists missing {exported}"


def test_package_exports_come_from_module_all() -> None:
    """A name the package re-exports is one its defining module exports too."""
    for name in leonardo_async.__all__:
        value = getattr(leonardo_async, name)
        home = getattr(value, "__module__", None)
        if name == "__version__" or home is None or not home.startswith("leonardo_async."):
            continue
        module = sys.modules[home]
        assert name in getattr(module, "__all__", ()), f"{home}.__all__ lacks {name}"


def test_import_does_no_io() -> None:
    """Importing the package creates no client, reads no key and starts no event loop."""
    code = (
        "import asyncio, os, sys\n"
        "os.environ.pop('LEONARDO_API_KEY', None)\n"
        "import leonardo_async\n"
        "try:\n"
        "    asyncio.get_running_loop()\n"
        "except RuntimeError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('a loop is running')\n"
        "assert not any(isinstance(v, leonardo_async.LeonardoClient)"
        " for v in vars(leonardo_async).values())\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
