# Everything a developer runs goes through here; `make run` and `make test` are the quick start.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-unit reliability lint format templates bench clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

## Run the service on :8888 (gunicorn); starts a local Elasticsearch unless ES_URL is set.
run: $(STAMP)
	$(BIN)/python -m scripts.run

## The whole test suite against a real Elasticsearch node (a local one unless ES_URL is set).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Faults, backpressure, hostile input, security and a soak, against real Elasticsearch processes
## (~25 min; docs/reliability.md). SOAK_SECONDS, OUTAGE_SECONDS, FUZZ_EXAMPLES, PROPERTY_EXAMPLES and
## HTTP_PROPERTY_EXAMPLES set its size.
RELIABILITY_TESTS := tests/unit/test_translate_properties.py tests/integration/test_hostile_input.py \
	tests/integration/test_http_properties.py \
	tests/integration/test_security.py tests/integration/test_rejections.py \
	tests/integration/test_openapi_fuzz.py tests/integration/test_unavailable.py tests/reliability
reliability: $(STAMP)
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-150} PROPERTY_EXAMPLES=$${PROPERTY_EXAMPLES:-3000} \
		HTTP_PROPERTY_EXAMPLES=$${HTTP_PROPERTY_EXAMPLES:-1000} \
		$(BIN)/python -m pytest -m "" -s $(RELIABILITY_TESTS) $(PYTEST_ARGS)

## Only the unit tests (no Elasticsearch needed).
test-unit: $(STAMP)
	$(BIN)/python -m pytest -m "not integration" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Regenerate index_templates/*.json from the dataset registries.
templates: $(STAMP)
	FLASK_APP=wsgi:app $(BIN)/flask templates write

## The service measured side by side with Elasticsearch (docs/benchmarks.md); not part of `test`.
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .local .pytest_cache .ruff_cache
