"""The exceptions this package raises, all under one root.

Every failure a caller can meet is a :class:`LeonardoError`, so ``except LeonardoError``
is enough to keep a pipeline alive; the subclasses say what went wrong precisely enough to
decide what to do next::

    LeonardoError
    ├── ValidationError(ValueError)        bad input, raised before any request is sent
    ├── TransportError                     the request or its response was lost on the way
    │   └── SubmitUncertainError           a paid submit may or may not have been created
    ├── ResponseShapeError                 a 2xx answer we cannot read (names the JSON path)
    ├── APIError                           the API answered with an error status
    │   ├── AuthenticationError            the key is refused: 401/403, ``access-denied``, or
    │   │                                  the 500 "Invalid response from authorization hook"
    │   ├── NotFoundError                  404
    │   ├── RateLimitError                 429, with the server's Retry-After when sent
    │   └── ServerError                    5xx
    ├── UploadError                        the presigned upload failed (after redoing it)
    ├── DownloadError                      the video could not be downloaded whole
    ├── GenerationFailedError              the job ended FAILED (carries the generation)
    ├── GenerationVanishedError            the job is no longer known to the server
    │   └── GenerationNotFoundError        an id given to wait for that the server never knew
    ├── TrackerClosedError                 the tracker closed while the job was still watched
    ├── ClientStateError                   the client used outside ``async with``, or entered twice
    ├── WaitTimeoutError(TimeoutError)     a wait passed its deadline (the job keeps running)
    ├── OverBudgetError                    a submit not sent: it would pass the batch's budget
    └── JournalError                       the batch's journal cannot be used: the batch stops
        ├── JournalMismatchError           a journal made for another batch, account or server
        ├── JournalBusyError               another process holds the batch's journal
        ├── JournalDamagedError            the journal file cannot be read as a journal
        └── JournalWriteError              the journal could not record a step (disk full ...)
            └── JournalUnreachableError    the journal's database cannot be reached

A :class:`~._transport._base.Transport` tells the connection how an exchange failed with two
``OSError`` signals, which the connection turns into the errors above (they never reach
a caller)::

    OSError
    ├── NotSentError                       the request never reached the server: safe to resend
    └── MaybeSentError                     it may have reached the server: a submit is uncertain

An answer's bytes that are not JSON, or nest deeper than any answer may, are one
``ValueError`` when read (:func:`leonardo_async._wire.loads`), which the connection also
turns into one of the errors above (a bad body: a :class:`TransportError`, or for a
submit a :class:`SubmitUncertainError`)::

    ValueError
    └── BadJSONError                       not JSON, or nested too deep to be read safely

One warning, not an error: the request is valid, but probably not what was meant. It is
issued with :func:`warnings.warn`, so ``warnings.filterwarnings`` silences it or makes it
an error (``"error"``, for a pipeline that should stop at it)::

    UserWarning
    └── FrameCropWarning                   a frame's shape is the other orientation's:
                                           Leonardo crops it to the video's

Errors keep parsed data (status, Hasura ``error``/``code``, headers we need), never the live
response, so they can be logged, pickled and compared. None of them ever holds the API key:
requests are described by method and URL only, the transport never puts the
``authorization`` header into a message, and it blanks the key out of every answer it reads
before any error is made from it (some gateways echo the request's headers in their errors).
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from types import FrameType

    from .models import Generation

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadJSONError",
    "ClientStateError",
    "DownloadError",
    "FrameCropWarning",
    "GenerationFailedError",
    "GenerationNotFoundError",
    "GenerationVanishedError",
    "JournalBusyError",
    "JournalDamagedError",
    "JournalError",
    "JournalMismatchError",
    "JournalUnreachableError",
    "JournalWriteError",
    "LeonardoError",
    "MaybeSentError",
    "NotFoundError",
    "NotSentError",
    "OverBudgetError",
    "RateLimitError",
    "ResponseShapeError",
    "ServerError",
    "SubmitUncertainError",
    "TrackerClosedError",
    "TransportError",
    "UploadError",
    "ValidationError",
    "WaitTimeoutError",
    "warn",
]


def _restore(kind: type[LeonardoError], args: tuple[Any, ...]) -> LeonardoError:
    error = kind.__new__(kind)
    error.args = args
    return error


class LeonardoError(Exception):
    """Root of every error raised by leonardo-async."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Unpickle from the attributes: subclasses' constructors take other arguments
        # than the message that ``args`` holds, so the default ``cls(*args)`` fails.
        return (_restore, (type(self), self.args), self.__dict__)


class ValidationError(LeonardoError, ValueError):
    """A request parameter is invalid; raised before anything is sent.

    :param field: the parameter's name as the caller wrote it (``duration``, ``width`` ...)
    :param value: the rejected value
    :param allowed: a human description of what would have been accepted
    """

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"invalid {field}={value!r}: {allowed}")


class TransportError(LeonardoError):
    """The request failed on the network, or its answer could not be used: cut short, not
    JSON, larger or nested deeper than an answer may be, or not there in time.

    :param method: HTTP method
    :param url: the URL without credentials
    :param cause: a short description of the low-level failure
    """

    def __init__(self, method: str, url: str, cause: str) -> None:
        self.method = method
        self.url = url
        self.cause = cause
        super().__init__(f"{method} {url}: {cause}")


class SubmitUncertainError(TransportError):
    """A generation-creating POST failed after it may have reached the server.

    The job may exist and be billed. Retrying blindly could pay twice, so the client
    reconciles against the generation listing first; this error reaches the caller only
    when reconciliation itself could not decide.

    :param answered: the server did answer (a 5xx or an unreadable body), so whatever it
        did is already done; otherwise it may still be working on the request
    """

    def __init__(self, method: str, url: str, cause: str, *, answered: bool = False) -> None:
        super().__init__(method, url, cause)
        self.answered = answered


class ResponseShapeError(LeonardoError):
    """A successful response did not have the documented shape.

    :param url: where the response came from
    :param problems: one line per problem, each naming its JSON path (``$.a.b[0]``)
    """

    def __init__(self, url: str, problems: list[str]) -> None:
        self.url = url
        self.problems = problems
        super().__init__(f"unexpected response from {url}: " + "; ".join(problems))


class APIError(LeonardoError):
    """The API answered with a non-success status.

    :param status: the HTTP status code
    :param method: HTTP method of the request
    :param url: the request URL (no credentials)
    :param error: the Hasura ``error`` text, when the body had one
    :param code: the Hasura ``code``, when the body had one
    """

    def __init__(
        self,
        status: int,
        method: str,
        url: str,
        *,
        error: str | None = None,
        code: str | None = None,
    ) -> None:
        self.status = status
        self.method = method
        self.url = url
        self.error = error
        self.code = code
        detail = f": {error}" if error else ""
        tag = f" [{code}]" if code else ""
        super().__init__(f"{method} {url} -> HTTP {status}{detail}{tag}{self._advice}")

    #: What the caller can do about it, appended to the message.
    _advice = ""

    @classmethod
    def from_status(
        cls,
        status: int,
        method: str,
        url: str,
        body: Any,
        *,
        retry_after: float | None = None,
        api_root: str | None = None,
    ) -> APIError:
        """Build the most specific error for a status and its (possibly absent) body.

        :param api_root: for a 404, the base URL if its path is not the API root's (see
            :class:`NotFoundError`)
        """
        error, code = hasura_error(body)
        if status == 429:
            return RateLimitError(
                status, method, url, error=error, code=code, retry_after=retry_after
            )
        kind: type[APIError] = APIError
        if status in (401, 403) or is_key_refusal(error, code):
            kind = AuthenticationError
        elif status == 404:
            return NotFoundError(status, method, url, error=error, code=code, api_root=api_root)
        elif status >= 500:
            kind = ServerError
        return kind(status, method, url, error=error, code=code)


#: The text of the 500 Leonardo answers a malformed key with (its Hasura auth hook failed).
AUTH_HOOK_ERROR = "Invalid response from authorization hook"


def is_key_refusal(error: str | None, code: str | None) -> bool:
    """Whether a Hasura error says the key itself was refused (whatever the status).

    ``access-denied`` is Hasura's code for a key it does not accept; the authorization-hook
    500 is what a malformed key gets. Neither goes away by asking again.
    """
    return code == "access-denied" or (error is not None and AUTH_HOOK_ERROR in error)


def hasura_error(body: Any) -> tuple[str | None, str | None]:
    """The ``error`` text and ``code`` of a Hasura error body, where it has them."""
    if not isinstance(body, dict):
        return None, None
    error, code = body.get("error"), body.get("code")
    return (error if isinstance(error, str) else None, code if isinstance(code, str) else None)


class AuthenticationError(APIError):
    """The API key is missing, wrong, revoked, or not allowed to do this.

    Raised at the first such answer, never retried: 401/403, Hasura's ``access-denied``, or
    the HTTP 500 "Invalid response from authorization hook" that a malformed key gets. The
    message names ``LEONARDO_API_KEY``, never the key.
    """

    _advice = (
        "; the API key was refused: check LEONARDO_API_KEY (or the api_key passed in);"
        " Leonardo's keys are UUIDs"
    )


class NotFoundError(APIError):
    """404: the route or the object does not exist.

    :param api_root: the base URL, when its path is not the API root's (Leonardo's ends
        in ``/api/rest/v1``): then the route is what is missing, most likely, and the
        message asks whether that part of ``LEONARDO_BASE_URL`` is
    """

    def __init__(
        self,
        status: int,
        method: str,
        url: str,
        *,
        error: str | None = None,
        code: str | None = None,
        api_root: str | None = None,
    ) -> None:
        self.api_root = api_root
        if api_root is not None:
            self._advice = (
                f"; is {api_root} the API root (LEONARDO_BASE_URL, or base_url)? "
                "Leonardo's ends in /api/rest/v1"
            )
        super().__init__(status, method, url, error=error, code=code)


class ServerError(APIError):
    """5xx: the server failed; safe requests are retried before this is raised."""


class RateLimitError(APIError):
    """429: too many requests or too many running generations for this key.

    :param retry_after: seconds the server asked us to wait, if it said
    """

    def __init__(
        self,
        status: int,
        method: str,
        url: str,
        *,
        error: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, method, url, error=error, code=code)
        self.retry_after = retry_after


class UploadError(LeonardoError):
    """The presigned upload failed, even after asking for a fresh upload URL."""


class DownloadError(LeonardoError):
    """The video could not be downloaded whole; no partial file is left behind.

    :param status: the HTTP status the CDN answered, when it refused the download (a 4xx
        means the URL is wrong or expired, and asking again will not help)
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class GenerationFailedError(LeonardoError):
    """The generation ended with status ``FAILED``; Leonardo documents no reason.

    :param generation: the generation as last seen
    """

    def __init__(self, generation: Generation) -> None:
        self.generation = generation
        super().__init__(f"generation {generation.id} failed")


class GenerationVanishedError(LeonardoError):
    """The server stopped knowing a generation we were tracking (deleted or lost)."""

    def __init__(self, generation_id: str) -> None:
        self.generation_id = generation_id
        super().__init__(f"generation {generation_id} is no longer known to the server")


class GenerationNotFoundError(GenerationVanishedError):
    """An id given to track or wait for is not one the server knows (a typo, another
    account's job): raised about a second after the first look, not after the vanish
    grace that a job this client just submitted gets."""

    def __init__(self, generation_id: str) -> None:
        super().__init__(generation_id)
        self.args = (f"no generation {generation_id!r} on this account (check the id)",)


class TrackerClosedError(LeonardoError):
    """The tracker (or its client) closed before the job finished."""

    def __init__(self, generation_id: str) -> None:
        self.generation_id = generation_id
        super().__init__(f"stopped tracking {generation_id}: the tracker closed")


class WaitTimeoutError(LeonardoError, TimeoutError):
    """A wait passed its deadline. The generation itself keeps running on the server.

    :param generation_id: the job that did not finish in time
    :param timeout: the deadline in seconds
    """

    def __init__(self, generation_id: str, timeout: float) -> None:
        self.generation_id = generation_id
        self.timeout = timeout
        super().__init__(f"generation {generation_id} not finished after {timeout:g} s")


class ClientStateError(LeonardoError):
    """The client was used when it is not open, or opened a second time.

    Requests, tracking and waiting need the client's session and tracker, which exist
    only inside ``async with LeonardoClient(...)``; outside it nothing is sent (a session
    made there would never be closed). Entering a client that is already open is refused
    before anything changes, so the first ``async with`` stays intact.
    """


class OverBudgetError(LeonardoError):
    """The submit was not sent: it would pass the budget, or the budget cannot be counted."""


class JournalError(LeonardoError):
    """The batch's journal cannot be used, so the batch stops before it could pay
    unrecorded: ``except JournalError`` catches every way a journal fails."""


class JournalMismatchError(JournalError):
    """The journal belongs to a different batch; resuming it could pay for the wrong items."""


class JournalBusyError(JournalError):
    """Another process holds the journal: two runs on one batch would pay twice.

    :param pid: the holder's process id, if it could be read
    """

    def __init__(self, message: str, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid


class JournalDamagedError(JournalError):
    """The journal file cannot be read as a journal (truncated, overwritten, a bad page)."""


class JournalWriteError(JournalError):
    """The journal could not record a step (disk full, read-only ...): the batch must stop."""


class JournalUnreachableError(JournalWriteError):
    """The journal's database server cannot be reached (down, refused, too slow to answer).

    Nothing is submitted without its journal row, so a worker that cannot reach its
    journal stops as it does on a journal it cannot write.
    """


class NotSentError(OSError):
    """The request never reached the server (no connection could be made).

    A custom :class:`Transport` raises it so the client knows a retry cannot pay twice.
    """


class MaybeSentError(OSError):
    """The exchange failed after the request may have reached the server.

    A custom :class:`Transport` raises it so a submit is looked for before it is resent.
    """


class BadJSONError(ValueError):
    """Bytes read as JSON are not JSON, or nest deeper than an answer may; says which."""


class FrameCropWarning(UserWarning):
    """A local frame whose aspect ratio is the other orientation's: Leonardo crops it to
    the video's, and most of the picture may be lost (a 9:16 frame in a 16:9 video keeps
    32% of it). The message names the frame's size, the video's, and the ``orientation``
    that fits. A warning rather than an error, since cropping may be what is wanted."""


#: This package's directory: frames under it are ours, not the caller's.
_PACKAGE_DIR: Final = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(warning: Warning) -> None:
    """Issue ``warning`` as :func:`warnings.warn` does, attributed to the caller's line
    (the first frame outside this package), so the report points at the code to change
    and the ``"default"`` filter shows it once per line of theirs.
    """
    level = 2  # warn()'s caller
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    warnings.warn(warning, stacklevel=level)
