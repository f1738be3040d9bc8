# `make run` and `make test` set up everything they need in .venv, then start the app / the tests.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501

.PHONY: run test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# stamps make reinstalls happen only when a requirements file changes
$(VENV)/.runtime: requirements.txt | $(PY)
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

run: $(VENV)/.runtime
	$(PY) -m streamlit run app.py --server.port $(PORT) --server.headless true

test: $(VENV)/.dev
	$(PY) -m pytest

# every benchmark in turn; each prints its table and writes bench/results/<name>.json
BENCHES := hdl knn accuracy auto_k embed store page teach suggest review_queue
bench: $(VENV)/.dev
	@for b in $(BENCHES); do echo "== bench/$${b}_bench.py"; $(PY) bench/$${b}_bench.py || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
