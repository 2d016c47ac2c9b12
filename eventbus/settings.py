"""Where the Kafka cluster is, read once from the environment."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

DEFAULT_BOOTSTRAP = "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"


@dataclasses.dataclass(frozen=True, kw_only=True)
class KafkaSettings:
    """Connection settings every service shares.

    ``RECOPS_KAFKA_BOOTSTRAP`` lists the brokers; ``RECOPS_TOPIC_PREFIX``
    lets several deployments (or test runs) share one cluster.
    """

    bootstrap_servers: str = DEFAULT_BOOTSTRAP
    topic_prefix: str = "recops."
    client_id: str = "recops"

    @classmethod
    def from_env(
        cls, client_id: str, env: Mapping[str, str] | None = None
    ) -> KafkaSettings:
        env = os.environ if env is None else env
        return cls(
            bootstrap_servers=env.get("RECOPS_KAFKA_BOOTSTRAP", DEFAULT_BOOTSTRAP),
            topic_prefix=env.get("RECOPS_TOPIC_PREFIX", "recops."),
            client_id=client_id,
        )

    def topic(self, topic: str) -> str:
        """The full name of one of the project's topics in this deployment."""
        return self.topic_prefix + topic

    def producer_config(self, **overrides: object) -> dict[str, object]:
        """An idempotent producer that waits for all in-sync replicas."""
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 20,
            "compression.type": "lz4",
            "message.timeout.ms": 120_000,
            **overrides,
        }

    def consumer_config(self, group_id: str, **overrides: object) -> dict[str, object]:
        """A consumer that commits only what the caller says it finished."""
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id,
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            **overrides,
        }

    def admin_config(self) -> dict[str, str | int | float | bool]:
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id,
        }


_FLAGS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def read_env_fields(
    settings_type: type,
    prefix: str,
    env: Mapping[str, str],
    *,
    error: type[Exception] = ValueError,
    skip: frozenset[str] = frozenset(),
) -> dict[str, object]:
    """The fields of a settings dataclass that ``<prefix><FIELD>`` variables set.

    Values are parsed by the field's declared type (int, float, bool, Path,
    tuple of str, str); a value that does not parse raises ``error`` with a
    message naming the variable. Unset variables are left out, so the
    dataclass defaults apply.
    """
    values: dict[str, object] = {}
    for field in dataclasses.fields(settings_type):
        variable = prefix + field.name.upper()
        raw = env.get(variable)
        if raw is None or field.name in skip:
            continue
        try:
            values[field.name] = _parse_value(_type_name(field.type), raw)
        except ValueError as exc:
            raise error(f"{variable}={raw!r} {exc}") from None
    return values


def _type_name(declared: object) -> str:
    """A field's type as written, whether annotations are strings or not."""
    if isinstance(declared, str):
        return declared
    return str(getattr(declared, "__name__", declared))


def _parse_value(kind: str, raw: str) -> object:
    if kind == "int":
        return _number(int, raw)
    if kind == "float":
        return _number(float, raw)
    if kind == "bool":
        try:
            return _FLAGS[raw.strip().lower()]
        except KeyError:
            raise ValueError("is not true or false") from None
    if kind == "Path":
        return Path(raw)
    if kind.startswith("tuple"):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


def _number(kind: type[int] | type[float], raw: str) -> int | float:
    try:
        return kind(raw)
    except ValueError:
        raise ValueError("is not a number") from None
