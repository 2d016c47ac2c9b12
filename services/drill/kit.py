"""The real probes of a drill: Kafka for events, gRPC for recommendations."""

from __future__ import annotations

import logging

from confluent_kafka import Producer

from drill.ingestion import IngestionCounter, KafkaIngestionCounter
from drill.plan import DrillPlan
from drill.probes import (
    EventProbe,
    FlowRecord,
    GrpcRecommendClient,
    KafkaEventSender,
    ProbePurchase,
    RecommendProbe,
)
from drill.settings import DrillSettings
from eventbus import KafkaSettings, Topic

logger = logging.getLogger(__name__)


class KafkaProbeKit:
    """Builds probes that talk to the deployment's Kafka and storefront."""

    def __init__(self, settings: DrillSettings, kafka: KafkaSettings) -> None:
        self._settings = settings
        self._kafka = kafka

    def event_probe(self, plan: DrillPlan, record: FlowRecord) -> EventProbe:
        producer = Producer(self._kafka.producer_config(logger=logger))
        sender = KafkaEventSender(producer, self._kafka.topic(Topic.BEHAVIOUR_EVENTS))
        purchase = ProbePurchase(
            user_id=self._settings.probe_user_id,
            item_id=self._settings.probe_item_id,
            price=self._settings.probe_item_price,
        )
        return EventProbe(
            sender=sender,
            drill_id=plan.drill_id,
            purchase=purchase,
            events_per_second=plan.probe_events_per_second,
            record=record,
        )

    def recommend_probe(
        self, plan: DrillPlan, record: FlowRecord
    ) -> RecommendProbe | None:
        if not self._settings.grpc_probe_enabled:
            return None
        return RecommendProbe(
            client=GrpcRecommendClient(self._settings.grpc_target),
            user_ids=self._settings.recommend_user_ids,
            k=self._settings.recommend_k,
            deadline_seconds=self._settings.grpc_deadline_seconds,
            requests_per_second=plan.requests_per_second,
            record=record,
        )

    def ingestion_counter(self, source: str) -> IngestionCounter:
        return KafkaIngestionCounter.connect(
            self._kafka,
            topic=self._kafka.topic(Topic.INGESTED_EVENTS),
            source=source,
            timeout_seconds=self._settings.kafka_timeout_seconds,
        )
