# OpenVtuber — the newcomer's commands are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.stamp-install
ARGS   ?=

.PHONY: install run test bench models clean

install: $(STAMP) models

# The venv and the editable install (which also builds the Cython decoder in place).
# Re-runs only when the packaging inputs change.
$(STAMP): pyproject.toml setup.py models/_decode.pyx
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

# Fetch + verify the three MediaPipe networks (fast no-op when present and intact).
models: $(STAMP)
	@$(PY) -m openvtuber.models.weights

run: install
	$(VENV)/bin/openvtuber track $(ARGS)

test: install
	$(PY) -m pytest -q $(ARGS)

bench: install
	$(VENV)/bin/openvtuber bench $(ARGS)
	$(VENV)/bin/openvtuber accuracy

clean:
	rm -rf $(VENV) build models/_decode.c models/_decode*.so models/weights *.egg-info
