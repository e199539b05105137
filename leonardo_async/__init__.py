"""Asyncio-native client for Leonardo.AI image-to-video (Veo 3.1).

Start with :class:`LeonardoClient`; watch many jobs with its :class:`JobTracker`; fan out
many requests with :class:`BatchSubmitter`. Nothing here does I/O or reads the
environment at import time.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

# Every type a public call returns, or a public extension point must raise or read, is
# here: a journal's entries and states (``Journal.entry()``), the client's submitter and
# its slots (``client.submitter``), a request's form (what a Transport sends), an item's
# extra paid generations (``Journal.extras()``). The batch file's reader and the results
# file's lines are the command line's business.
from ._batch import (
    BatchItem,
    BatchJournal,
    BatchPlan,
    BatchResult,
    BatchStatistics,
    BatchSubmitter,
    BatchSummary,
    ExtraGeneration,
    ItemState,
    Journal,
    JournalEntry,
    Outcome,
    PostgresJournal,
)
from ._client import CancelledSubmit, ImageSource, LeonardoClient, Submitter
from ._errors import (
    APIError,
    AuthenticationError,
    ClientStateError,
    DownloadError,
    FrameCropWarning,
    GenerationFailedError,
    GenerationNotFoundError,
    GenerationVanishedError,
    JournalBusyError,
    JournalDamagedError,
    JournalError,
    JournalMismatchError,
    JournalUnreachableError,
    JournalWriteError,
    LeonardoError,
    MaybeSentError,
    NotFoundError,
    NotSentError,
    OverBudgetError,
    RateLimitError,
    ResponseShapeError,
    ServerError,
    SubmitUncertainError,
    TrackerClosedError,
    TransportError,
    UploadError,
    ValidationError,
    WaitTimeoutError,
)
from ._limits import ClientStatistics, Limits, RedisLimits, SubmitSlot
from ._retry import RetryPolicy
from ._schedule import PollSchedule
from ._tracking import (
    JobTracker,
    ProgressCallback,
    TrackedJob,
    TrackerStatistics,
    UpdateCallback,
)
from ._transport import (
    CallOptions,
    Form,
    MockTransport,
    Request,
    Response,
    Timeouts,
    Transport,
)
from .models import (
    Account,
    Cost,
    FrameRef,
    GeneratedImage,
    GeneratedVideo,
    Generation,
    GenerationJob,
    GenerationStatus,
    ImageToVideoRequest,
    ImageType,
    Model,
    Orientation,
    Resolution,
    UploadedImage,
    VideoSpec,
)
from .webhook import WebhookReceiver, WebhookStatistics

try:
    __version__ = _version("leonardo-async")
except _PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "APIError",
    "Account",
    "AuthenticationError",
    "BatchItem",
    "BatchJournal",
    "BatchPlan",
    "BatchResult",
    "BatchStatistics",
    "BatchSubmitter",
    "BatchSummary",
    "CallOptions",
    "CancelledSubmit",
    "ClientStateError",
    "ClientStatistics",
    "Cost",
    "DownloadError",
    "ExtraGeneration",
    "Form",
    "FrameCropWarning",
    "FrameRef",
    "GeneratedImage",
    "GeneratedVideo",
    "Generation",
    "GenerationFailedError",
    "GenerationJob",
    "GenerationNotFoundError",
    "GenerationStatus",
    "GenerationVanishedError",
    "ImageSource",
    "ImageToVideoRequest",
    "ImageType",
    "ItemState",
    "JobTracker",
    "Journal",
    "JournalBusyError",
    "JournalDamagedError",
    "JournalEntry",
    "JournalError",
    "JournalMismatchError",
    "JournalUnreachableError",
    "JournalWriteError",
    "LeonardoClient",
    "LeonardoError",
    "Limits",
    "MaybeSentError",
    "MockTransport",
    "Model",
    "NotFoundError",
    "NotSentError",
    "Orientation",
    "Outcome",
    "OverBudgetError",
    "PollSchedule",
    "PostgresJournal",
    "ProgressCallback",
    "RateLimitError",
    "RedisLimits",
    "Request",
    "Resolution",
    "Response",
    "ResponseShapeError",
    "RetryPolicy",
    "ServerError",
    "SubmitSlot",
    "SubmitUncertainError",
    "Submitter",
    "Timeouts",
    "TrackedJob",
    "TrackerClosedError",
    "TrackerStatistics",
    "Transport",
    "TransportError",
    "UpdateCallback",
    "UploadError",
    "UploadedImage",
    "ValidationError",
    "VideoSpec",
    "WaitTimeoutError",
    "WebhookReceiver",
    "WebhookStatistics",
    "__version__",
]
