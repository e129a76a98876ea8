# Two entry points: `make demo` (train on the shipped CIFAR-10 sample, export, verify) and `make test`.
# Each installs into $(VENV) what it runs: the demo the train and export extras; the tests those
# and the test and benchmark tools (JAX, PyTorch, pytest, ruff); `make docs` / `make docs-build`
# the documentation site's tools. One stamp file per set, so any command may follow another.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DEMO   ?= runs/demo
BENCH_NAME ?= cpu-$(shell nproc)core-$(shell date +%Y%m%d)

.PHONY: demo test lint format docs docs-build bench gpu-prep clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed-demo: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[train,export]"
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[test,bench]"
	touch $@

$(VENV)/.installed-docs: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[docs]"
	touch $@

demo: $(VENV)/.installed-demo
	$(PY) -m training.cifar --dataset cifar10-sample --model resnet20v1 --recipe demo --output $(DEMO)/train --overwrite
	$(PY) -m export --model $(DEMO)/train/best.keras --output $(DEMO)/export --labels cifar10

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest -n 2 --dist loadfile

format: $(VENV)/.installed-test
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The documentation site (mkdocs.yml, docs/): served at http://127.0.0.1:8000 while you edit it
# (DOCS_ADDR=0.0.0.0:8000 to reach it from elsewhere), or built into site/ with --strict as CI does:
# a broken link or anchor, a missing page or an unresolved API reference fails the build.
DOCS_ADDR ?= 127.0.0.1:8000
docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --dev-addr $(DOCS_ADDR)

docs-build: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# make bench DATA=path/to/cifar10.npz (x_train, y_train, x_test, y_test; real CIFAR-10 images)
bench: $(VENV)/.installed-test
	@test -n "$(DATA)" || { echo "error: make bench needs DATA=path/to/cifar10.npz"; exit 2; }
	$(PY) -m bench run --data $(DATA) --output bench/results/$(BENCH_NAME).jsonl
	$(PY) -m bench report bench/results/$(BENCH_NAME).jsonl

# make gpu-prep DATA=path/to/cifar10.npz: what bench/gpu_run.sh needs on a GPU machine without
# TensorFlow or a package index (Python 3.12 with JAX and PyTorch): Keras' wheels in .whl/ and the
# images in .data/, to copy there with the checkout.
KERAS_REQ := $(shell grep -o '"keras>=[^"]*"' pyproject.toml)
gpu-prep:
	@test -n "$(DATA)" || { echo "error: make gpu-prep needs DATA=path/to/cifar10.npz"; exit 2; }
	mkdir -p .whl .data
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		-d .whl $(KERAS_REQ) namex optree
	install -m 0644 $(DATA) .data/cifar10.npz

clean:
	rm -rf $(VENV) runs site
