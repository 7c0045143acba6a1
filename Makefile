# Two commands on a fresh machine:  make demo   and   make test
# Both create .venv when missing and install nehmap into it.
PYTHON ?= python3
VENV ?= .venv
# The CPU build of torch; set TORCH_SPEC="torch" (or a newer pin) to bring your own build.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.nehmap-installed

.PHONY: demo test lint install clean weights install-weights weights-derived browser

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/nehmap demo --out demo-output

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

# Headless Chromium for the viewer's browser tests: installed from Debian when missing and
# this is root with apt-get; otherwise those tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	      echo "installing chromium for the browser tests"; \
	      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	        >/dev/null 2>&1 || echo "could not install chromium: browser tests will skip"; \
	    else echo "no chromium (and not root with apt-get): browser tests will skip"; fi; }

test: $(STAMP) lint browser
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) demo-output .pytest_cache .ruff_cache

# Reproduce the shipped demo weights (about 3 h on 2 CPU cores) in build/weights/models,
# scored beside the installed ones; see models/README.md. models/ is left as it is:
# install-weights copies them there, once compared.
WEIGHTS_WORK := build/weights
WEIGHTS_OUT := $(WEIGHTS_WORK)/models
weights: $(STAMP)
	NEHMAP=$(BIN)/nehmap PYTHON=$(BIN)/python bash scripts/train-demo-weights.sh $(WEIGHTS_WORK)

install-weights:
	@for m in paunet unetrpp unetrpp-consensus; do for f in $$m.safetensors $$m.json; do \
	    test -f $(WEIGHTS_OUT)/$$f || { echo "$(WEIGHTS_OUT)/$$f: missing; run make weights first" >&2; exit 2; }; \
	done; done
	cp $(WEIGHTS_OUT)/paunet.* $(WEIGHTS_OUT)/unetrpp.* $(WEIGHTS_OUT)/unetrpp-consensus.* models/
	cp $(WEIGHTS_OUT)/README.md models/README.md
	@echo "installed the weights of $(WEIGHTS_OUT) in models/ (git diff models/ shows the change)"

# The paper's pipeline end to end: train on derive-neh labels instead of the generator's
# truth, and measure what that costs in Dice (fine-tuning the shipped PAUNet on each
# label set; about 30 min on 2 CPU cores; see scripts/derived_labels_cost.py).
weights-derived: $(STAMP)
	NEHMAP=$(BIN)/nehmap $(BIN)/python scripts/derived_labels_cost.py build/derived-cost \
	    --init models/paunet --lr 0.005 --epochs 6
