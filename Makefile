# Shortcuts; the README's two commands need nothing but python3 and the registries.
PY := .venv/bin/python
# The README's install: exactly the lock's pins (hash-checked), then the project itself built
# with the lock's setuptools, so nothing unpinned enters the venv.
INSTALL = python3 -m venv $(1) && $(1)/bin/pip install -r requirements.lock \
	&& $(1)/bin/pip install --no-deps --no-build-isolation -e .
UV := uv==0.13.9
LOCK_FLAGS := --extra hf --extra dev --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock"

.venv: requirements.lock pyproject.toml
	$(call INSTALL,.venv)
	touch .venv

test: .venv  ## default test run (CPU, < 20 min)
	$(PY) -m pytest

test-slow: .venv  ## world quality measurements (generation with the shipped world)
	$(PY) -m pytest -m slow -s

quickstart: .venv
	.venv/bin/robust-edit quickstart

world: .venv  ## rebuild the world from scratch into outputs/world (~1 h on 2 cores; the shipped one: --out robust_edit/world/assets --force)
	.venv/bin/robust-edit world build

# requirements.lock from pyproject.toml's ranges, for CPython 3.11 on Linux x86-64 (the
# registry's CUDA torch: these CPU machines and the GPU clusters). Pins the lock already
# holds are kept while the ranges allow them; `make lock UPGRADE=1` takes the newest.
lock:
	python3 -m venv .lock-tools && .lock-tools/bin/pip install -q $(UV)
	.lock-tools/bin/uv pip compile pyproject.toml $(LOCK_FLAGS) $(if $(UPGRADE),--upgrade) \
		-o requirements.lock

# Drift canary, not part of CI: a throwaway venv from the ranges alone (no lock), then the
# default tests, so a breaking release within the ranges is seen before a user sees it.
test-latest:
	rm -rf .venv-latest
	python3 -m venv .venv-latest && .venv-latest/bin/pip install -e ".[hf,dev]"
	@echo "versions that differ from requirements.lock:"
	@.venv-latest/bin/python -c "from robust_edit.provenance import lock_drift; print(*lock_drift() or ['none'], sep=chr(10))"
	.venv-latest/bin/python -m pytest -m "not slow and not gpu and not lockfile"

.PHONY: test test-slow quickstart world lock test-latest
