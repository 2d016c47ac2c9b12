"""Search answered from a product index the trainer stored."""

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
from inference_fakes import RecordedPublisher, count
from prometheus_client import CollectorRegistry
from recops.v1 import storefront_pb2, storefront_pb2_grpc

from inference.batching import MicroBatcher
from inference.history import PurchaseHistory
from inference.metrics import InferenceMetrics
from inference.model import ModelHolder
from inference.recommender import Recommender
from inference.search import NO_SEARCH_INDEX, LoadedSearchIndex, Searcher
from inference.service import StorefrontService
from trainer.search import ProductCorpus, latest_search_index, load_search_index
from trainer.search.index import write_search_index

PRODUCTS = ProductCorpus(
    ["85123A", "71053", "84406B", "22423"],
    [
        "white hanging heart t-light holder",
        "white metal lantern",
        "cream cupid hearts coat hanger",
        "regency cakestand 3 tier",
    ],
)


class FlatEncoder:
    """Puts every text on one axis, so only BM25 tells products apart."""

    name = "flat"
    dimensions = 4

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        vectors[:, 0] = 1.0
        return vectors


def stored_index(registry_dir: Path) -> LoadedSearchIndex:
    """Store the shop's products with the trainer's writer, then load them."""
    encoder = FlatEncoder()
    write_search_index(
        registry_dir,
        PRODUCTS,
        encoder.encode(PRODUCTS.texts),
        source="test",
        encoder=encoder.name,
        dense_weight=0.0,
        metrics={},
        config={},
    )
    directory = latest_search_index(registry_dir)
    index = load_search_index(directory, encoder)
    return LoadedSearchIndex(index=index, version=directory.name)


def search(
    metrics: InferenceMetrics,
    searcher: Searcher | None,
    request: storefront_pb2.SearchRequest,
) -> storefront_pb2.SearchResponse | grpc.aio.AioRpcError:
    """Serve the storefront with ``searcher`` and make one Search call."""

    async def serve_and_search() -> object:
        server = grpc.aio.server()
        recommender = Recommender(ModelHolder(), PurchaseHistory(5))
        with ThreadPoolExecutor(1) as executor:
            batcher = MicroBatcher(
                recommender.recommend_batch,
                executor=executor,
                metrics=metrics,
                max_batch_size=8,
                max_delay_seconds=0.0,
            )
            storefront = StorefrontService(
                batcher, metrics, served=RecordedPublisher(), searcher=searcher
            )
            storefront_pb2_grpc.add_StorefrontServicer_to_server(storefront, server)
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                    stub = storefront_pb2_grpc.StorefrontStub(channel)
                    return await stub.Search(request, timeout=5)
            except grpc.aio.AioRpcError as exc:
                return exc
            finally:
                await server.stop(None)

    return asyncio.run(serve_and_search())  # type: ignore[return-value]


def requests(registry: CollectorRegistry, code: str) -> float:
    return count(
        registry, "recops_inference_requests_total", method="Search", code=code
    )


@pytest.fixture
def searcher(tmp_path: Path) -> Searcher:
    return Searcher(stored_index(tmp_path / "registry"), ThreadPoolExecutor(1))


def test_the_product_named_by_the_query_comes_first(
    metrics: InferenceMetrics, registry: CollectorRegistry, searcher: Searcher
) -> None:
    request = storefront_pb2.SearchRequest(query="metal lantern", k=3)

    response = search(metrics, searcher, request)

    assert isinstance(response, storefront_pb2.SearchResponse)
    assert response.items[0].item_id == "71053"
    assert response.model_version == searcher.version
    assert response.request_id
    assert requests(registry, "OK") == 1


def test_no_more_than_k_products_are_returned(
    metrics: InferenceMetrics, searcher: Searcher
) -> None:
    request = storefront_pb2.SearchRequest(query="white heart", k=2)

    response = search(metrics, searcher, request)

    assert isinstance(response, storefront_pb2.SearchResponse)
    assert len(response.items) == 2
    assert [item.score for item in response.items] == sorted(
        (item.score for item in response.items), reverse=True
    )


@pytest.mark.parametrize("loaded", [False, True])
def test_without_an_index_search_is_answered_unavailable(
    metrics: InferenceMetrics, registry: CollectorRegistry, loaded: bool
) -> None:
    searcher = Searcher(None, ThreadPoolExecutor(1)) if loaded else None
    request = storefront_pb2.SearchRequest(query="lantern", k=3)

    error = search(metrics, searcher, request)

    assert isinstance(error, grpc.aio.AioRpcError)
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert error.details() == NO_SEARCH_INDEX
    assert requests(registry, "UNAVAILABLE") == 1
