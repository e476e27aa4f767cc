# erp-agents: `make demo` runs erp_nightly end to end on the embedded default; `make test` runs the tests.
SHELL := /bin/bash
.ONESHELL:
.SILENT:
.SHELLFLAGS := -euo pipefail -c

VENV ?= .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9
export PYTHONPATH := $(CURDIR):$(CURDIR)/plugins

DEMO_HOME := $(CURDIR)/.airflow
DEMO_DAG ?= erp_nightly
DEMO_DATE ?= 2026-10-31

.PHONY: venv demo demo-python test test-fast lint-specs bench-fanout clean

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q "uv==$(UV_VERSION)"
	$(PY) -m uv pip install -q --python $(PY) -r requirements.txt
	touch $@

venv: $(VENV)/.installed

# Embedded default: SQLite metadata DB, `airflow dags test`, the LLM simulator on localhost.
demo: venv
	export AIRFLOW_HOME=$(DEMO_HOME)
	export AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags AIRFLOW__CORE__PLUGINS_FOLDER=$(CURDIR)/plugins
	export AIRFLOW__CORE__LOAD_EXAMPLES=False
	mkdir -p $(DEMO_HOME)
	echo "==> airflow db migrate ($(DEMO_HOME)/airflow.db)"
	$(PY) -m airflow db migrate > $(DEMO_HOME)/db-migrate.log 2>&1
	port=$$($(PY) -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	echo "==> LLM simulator on 127.0.0.1:$$port"
	$(PY) -m include.llm_simulator --port $$port --latency 0.2 --log $(DEMO_HOME)/simulator.jsonl \
		> $(DEMO_HOME)/simulator.log 2>&1 &
	sim=$$!
	trap 'kill $$sim 2>/dev/null || true' EXIT
	for _ in $$(seq 100); do curl -sf http://127.0.0.1:$$port/health > /dev/null && break; sleep 0.2; done
	export AIRFLOW_CONN_OPENAI_DEFAULT="{\"conn_type\": \"openai\", \"password\": \"sim-demo-key\", \"host\": \"http://127.0.0.1:$$port/v1\"}"
	echo "==> airflow dags test $(DEMO_DAG) $(DEMO_DATE)   (log: $(DEMO_HOME)/dags-test.log)"
	$(PY) -m airflow dags test $(DEMO_DAG) $(DEMO_DATE) > $(DEMO_HOME)/dags-test.log 2>&1 || true
	echo
	$(PY) -m erp_agents report $(DEMO_DAG)

# The Python examples as scripts: OrchestrationEngine -> dag.test(), against the simulator.
demo-python: venv
	export AIRFLOW_HOME=$(DEMO_HOME)
	export AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags AIRFLOW__CORE__PLUGINS_FOLDER=$(CURDIR)/plugins
	export AIRFLOW__CORE__LOAD_EXAMPLES=False
	mkdir -p $(DEMO_HOME)
	port=$$($(PY) -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	$(PY) -m include.llm_simulator --port $$port --latency 0.2 --log $(DEMO_HOME)/simulator.jsonl \
		> $(DEMO_HOME)/simulator.log 2>&1 &
	sim=$$!
	trap 'kill $$sim 2>/dev/null || true' EXIT
	for _ in $$(seq 100); do curl -sf http://127.0.0.1:$$port/health > /dev/null && break; sleep 0.2; done
	export OPENAI_API_KEY=sim-demo-key OPENAI_BASE_URL=http://127.0.0.1:$$port/v1
	for example in basic_workflow erp_multi_module parallel_workflows; do
		echo "==> python dags/examples/$$example.py   (log: $(DEMO_HOME)/$$example.log)"
		$(PY) dags/examples/$$example.py 2> $(DEMO_HOME)/$$example.log | grep -v '^[0-9]\{4\}-' || true
	done

test: venv
	$(PY) -m pytest -q

test-fast: venv
	$(PY) -m pytest -q -m "not e2e"

lint-specs: venv
	$(PY) -m erp_agents lint dags/specs

bench-fanout: venv
	$(PY) bench/fanout.py

clean:
	rm -rf $(DEMO_HOME) .pytest_cache
