"""Ingest: the gate between event producers and everything downstream.

It consumes raw behaviour events, refuses the malformed ones to the
dead-letter topic with a reason, classifies the real-data oddities it keeps,
forwards the rest to the ingested topic exactly once, and writes training
snapshots from what it ingested. ``python -m ingest.replay`` replays the
shop's order history as behaviour events.
"""

from ingest.classification import Classification, ItemKind, Oddity, classify
from ingest.errors import IngestError
from ingest.settings import EventTimeMode, IngestSettings
from ingest.validation import RefusalReason

__version__ = "0.1.0"

__all__ = [
    "Classification",
    "EventTimeMode",
    "IngestError",
    "IngestSettings",
    "ItemKind",
    "Oddity",
    "RefusalReason",
    "__version__",
    "classify",
]
