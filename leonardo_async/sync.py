"""A blocking client for scripts and notebooks: the async client on a loop of its own.

:class:`LeonardoClient` here has the async client's methods, with the same arguments and
the same guarantees (validation before any request, the key's limits, never paying
twice), but each call blocks until it is done::

    from leonardo_async.sync import LeonardoClient

    with LeonardoClient() as client:             # LEONARDO_API_KEY from the environment
        video = client.generate(prompt="...", image=Path("start.png"), out="out.mp4")

It is no second implementation: every call is the async client's own coroutine, run by
anyio's blocking portal (:func:`anyio.from_thread.start_blocking_portal`) on an event loop
in a thread the ``with`` block owns. The async client is entered in that loop when the
block starts and left when it ends, and the thread ends with it, so nothing outlives the
block: no loop, no thread, no session. Calls may come from any thread. In a program that
already runs an event loop, use :class:`leonardo_async.LeonardoClient` itself.

Every method of the async client is here by the same name (``close`` for ``aclose``);
its settings and properties are on :attr:`LeonardoClient.aio`, the async client itself.
``track`` returns the async handle: here, :meth:`~LeonardoClient.wait` on its id gets the
result, and :meth:`~LeonardoClient.as_completed` yields the tracked jobs as they end.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from anyio.from_thread import BlockingPortal, start_blocking_portal

from . import _client
from ._errors import ClientStateError, ValidationError

__all__ = ["LeonardoClient"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

_Async = _client.LeonardoClient


class _Blocking(Generic[P, R]):
    """A blocking method: the async client's coroutine of the same name, run through the
    portal, with its signature and docstring."""

    def __init__(self, method: Callable[Concatenate[_Async, P], Awaitable[R]]) -> None:
        self._method = method
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, client: None, owner: type[Any]) -> _Blocking[P, R]: ...

    @overload
    def __get__(self, client: LeonardoClient, owner: type[Any]) -> Callable[P, R]: ...

    def __get__(
        self, client: LeonardoClient | None, owner: type[Any]
    ) -> _Blocking[P, R] | Callable[P, R]:
        if client is None:
            return self
        method = self._method

        @functools.wraps(method)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            portal, inner = client._running()

            async def run() -> R:
                return await method(inner, *args, **kwargs)

            return portal.call(run)

        return call


class _InLoop(Generic[P, R]):
    """A plain method of the async client, called in its loop's thread (the client's
    state belongs to that thread), with its signature and docstring."""

    def __init__(self, method: Callable[Concatenate[_Async, P], R]) -> None:
        self._method = method
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, client: None, owner: type[Any]) -> _InLoop[P, R]: ...

    @overload
    def __get__(self, client: LeonardoClient, owner: type[Any]) -> Callable[P, R]: ...

    def __get__(
        self, client: LeonardoClient | None, owner: type[Any]
    ) -> _InLoop[P, R] | Callable[P, R]:
        if client is None:
            return self
        method = self._method

        @functools.wraps(method)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            portal, inner = client._running()

            async def run() -> tuple[R]:
                # In a tuple: the portal would await an awaitable result (a TrackedJob)
                return (method(inner, *args, **kwargs),)

            return portal.call(run)[0]

        return call


class _BlockingIterator(Generic[P, T]):
    """A blocking iterator in place of a method that returns an async one: each step is
    one ``__anext__`` through the portal, and leaving the loop early closes the async
    iterator in its own loop."""

    def __init__(self, method: Callable[Concatenate[_Async, P], AsyncIterator[T]]) -> None:
        self._method = method
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, client: None, owner: type[Any]) -> _BlockingIterator[P, T]: ...

    @overload
    def __get__(self, client: LeonardoClient, owner: type[Any]) -> Callable[P, Iterator[T]]: ...

    def __get__(
        self, client: LeonardoClient | None, owner: type[Any]
    ) -> _BlockingIterator[P, T] | Callable[P, Iterator[T]]:
        if client is None:
            return self
        method = self._method

        @functools.wraps(method)
        def call(*args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
            portal, inner = client._running()
            return _steps(portal, method(inner, *args, **kwargs))

        return call


def _steps(portal: BlockingPortal, iterator: AsyncIterator[T]) -> Iterator[T]:
    async def step() -> tuple[bool, T | None]:
        try:
            return True, await iterator.__anext__()
        except StopAsyncIteration:
            return False, None

    async def close() -> None:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()

    try:
        while True:
            more, item = portal.call(step)
            if not more:
                return
            yield item  # type: ignore[misc]
    finally:
        with contextlib.suppress(RuntimeError):  # the block has ended, and the loop too
            portal.call(close)


def _arguments_of(
    source: Callable[Concatenate[Any, P], None],
) -> Callable[[Callable[..., None]], Callable[Concatenate[Any, P], None]]:
    """Give the decorated ``__init__`` the parameters of ``source`` (for type checkers
    and ``help()``), so the two constructors cannot drift apart."""

    def give(init: Callable[..., None]) -> Callable[Concatenate[Any, P], None]:
        return functools.wraps(source)(init)

    return give


class LeonardoClient:
    """A blocking client for Leonardo.AI image-to-video. Use it with ``with``.

    Takes the arguments of :class:`leonardo_async.LeonardoClient`, and checks them here,
    before any thread is started; all but ``session``, since an aiohttp session belongs
    to the loop it was made in, and this client runs its own.
    """

    @_arguments_of(_Async.__init__)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("session") is not None:
            raise ValidationError(
                "session", "<session>", "None: the blocking client makes its own in its loop"
            )
        self._async = _Async(*args, **kwargs)
        self._stack: ExitStack | None = None
        self._portal: BlockingPortal | None = None

    def __repr__(self) -> str:
        return f"<leonardo_async.sync.LeonardoClient {self._async.base_url}>"

    def __enter__(self) -> LeonardoClient:
        if self._stack is not None:
            raise ClientStateError("the client is already open: enter it once")
        with ExitStack() as stack:
            portal = stack.enter_context(start_blocking_portal("asyncio"))
            stack.enter_context(portal.wrap_async_context_manager(self._async))
            self._portal = portal
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        stack, self._stack, self._portal = self._stack, None, None
        if stack is not None:
            stack.__exit__(*exc_info)

    def close(self) -> None:
        """Stop tracking, close the session and end the client's thread."""
        self.__exit__(None, None, None)

    def _running(self) -> tuple[BlockingPortal, _client.LeonardoClient]:
        if self._portal is None:
            raise ClientStateError(
                "the client is not open: call it inside 'with LeonardoClient() as client:'"
            )
        return self._portal, self._async

    @property
    def base_url(self) -> str:
        """The API root this client talks to."""
        return self._async.base_url

    @property
    def aio(self) -> _client.LeonardoClient:
        """The async client underneath, for code that runs in its loop (the portal's)."""
        return self._async

    me = _Blocking(_Async.me)
    account = _Blocking(_Async.account)
    user_id = _Blocking(_Async.user_id)
    in_flight_bound = _Blocking(_Async.in_flight_bound)
    upload_image = _Blocking(_Async.upload_image)
    delete_image = _Blocking(_Async.delete_image)
    image_to_video = _Blocking(_Async.image_to_video)
    submit = _Blocking(_Async.submit)
    preview_submit = _InLoop(_Async.preview_submit)
    get_generation = _Blocking(_Async.get_generation)
    list_generations = _Blocking(_Async.list_generations)
    raw_listing_page = _Blocking(_Async.raw_listing_page)
    delete_generation = _Blocking(_Async.delete_generation)
    wait = _Blocking(_Async.wait)
    download = _Blocking(_Async.download)
    generate = _Blocking(_Async.generate)
    iter_generations = _BlockingIterator(_Async.iter_generations)
    as_completed = _BlockingIterator(_Async.as_completed)
    track = _InLoop(_Async.track)
    notify = _InLoop(_Async.notify)
    statistics = _InLoop(_Async.statistics)
    tracker_statistics = _InLoop(_Async.tracker_statistics)
