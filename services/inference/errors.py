"""What can go wrong in inference, split by how a caller should react.

InferenceError          root; ``retriable`` says whether to try again
├── SettingsError       a setting cannot be read; fix the environment
├── InvalidRequestError the caller asked for something malformed; fix the request
├── NotReadyError       nothing to answer with yet; retry shortly
│   └── NoSearchIndexError no search index is loaded; retry later
├── OverloadedError     too many requests wait already; retry after a pause
├── DeadlineExceededError the caller's deadline passed before scoring; give up
├── UnsupportedError    the method is not served by this version
└── ArtifactRejectedError a model artifact failed a check; keep serving what runs

gRPC status codes for these are chosen in one place,
:func:`inference.service.status_code_of`.
"""

from __future__ import annotations

import enum


class InferenceError(Exception):
    """Root of every error the inference service raises on purpose."""

    retriable: bool = False


class SettingsError(InferenceError):
    """An environment variable holds a value the service cannot use."""


class InvalidRequestError(InferenceError):
    """A request breaks the API's rules, such as ``k`` outside 1..100."""


class NotReadyError(InferenceError):
    """Neither a model nor any purchase is known yet, so nothing can be ranked."""

    retriable = True


class NoSearchIndexError(NotReadyError):
    """Search was asked, but no product index has been loaded to answer it."""


class OverloadedError(InferenceError):
    """The queue is full; the request is refused at once instead of timing out."""

    retriable = True


class DeadlineExceededError(InferenceError):
    """The caller's deadline passed while the request waited to be scored."""


class UnsupportedError(InferenceError):
    """The method exists in the API but this version does not serve it."""


class RejectionReason(enum.StrEnum):
    """Why an artifact was refused; a bounded label for metrics."""

    UNSUPPORTED_URI = "unsupported_uri"
    MISSING = "missing"
    SIZE_MISMATCH = "size_mismatch"
    CHECKSUM_MISMATCH = "checksum_mismatch"
    UNREADABLE = "unreadable"
    INVALID_METADATA = "invalid_metadata"
    SMOKE_TEST_FAILED = "smoke_test_failed"


class ArtifactRejectedError(InferenceError):
    """A model artifact is missing, damaged or misbehaves; it must not serve.

    ``retriable`` when the artifact could not be fetched from a store that
    may answer later.
    """

    def __init__(
        self, reason: RejectionReason, detail: str, *, retriable: bool = False
    ) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.retriable = retriable
