# Landprobe: the two quick-start commands are `make demo` and `make test`; both set themselves up first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help setup demo test test-fast test-engine test-plugin lint lock engine-python zip

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup:  ## install QGIS (Debian packages) and build the engine and test environments, once
	@bash scripts/setup.sh

demo: setup  ## the main job: train and classify the sample scene through qgis_process
	@bash scripts/demo.sh

test: setup  ## all tests: lint, engine tests, plugin tests in real QGIS and qgis_process
	@bash scripts/test.sh

test-fast: setup  ## under 2 minutes: lint and the engine tests not marked slow (tests/engine/conftest.py)
	@bash scripts/test.sh lint fast

test-engine: setup  ## engine tests only (no QGIS)
	@bash scripts/test.sh engine

test-plugin: setup  ## plugin tests only (real QGIS)
	@bash scripts/test.sh plugin

lint: setup  ## ruff and the layers contract (scripts/check_layers.py)
	@bash scripts/test.sh lint

engine-python: setup  ## print the engine's Python (use it for the command line: `$(make -s engine-python) -m engine --help`)
	@source scripts/common.sh && echo "$$ENGINE_PYTHON"

lock:  ## re-resolve requirements/engine.in into requirements/engine.lock
	@bash scripts/lock.sh

zip:  ## build dist/landprobe-<version>.zip for QGIS's "Install from ZIP"
	@python3 scripts/build_zip.py
