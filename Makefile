# recops: one entry point for set-up, the demo, tests and benchmarks.
#
# The Python environment lives in a cache outside the repository, keyed by the
# lock file, so every clone on a machine shares one install of torch.

SHELL := /bin/bash
PYTHON ?= python3
CACHE_DIR ?= $(HOME)/.cache/recops
LOCK_HASH := $(shell sha256sum requirements.lock | cut -c1-12)
VENV ?= $(CACHE_DIR)/venv-$(LOCK_HASH)
PY := $(VENV)/bin/python
GEN := build/gen
PROTOS := $(wildcard proto/recops/v1/*.proto)

export RECOPS_CACHE_DIR := $(CACHE_DIR)
export PYTHONPATH := $(CURDIR):$(CURDIR)/services:$(CURDIR)/$(GEN)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup venv proto kafka-up kafka-down kafka-status kafka-destroy \
	test test-unit test-integration demo lint typecheck clean \
	bench-ingest bench-train evaluate-search

setup: venv proto deploy-tools
	@$(PYTHON) deploy/kafka/cluster.py fetch

venv: $(VENV)/.complete

$(VENV)/.complete:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements.lock
	touch $@

proto: $(GEN)/.complete

$(GEN)/.complete: $(PROTOS) | venv
	rm -rf $(GEN) && mkdir -p $(GEN)
	$(PY) -m grpc_tools.protoc -Iproto --python_out=$(GEN) --pyi_out=$(GEN) \
		--grpc_python_out=$(GEN) $(PROTOS)
	touch $@

kafka-up: setup
	$(PYTHON) deploy/kafka/cluster.py start
	$(PY) -m eventbus create-topics

kafka-down:
	$(PYTHON) deploy/kafka/cluster.py stop

kafka-status:
	$(PYTHON) deploy/kafka/cluster.py status

kafka-destroy:
	$(PYTHON) deploy/kafka/cluster.py destroy

demo: setup
	$(PY) deploy/local/demo.py

test: setup
	$(PY) -m pytest

test-unit: setup
	$(PY) -m pytest -m "not integration"

test-integration: setup
	$(PY) -m pytest -m integration

# Benchmarks start a cluster of their own and write JSON under reports/bench/.
bench-ingest: setup
	$(PY) bench/ingest_throughput.py

# A full training run on the newest snapshot `make demo` cut, run twice.
bench-train: setup
	$(PY) bench/train.py

# Search rankers on the ESCI judgments; product embeddings cached in CACHE_DIR.
evaluate-search: setup
	$(PY) -m trainer.search evaluate --output reports/search/esci.json

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: setup
	$(PY) -m mypy eventbus services/*

include deploy/helm/charts.mk

clean:
	rm -rf build reports .state
