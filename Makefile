# Everything a developer runs goes through here; `make run` and `make test` are the quick start.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
# Debian packages, installed as root (or through sudo) when a target needs them.
APT_INSTALL = sh -c 'if [ "$$(id -u)" -ne 0 ]; then S=sudo; fi; $$S apt-get update -qq && \
	$$S env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$$@"' apt-install

.PHONY: run test test-unit reliability lint format templates bench clean browser

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

## The pages' browser libraries (Chart.js for /explore), as pinned in package-lock.json.
$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || $(APT_INSTALL) npm
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

## Headless Chromium and its driver for tests/browser: Debian's chromium and chromium-driver.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		$(APT_INSTALL) chromium chromium-driver; fi

## Run the service on :8888 (gunicorn); starts a local Elasticsearch unless ES_URL is set.
run: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m scripts.run

## The whole test suite against a real Elasticsearch node (a local one unless ES_URL is set),
## the pages in headless Chromium included (REQUIRE_BROWSER: a missing browser fails, not skips).
test: $(STAMP) $(NODE_STAMP) browser
	@# curl runs the README's examples (tests/integration/test_readme_examples.py).
	@command -v curl >/dev/null || $(APT_INSTALL) curl
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	REQUIRE_BROWSER=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

## Faults, backpressure, hostile input, security and a soak, against real Elasticsearch processes
## (~30 min; docs/reliability.md). SOAK_SECONDS, OUTAGE_SECONDS, DISK_FULL_SECONDS, FUZZ_EXAMPLES,
## PROPERTY_EXAMPLES, HTTP_PROPERTY_EXAMPLES and ANALYTICS_PROPERTY_EXAMPLES set its size.
RELIABILITY_TESTS := tests/unit/test_translate_properties.py tests/integration/test_hostile_input.py \
	tests/integration/test_http_properties.py tests/integration/test_analytics_properties.py \
	tests/integration/test_security.py tests/integration/test_rejections.py \
	tests/integration/test_openapi_fuzz.py tests/integration/test_unavailable.py \
	tests/integration/test_slow_clients.py tests/integration/test_worker_kill.py \
	tests/integration/test_tokens_served.py tests/integration/test_two_instances.py tests/reliability
reliability: $(STAMP)
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-150} PROPERTY_EXAMPLES=$${PROPERTY_EXAMPLES:-3000} \
		HTTP_PROPERTY_EXAMPLES=$${HTTP_PROPERTY_EXAMPLES:-1000} ANALYTICS_PROPERTY_EXAMPLES=$${ANALYTICS_PROPERTY_EXAMPLES:-500} \
		SLOW_CLIENTS_FULL=1 WORKER_KILL_FULL=1 TOKENS_FULL=1 \
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
	rm -rf $(VENV) node_modules .local .pytest_cache .ruff_cache
