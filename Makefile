# vitrine: `make demo` and `make test` work on a fresh machine with Python 3.11, Java 17 and Maven.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test unit up install kafka-jars minio clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

kafka-jars:
	bash infra/kafka/fetch.sh

# The real MinIO server, built from the Go module proxy; without Go the tests use moto's S3 server.
minio:
	bash infra/minio/build.sh || echo "MinIO not built: S3 tests run against moto's server"

demo: install
	$(VENV)/bin/vitrine demo

up: install
	$(VENV)/bin/vitrine up

test: install kafka-jars minio
	$(PY) -m pytest -q

unit: install
	$(PY) -m pytest -q -m "not integration"

clean:
	rm -rf $(VENV) .vitrine infra/kafka/libs infra/minio/bin
