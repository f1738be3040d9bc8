# `make run` and `make test` set up everything they need in .venv, then start the app / the tests.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501

.PHONY: run test test-fast bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# stamps make reinstalls happen only when the dependency lists change
$(VENV)/.runtime: pyproject.toml requirements.txt | $(PY)
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: pyproject.toml requirements.txt requirements-dev.txt requirements-scale.txt | $(PY)
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

run: $(VENV)/.runtime
	$(VENV)/bin/hdl-studio app --port $(PORT)

# everything: doctests, unit tests, page tests, the browser test and the slow checks
test: $(VENV)/.dev
	$(PY) -m pytest

# for development: leaves out the tests marked slow (see pyproject.toml)
test-fast: $(VENV)/.dev
	$(PY) -m pytest -m "not slow" -q

# every benchmark in turn; each prints its table and writes bench/results/<name>.json
# (bench/gpu_bench.py needs a CUDA GPU, ray and open_clip: run it on its own where one is)
BENCHES := hdl bridge scale cold knn accuracy accuracy_variants auto_k embed store page teach suggest review_queue review_keys review duplicates upload
bench: $(VENV)/.dev
	@for b in $(BENCHES); do echo "== bench/$${b}_bench.py"; $(PY) bench/$${b}_bench.py || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
