# Shortcuts; the README's two commands need nothing but python3 and the registries.
PY := .venv/bin/python

.venv:
	python3 -m venv .venv && .venv/bin/pip install -e ".[dev]"

test: .venv  ## default test run (CPU, < 20 min)
	$(PY) -m pytest

test-slow: .venv  ## world quality measurements (generation with the shipped world)
	$(PY) -m pytest -m slow -s

quickstart: .venv
	.venv/bin/robust-edit quickstart

world: .venv  ## rebuild the shipped world from scratch (~1 h on 2 cores)
	.venv/bin/robust-edit world build

.PHONY: test test-slow quickstart world
