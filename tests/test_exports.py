"""The public surface: one sorted, complete ``__all__``, and nothing public left out."""

from __future__ import annotations
import __future__

import importlib
import inspect
import os
import pkgutil
import subprocess
import sys
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

import leonardo_async
from leonardo_async._limits import KeyLimiter, RequestKind
from leonardo_async._listing import Listing

#: Modules whose names are public (no underscore), apart from the CLI and the simulator,
#: which are applications with their own entry points rather than library API, and
#: ``sync``, whose blocking LeonardoClient is imported from it by that very name.
PUBLIC_MODULES = sorted(
    info.name
    for info in pkgutil.iter_modules(leonardo_async.__path__)
    if not info.name.startswith("_") and info.name not in ("cli", "simulator", "sync")
)
#: The private modules, and the modules of the private packages (``_wire._convert``).
PRIVATE_MODULES = sorted(
    [
        info.name
        for info in pkgutil.iter_modules(leonardo_async.__path__)
        if info.name.startswith("_") and info.name != "__main__"
    ]
    + [
        f"{info.name}.{inner.name}"
        for info in pkgutil.iter_modules(leonardo_async.__path__)
        if info.ispkg and info.name.startswith("_")
        for inner in pkgutil.iter_modules([os.path.join(leonardo_async.__path__[0], info.name)])
    ]
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


def test_all_is_what_the_package_defines() -> None:
    """As httpx checks its own: ``__all__`` is exactly the package's public names, so a name
    imported into the package is exported, and nothing else is public by accident."""
    public = [
        name
        for name, value in vars(leonardo_async).items()
        if (not name.startswith("_") or name == "__version__")
        and not isinstance(value, ModuleType)  # the public submodules, once imported
        and value is not __future__.annotations
    ]
    assert leonardo_async.__all__ == sorted(public)


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


def _isort_style(name: str) -> tuple[int, str]:
    """The order ruff keeps ``__all__`` in (RUF022): constants, then classes, then the rest."""
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


@pytest.mark.parametrize("name", [*PUBLIC_MODULES, *PRIVATE_MODULES])
def test_module_all_is_accurate(name: str) -> None:
    """Each module's own ``__all__`` is sorted and names things that exist."""
    module = _module(name)
    names = getattr(module, "__all__", None)
    assert names is not None, f"leonardo_async.{name} has no __all__"
    assert list(names) == sorted(names, key=_isort_style)
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


#: Runs ``{statement}`` in a fresh interpreter that records every read of a ``LEONARDO_*``
#: variable (``os.environ`` and ``os.getenv`` go through the replaced mapping) and every
#: aiohttp session made, and exits non-zero naming whichever happened.
_WATCH_IMPORT = """
import asyncio, collections.abc, os, sys
import aiohttp

read = []

class Watched(collections.abc.MutableMapping):
    def __init__(self, data):
        self._data = data
    def __getitem__(self, key):
        if str(key).startswith("LEONARDO_"):
            read.append(key)
        return self._data[key]
    def __contains__(self, key):
        if str(key).startswith("LEONARDO_"):
            read.append(key)
        return key in self._data
    def __setitem__(self, key, value):
        self._data[key] = value
    def __delitem__(self, key):
        del self._data[key]
    def __iter__(self):
        return iter(self._data)
    def __len__(self):
        return len(self._data)
    def copy(self):
        return dict(self._data)

os.environ = Watched(os.environ)
sessions = []
made = aiohttp.ClientSession.__init__
def counting(self, *args, **kwargs):
    sessions.append(self)
    made(self, *args, **kwargs)
aiohttp.ClientSession.__init__ = counting

{statement}

problems = []
if read:
    problems.append(f"read the environment: {{sorted(set(read))}}")
if sessions:
    problems.append(f"made {{len(sessions)}} aiohttp session(s)")
try:
    asyncio.get_running_loop()
    problems.append("left a loop running")
except RuntimeError:
    pass
import leonardo_async
if any(isinstance(v, leonardo_async.LeonardoClient) for v in vars(leonardo_async).values()):
    problems.append("made a client")
sys.exit("; ".join(problems) or 0)
"""


def _import_watched(statement: str) -> subprocess.CompletedProcess[str]:
    code = _WATCH_IMPORT.format(statement=statement)
    env = {**os.environ, "LEONARDO_API_KEY": "sk-set", "LEONARDO_BASE_URL": "http://x.test"}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )


def test_import_does_no_io() -> None:
    """Importing the package (and the simulator, the CLI) reads no key, makes no session."""
    statement = (
        "import leonardo_async, leonardo_async.cli, leonardo_async.simulator, leonardo_async.sync"
    )
    result = _import_watched(statement)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("statement", "problem"),
    [
        ("os.environ.get('LEONARDO_API_KEY')", "read the environment: ['LEONARDO_API_KEY']"),
        ("os.getenv('LEONARDO_BASE_URL')", "read the environment: ['LEONARDO_BASE_URL']"),
        (
            "async def session():\n    await aiohttp.ClientSession().close()\n"
            "asyncio.run(session())",
            "made 1 aiohttp session",
        ),
        ("leonardo_async_client = __import__('leonardo_async').LeonardoClient()", "read the"),
    ],
)
def test_the_import_watch_sees_what_it_forbids(statement: str, problem: str) -> None:
    """The watch behind ``test_import_does_no_io`` fails on an environment read or a session."""
    result = _import_watched(statement)
    assert result.returncode != 0
    assert problem in result.stderr


def test_every_error_lives_in_errors_and_its_tree() -> None:
    """Each exception the package defines is in ``_errors`` and drawn in its docstring."""
    errors = _module("_errors")
    tree = errors.__doc__ or ""
    for name in [*PRIVATE_MODULES, *PUBLIC_MODULES]:
        module = _module(name)
        for value in vars(module).values():
            if not (inspect.isclass(value) and issubclass(value, BaseException)):
                continue
            if value.__module__ in ("builtins", "asyncio.exceptions") or not (
                value.__module__.startswith("leonardo_async")
            ):
                continue
            assert value.__module__ == errors.__name__, f"{value.__name__} in {value.__module__}"
            drawn = value is leonardo_async.LeonardoError or f"── {value.__name__}" in tree
            assert drawn, f"{value.__name__} is not in the tree"


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        (leonardo_async.Limits, "requests_per_minute", -1),
        (leonardo_async.Limits, "max_running", "some"),
        (leonardo_async.Timeouts, "api", 0),
        (leonardo_async.PollSchedule, "initial", "soon"),
        (leonardo_async.RetryPolicy, "attempts", 0),
        (_module("_limits").Tuning, "pace", 0),
        (_module("_limits").Tuning, "recover_after", 1.5),
    ],
)
def test_config_objects_refuse_bad_values(kind: type, field: str, value: object) -> None:
    """A bad value in a config object is a ValidationError naming the field."""
    with pytest.raises(leonardo_async.ValidationError, match=field):
        kind(**{field: value})


def test_batch_file_plumbing_stays_private() -> None:
    """The batch file's reader and the results file's lines are the command line's, not
    library API (README documents neither); a journal's entries and states are public,
    as what ``Journal.entry()`` and ``Journal.counts()`` return."""
    for name in ("JobLine", "read_jobs", "KeyScheme", "ResultLine", "FrameSource"):
        assert name not in leonardo_async.__all__
        assert not hasattr(leonardo_async, name), name


#: Dunder methods that are part of a class's public face (how it is made, entered,
#: awaited, called, iterated).
_PROTOCOL_METHODS = frozenset(
    {
        "__init__",
        "__aenter__",
        "__enter__",
        "__call__",
        "__await__",
        "__aiter__",
        "__anext__",
        "__iter__",
        "__next__",
        "__getitem__",
    }
)
#: Classes the package makes and hands out (a client's tracker, its submitter and their
#: slots, a waiter's handle): their constructors are the package's own wiring, not a
#: caller's, so what they take need not be public. Everything else on them is.
HANDED_OUT = frozenset({"JobTracker", "Submitter", "SubmitSlot", "TrackedJob"})


def _types_in(hint: object) -> Iterator[type]:
    """The classes a type hint names, through unions, generics, callables and literals."""
    if isinstance(hint, (list, tuple)):  # a Callable's parameters
        for inner in hint:
            yield from _types_in(inner)
        return
    for inner in typing.get_args(hint):
        yield from _types_in(inner)
    if isinstance(hint, type) and typing.get_origin(hint) is None:
        yield hint


def _hints(where: object, home: str) -> dict[str, object]:
    """``where``'s annotations resolved, names under TYPE_CHECKING found in the package."""
    namespace = {**vars(leonardo_async), **vars(sys.modules[home])}
    return typing.get_type_hints(where, globalns=namespace)


def signature_types(value: object) -> Iterator[tuple[str, type]]:
    """Each class named by the public signature of a function or class, with where.

    A class's signature is its public attributes' types and its public methods' and
    properties' parameters and returns, its bases' (in the package) included."""
    if inspect.isfunction(value):
        for parameter, hint in _hints(value, value.__module__).items():
            for kind in _types_in(hint):
                yield f"{value.__name__}({parameter})", kind
        return
    assert inspect.isclass(value)
    for klass in value.__mro__:
        if klass is not value and not klass.__module__.startswith("leonardo_async"):
            continue  # object, Exception, str, Enum, Protocol ...
        for attribute, hint in _hints(klass, klass.__module__).items():
            if not attribute.startswith("_"):
                for kind in _types_in(hint):
                    yield f"{value.__name__}.{attribute}", kind
        for name, member in vars(klass).items():
            if name.startswith("_") and name not in _PROTOCOL_METHODS:
                continue
            if name == "__init__" and value.__name__ in HANDED_OUT:
                continue
            function = member.fget if isinstance(member, property) else member
            function = getattr(function, "__func__", function)  # class and static methods
            if not inspect.isfunction(function):
                continue
            for parameter, hint in _hints(function, klass.__module__).items():
                for kind in _types_in(hint):
                    yield f"{value.__name__}.{name}({parameter})", kind


def unexported_types(values: list[object]) -> list[str]:
    """The package's own classes that the signatures of ``values`` name but that
    ``leonardo_async`` does not export, each with the first place it is named."""
    found: dict[str, str] = {}
    for value in values:
        for where, kind in signature_types(value):
            exported = getattr(leonardo_async, kind.__name__, None) is kind
            if kind.__module__.startswith("leonardo_async") and not exported:
                found.setdefault(f"{kind.__module__}.{kind.__qualname__}", where)
    return [f"{name} (in {where})" for name, where in sorted(found.items())]


def test_every_type_a_public_signature_names_is_exported() -> None:
    """What a public call takes, returns or raises can be named by a caller: a journal's
    entries, the client's submitter and its slots, a transport's request form ..."""
    public = [
        getattr(leonardo_async, name)
        for name in leonardo_async.__all__
        if inspect.isclass(getattr(leonardo_async, name))
        or inspect.isfunction(getattr(leonardo_async, name))
    ]
    assert unexported_types(public) == []


def _takes(limiter: KeyLimiter | None, path: Path) -> leonardo_async.Generation:
    raise NotImplementedError


def _returns(hook: Callable[[RequestKind], None]) -> list[Listing]:
    raise NotImplementedError


class _Holder:
    limiter: KeyLimiter
    _hidden: Listing


def test_the_signature_check_sees_a_private_type() -> None:
    """The check above finds a private class in a parameter, a return, a union member,
    a callable's parameters and an attribute, and passes public and outside ones."""
    found = unexported_types([_takes, _returns, _Holder])
    assert [line.split(" ")[0].rsplit(".", 1)[1] for line in found] == [
        "KeyLimiter",
        "RequestKind",
        "Listing",
    ]
    assert [where for where, _ in signature_types(_Holder)] == ["_Holder.limiter"]


def test_every_journal_error_is_a_journal_error(tmp_path: Path) -> None:
    """``except JournalError`` catches each way a journal fails, as the README says, and
    each keeps the base a caller may already catch it by."""
    from leonardo_async import JournalError

    for kind in (
        leonardo_async.JournalMismatchError,
        leonardo_async.JournalBusyError,
        leonardo_async.JournalDamagedError,
        leonardo_async.JournalWriteError,
        leonardo_async.JournalUnreachableError,
    ):
        assert issubclass(kind, JournalError)
        assert issubclass(kind, leonardo_async.LeonardoError)
    assert issubclass(leonardo_async.JournalUnreachableError, leonardo_async.JournalWriteError)
    path = tmp_path / "journal.sqlite"
    path.write_bytes(b"not a journal, but someone's notes" * 100)
    with pytest.raises(JournalError, match="is damaged"):
        leonardo_async.Journal(path)
