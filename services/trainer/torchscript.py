"""TorchScript is the agreed artifact format; torch now warns on its use."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def deprecation_silenced() -> Iterator[None]:
    """Hide torch's notice that ``torch.jit`` is deprecated, and only that."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=r"`torch\.jit\.\w+` is deprecated",
            category=FutureWarning,
        )
        yield
