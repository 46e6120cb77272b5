# uebench - set-up, demo and tests. `make demo` and `make test` work on a fresh machine.
VENV        ?= .venv
PYTHON      ?= python3
# Pinned first: torch 2.13.0 resolves to the CPU build here; an unpinned torch (or a package that
# pulls one) drags in a multi-GB CUDA build. On a GPU machine set TORCH_SPEC to the build you want.
TORCH_SPEC  ?= torch==2.13.0
PY          := $(VENV)/bin/python
FMNIST_DIR  ?= /usr/share/datasets/fashion-mnist
DEMO_OUT    ?= runs/demo

.PHONY: setup data demo test lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q "$(TORCH_SPEC)"
	$(VENV)/bin/pip install -q -e ".[dev,ray]"  # ray: the Ray executor and its test
	touch $@

setup: $(VENV)/.installed

# Fashion-MNIST: the Debian package where apt is available (root), else the official download.
data: setup
	@if [ -f "$(FMNIST_DIR)/train-images-idx3-ubyte.gz" ]; then \
	  echo "Fashion-MNIST found in $(FMNIST_DIR)"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null; \
	else \
	  $(VENV)/bin/uebench download fashion-mnist; \
	fi

# The main job: clean vs EM/OPS/LSP and the random-noise control on a Fashion-MNIST subset with a
# small ResNet (ResNet-18 x1/8, SGD) -> UD table + figures.
demo: data
	$(VENV)/bin/uebench demo --out $(DEMO_OUT)

# Tests run one torch thread each (tests/conftest.py), so two pytest workers use both cores of a
# CI machine; --dist loadfile keeps each test file on one worker (module fixtures, shared stores).
TEST_WORKERS ?= 2
test: data
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks

bench: setup
	$(PY) benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache
