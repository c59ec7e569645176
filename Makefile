# Futurisys ML Deploy. `make run` and `make test` do all first-time set-up themselves.
PYTHON ?= python3
VENV ?= .venv
# CPU build of torch: PyPI's Linux wheel pulls several GB of CUDA libraries. For a GPU,
# run `make install TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126` (or similar).
TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
REQUIREMENTS := requirements.txt requirements-dev.txt requirements-train.txt requirements-ray.txt \
	deploy/requirements-space.txt deploy/requirements-deploy.txt
# The suite fails below this coverage, in percent: 92 in CI (.ci/run), 89 without its system
# packages (nginx, FluidSynth), less three.
COVERAGE_FLOOR ?= 86

.DEFAULT_GOAL := help
.PHONY: help install migrate run api test suite lint typecheck format format-check data train \
	train-attrition train-audio validate-models bench ray-run ray-stop airflow-install clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

# Re-install only when a requirements file changed.
# Each step says what it does, and pip shows its downloads: the first install takes minutes.
$(INSTALLED): $(REQUIREMENTS)
	@echo "==> [1/4] virtualenv in $(VENV)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "==> [2/4] pip itself"
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "==> [3/4] torch (its CPU build) from $(TORCH_INDEX_URL)"
	# torch alone from its index; its dependencies come with the requirements, from PyPI.
	$(BIN)/python -m pip install --no-deps --index-url $(TORCH_INDEX_URL) "$$(grep -E '^torch==' requirements.txt)"
	@echo "==> [4/4] every other dependency, from requirements-dev.txt"
	$(BIN)/python -m pip install -r requirements-dev.txt
	touch $@
	@echo "==> installed into $(VENV)"

install: $(INSTALLED)  ## virtualenv and every Python dependency

# Airflow in a virtualenv of its own: its pins differ from the app's (the DAG runs the app's
# commands with $(BIN)/python). About a minute; the suite's retraining test needs it.
AIRFLOW_VENV ?= .venv-airflow
AIRFLOW_INSTALLED := $(AIRFLOW_VENV)/.installed

$(AIRFLOW_INSTALLED): requirements-airflow.txt
	test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(AIRFLOW_VENV)/bin/python -m pip install -r requirements-airflow.txt
	touch $@

airflow-install: $(AIRFLOW_INSTALLED)  ## Airflow 3 in .venv-airflow, for deploy/airflow/dags (the suite needs it)

migrate: install  ## bring the database of DATABASE_URL to the latest schema
	$(BIN)/python -m api.manage migrate

# No `migrate` prerequisite: the API applies pending migrations itself at start.
# honcho under local_run.py, so that closing the terminal (SIGHUP) stops both, as Ctrl-C does.
run: install  ## API on :8000 and dashboard on :8501 (Ctrl-C or closing the terminal stops both)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python local_run.py --port "$${PORT:-8000}"

api: install  ## the API alone (python -m api)
	$(BIN)/python -m api

# The pid of `make ray-run`'s process, for `make ray-stop` (which stops that process only).
RAY_PID_FILE ?= data/ray-serve.pid

ray-run: install  ## the API as a Ray Serve application: REPLICAS replicas (2) on PORT (RAY_ADDRESS: join)
	mkdir -p "$(dir $(RAY_PID_FILE))"
	echo $$$$ > "$(RAY_PID_FILE)"; exec $(BIN)/python -m ray_serve

ray-stop:  ## stop what `make ray-run` started (the application, and its local Ray cluster)
	@test -f "$(RAY_PID_FILE)" || { echo "no $(RAY_PID_FILE): nothing to stop"; exit 0; }
	pid=$$(cat "$(RAY_PID_FILE)"); kill -TERM "$$pid" 2>/dev/null || true; \
	while kill -0 "$$pid" 2>/dev/null; do sleep 0.5; done; rm -f "$(RAY_PID_FILE)"

test: lint suite  ## lint, then the whole suite with coverage

suite: install airflow-install  ## the whole suite with coverage, without lint (CI lints in a step of its own)
	$(BIN)/python -m pytest --cov --cov-report=term --cov-report=xml \
		--cov-fail-under=$(COVERAGE_FLOOR)

lint: install typecheck format-check  ## ruff (lint, format), mypy, actionlint, hadolint, shellcheck, promtool
	$(BIN)/ruff check .
	$(BIN)/actionlint -shellcheck $(BIN)/shellcheck
	$(BIN)/hadolint Dockerfile
	$(BIN)/shellcheck deploy/*.sh .ci/run
	@# promtool comes with Debian's prometheus (CI installs it, .ci/run); skipped without it.
	@if command -v promtool >/dev/null; then \
		set -x; promtool check config deploy/prometheus/prometheus.yml && \
		promtool check rules deploy/prometheus/rules.yml && \
		promtool test rules deploy/prometheus/tests/*.yml; \
	else echo "promtool not found (apt-get install prometheus): Prometheus checks skipped"; fi

typecheck: install  ## mypy, strict, on the serving code (pyproject.toml says which)
	$(BIN)/mypy

format: install  ## rewrite the code in the house style: ruff format, then ruff's own fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

format-check: install  ## fail if `make format` would change a file
	$(BIN)/ruff format --check .

train-attrition: install  ## retrain the attrition models into models/
	$(BIN)/python -m ml.training.attrition --models-dir models

# Seven soundfonts (FluidSynth), STK's physical models, sonic-pi's samples, own synthesis and the
# `unknown` clips (percussion, noise, espeak-ng speech): about 10,000 clips, 2 min on 2 cores.
data: install  ## render every instrument source, with progress (installs their Debian packages)
	$(BIN)/python -m ml.training.render_data --out data/instruments

# Leave-one-source-out (6 folds), then the final CNN, calibrated and exported to ONNX as
# instrument-cnn@$(AUDIO_VERSION): about an hour on 2 busy cores (the feature cache is built once).
AUDIO_VERSION ?= 3
train-audio: data  ## evaluate by held-out source, retrain the instrument CNN into models/
	$(BIN)/python -m ml.training.instruments --data data/instruments --models-dir models \
		--version $(AUDIO_VERSION) --compare-with models/instrument-cnn/2

train: train-attrition train-audio  ## retrain every bundled model

validate-models: install  ## check every manifest's digest and every artifact's hash
	$(BIN)/python -m registry validate

bench: install  ## serving benchmarks (need wrk): print figures, assert nothing
	$(BIN)/python -m bench.tabular
	$(BIN)/python -m bench.audio

clean:  ## remove the virtualenv, local database and caches
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache .coverage coverage.xml htmlcov
