# Two commands do all set-up on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint install sysdeps clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	@# torch only when missing: a bare `pip install torch` would pull GBs of CUDA wheels.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > $(VENV)/constraints.txt
	$(PY) -m pip install -q -c $(VENV)/constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) sysdeps

# System programs: Graphviz's `dot` (diagrams) and Debian's chromium (browser tests).
sysdeps:
	@command -v dot >/dev/null && command -v chromium >/dev/null || \
	  ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q --no-install-recommends graphviz chromium fonts-dejavu-core)

run: install
	$(VENV)/bin/python -m app.serve $(ARGS)  # streamlit run streamlit_app.py, imports warmed up (app/warmup.py); settings: .streamlit/config.toml

lint: $(STAMP)
	$(VENV)/bin/ruff check hrnet_core analysis app tests bench streamlit_app.py

test: install lint
	$(PY) -m pytest -n 2 -q --durations=15

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
