# vitrine: `make demo` and `make test` work on a fresh machine with Python 3.11, Java 17 and Maven.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test unit up install kafka-jars minio prometheus compose k8s-tools clean chaos soak lock

# Installs from constraints.txt (exact versions), so a new release of a dependency cannot break
# `make test` unannounced; `make lock` resolves the pyproject.toml ranges afresh and rewrites it.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

lock:
	rm -rf .vitrine/lock-venv
	$(PYTHON) -m venv .vitrine/lock-venv
	.vitrine/lock-venv/bin/python -m pip install --quiet --upgrade pip
	.vitrine/lock-venv/bin/python -m pip install --quiet '.[test]'
	{ sed -n '1,3p' constraints.txt; .vitrine/lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^vitrine'; } > constraints.new
	mv constraints.new constraints.txt
	rm -rf .vitrine/lock-venv

install: $(STAMP)

kafka-jars:
	bash infra/kafka/fetch.sh

# Prometheus and promtool (Debian's package): the tests run a real Prometheus against real workers.
prometheus:
	bash infra/prometheus/install.sh

# The real MinIO server, built from the Go module proxy; without Go the tests use moto's S3 server.
minio:
	bash infra/minio/build.sh || echo "MinIO not built: S3 tests run against moto's server"

# The real Docker Compose CLI (v5, built from the Go module proxy into .vitrine/bin):
# tests/ops/test_compose_config.py checks docker-compose.yml with `docker-compose config` (no engine).
compose:
	bash infra/compose/build.sh

# kustomize and kubeconform (Go module proxy), the Kubernetes and CRD schemas (PyPI, Go modules, Maven
# Central) into .vitrine/k8s: tests/ops/test_k8s_manifests.py renders infra/k8s and validates it offline.
k8s-tools: install
	bash infra/k8s/install-tools.sh

demo: install
	$(VENV)/bin/vitrine demo

up: install
	$(VENV)/bin/vitrine up

test: install kafka-jars minio prometheus compose k8s-tools
	$(PY) -m pytest -q

# Crashes, outages and hostile inputs judged by the oracle (the short version runs inside `make test`):
# the property tests, then 20 SIGKILLs per worker kind, 2 broker restarts, a 30 s Milvus outage, a 20 s
# object-store outage and every hostile input; the last line printed is the JSON verdict.
chaos: install kafka-jars minio prometheus
	$(PY) -m pytest -q -p no:cacheprovider tests/chaos/test_chaos_oracle.py tests/chaos/test_chaos_convergence.py tests/chaos/test_chaos_index_retry.py
	$(VENV)/bin/vitrine chaos --data-dir .vitrine/chaos --json .vitrine/chaos.json

# 30 minutes at half the measured maximum event rate with concurrent queries (SOAK_MINUTES=3 for a short one).
SOAK_MINUTES ?= 30
soak: install kafka-jars minio
	$(VENV)/bin/vitrine soak --data-dir .vitrine/soak --minutes $(SOAK_MINUTES) --json .vitrine/soak.json

unit: install prometheus compose k8s-tools
	$(PY) -m pytest -q -m "not integration"

clean:
	rm -rf $(VENV) .vitrine infra/kafka/libs infra/minio/bin
