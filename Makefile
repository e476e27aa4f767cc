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

.PHONY: venv demo up down ps cluster-up cluster-down cluster-ps compose-file demo-python test test-fast lint-specs bench-fanout clean

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q "uv==$(UV_VERSION)"
	$(PY) -m uv pip install -q --compile-bytecode --python $(PY) -r requirements.txt
	touch $@

venv: $(VENV)/.installed

# erp_nightly on the embedded deployment (PostgreSQL from a wheel, real scheduler and triggerer),
# against the LLM simulator at 0.2 s per call; prints the report, peak calls in flight and wall time,
# and stops everything it started.
demo: venv
	$(PY) -m erp_agents.stack.demo --home $(DEMO_HOME) --dag $(DEMO_DAG)

# Keep the embedded deployment running for the UI (connections come from this shell's AIRFLOW_CONN_*).
up: venv
	$(PY) -m erp_agents.stack up --home $(DEMO_HOME)

down: venv
	$(PY) -m erp_agents.stack down --home $(DEMO_HOME)

ps: venv
	$(PY) -m erp_agents.stack ps --home $(DEMO_HOME)

# The distributed topology on this machine (CeleryExecutor, two triggerers, two workers, Redis limiter).
cluster-up: venv
	$(PY) -m erp_agents.stack.cluster up

cluster-down: venv
	$(PY) -m erp_agents.stack.cluster down

cluster-ps: venv
	$(PY) -m erp_agents.stack.cluster ps

# docker-compose.yaml is generated from the same settings as the local cluster.
compose-file: venv
	$(PY) -m erp_agents.stack.compose > docker-compose.yaml

# The Python examples as scripts: OrchestrationEngine on the embedded deployment, against the simulator.
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
