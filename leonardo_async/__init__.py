"""Asyncio-native client for Leonardo.AI image-to-video (Veo 3.1).

Start with :class:`LeonardoClient`; watch many jobs with its :class:`JobTracker`; fan out
many requests with :class:`BatchSubmitter`. Nothing here does I/O or reads the
environment at import time.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

# The batch file's reader stays public: it is how Python code runs the JSONL files the
# ``batch`` command reads (same fields, same checks; examples/batch_from_jsonl.py), and a
# JobLine is what it returns. BatchPlan stays as what BatchSubmitter.plan() returns. The
# journal's item states, entries and the results file's lines are the batch's own business.
from ._batch import (
    BatchItem,
    BatchPlan,
    BatchResult,
    BatchStatistics,
    BatchSubmitter,
    BatchSummary,
    JobLine,
    Journal,
    read_jobs,
)
from ._client import ImageSource, LeonardoClient
from ._errors import (
    APIError,
    AuthenticationError,
    ClientStateError,
    DownloadError,
    GenerationFailedError,
    GenerationVanishedError,
    JournalBusyError,
    JournalDamagedError,
    JournalMismatchError,
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
from ._limits import ClientStatistics, Limits
from ._retry import RetryPolicy
from ._schedule import PollSchedule
from ._tracking import JobTracker, ProgressCallback, TrackedJob, TrackerStatistics
from ._transport import MockTransport, Request, Response, Timeouts, Transport
from .models import (
    Account,
    Cost,
    FrameRef,
    GeneratedImage,
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
    __version__ = version("leonardo-async")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "APIError",
    "Account",
    "AuthenticationError",
    "BatchItem",
    "BatchPlan",
    "BatchResult",
    "BatchStatistics",
    "BatchSubmitter",
    "BatchSummary",
    "ClientStateError",
    "ClientStatistics",
    "Cost",
    "DownloadError",
    "FrameRef",
    "GeneratedImage",
    "Generation",
    "GenerationFailedError",
    "GenerationJob",
    "GenerationStatus",
    "GenerationVanishedError",
    "ImageSource",
    "ImageToVideoRequest",
    "ImageType",
    "JobLine",
    "JobTracker",
    "Journal",
    "JournalBusyError",
    "JournalDamagedError",
    "JournalMismatchError",
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
    "OverBudgetError",
    "PollSchedule",
    "ProgressCallback",
    "RateLimitError",
    "Request",
    "Resolution",
    "Response",
    "ResponseShapeError",
    "RetryPolicy",
    "ServerError",
    "SubmitUncertainError",
    "Timeouts",
    "TrackedJob",
    "TrackerClosedError",
    "TrackerStatistics",
    "Transport",
    "TransportError",
    "UploadError",
    "UploadedImage",
    "ValidationError",
    "VideoSpec",
    "WaitTimeoutError",
    "WebhookReceiver",
    "WebhookStatistics",
    "__version__",
    "read_jobs",
]
