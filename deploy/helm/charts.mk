# Chart and deployment checks, meant to be included by the main Makefile:
#   include deploy/helm/charts.mk
# and `deploy-tools` added to the prerequisites of `setup`.
#
# deploy-tools installs helm, kubeconform, hadolint, promtool and the JSON
# schemas into $(CACHE_DIR) (once; later runs only check their stamps).
# test-charts lints and renders every chart and validates it offline.

.PHONY: deploy-tools test-charts

deploy-tools: venv
	RECOPS_CACHE_DIR=$(CACHE_DIR) PYTHON=$(PY) deploy/tools/install.sh

test-charts: deploy-tools
	$(PY) -m pytest tests/unit/deploy -q
