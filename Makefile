# Two entry points: `make demo` (train on the shipped CIFAR-10 sample, export, verify) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DEMO   ?= runs/demo

.PHONY: demo test lint format bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test,bench]"
	touch $@

demo: $(VENV)/.installed
	$(PY) -m training.cifar --dataset cifar10-sample --model resnet20v1 --recipe demo --output $(DEMO)/train --overwrite
	$(PY) -m export --model $(DEMO)/train/best.keras --output $(DEMO)/export --labels cifar10

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest -n 2 --dist loadfile

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(VENV)/.installed
	$(PY) -m bench

clean:
	rm -rf $(VENV) runs
