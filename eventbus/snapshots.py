"""The training snapshot's file layout: ingest writes it, the trainer reads it.

A snapshot is a directory holding ``train.parquet``, ``validation.parquet``
and ``test.parquet``, split 7:2:1 by event time, with one row per ingested
behaviour event in the schema below, and a ``manifest.json``.
"""

import pyarrow as pa

SPLITS = ("train", "validation", "test")

SNAPSHOT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_type", pa.string()),
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("query", pa.string()),
        ("quantity", pa.int32()),
        ("price", pa.float64()),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("session_id", pa.string()),
        ("item_description", pa.string()),
        ("country", pa.string()),
        ("source", pa.string()),
        ("item_kind", pa.string()),
    ]
)
