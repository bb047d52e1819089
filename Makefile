# `make run` and `make test` each do their own set-up on a fresh clone, and are fast when it is done.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8501

CHROMIUM := /usr/lib/chromium/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: model-continue setup browser index run lint test test-fast screenshot bench clean lock audit model

setup: $(STAMP)

# The CPU build of torch goes in first: a later requirement it satisfies then pulls no CUDA packages.
# Every package comes at the version in constraints.txt, the one the suite was run with.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt "torch==2.13.0"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[all,test]"
	touch $@

# After a change of dependencies and a green `make test`: pin what that .venv holds.
lock: setup
	{ sed -n '1,2p' constraints.txt; $(BIN)/pip freeze --exclude-editable | sed 's/+cpu$$//' | sort -f; } > constraints.tmp
	mv constraints.tmp constraints.txt

# Known vulnerabilities in the pinned versions (pip-audit), or a plain line saying none could be checked.
audit: setup
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "pip-audit>=2.7,<3"
	$(BIN)/python scripts/audit.py

screenshot: setup browser index
	$(BIN)/python scripts/screenshot.py

index: setup
	$(BIN)/rag ingest

# The address is RAG_APP_ADDRESS from the settings (environment or .env): 127.0.0.1 unless opened up. It is read
# first so that a bad setting stops here instead of leaving the address empty (all interfaces). The file watcher is
# off: it would watch the whole tree (corpus, index, .venv) and flood the log with "Inotify queue overflowed".
run: index
	address=$$($(BIN)/python -c "from rag.config import load_settings; print(load_settings().app_address)") && \
	$(BIN)/python -m streamlit run app.py --server.address "$$address" --server.port $(PORT) --server.headless true \
		--browser.gatherUsageStats false --client.toolbarMode minimal --client.showErrorDetails none \
		--server.fileWatcherType none

# The browser test drives Debian's chromium (a browser download cannot work offline).
browser:
	test -x $(CHROMIUM) || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

test: setup browser lint
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

test-fast: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m "not slow"

# Every benchmark, one after another (about 20 minutes), then benchmarks/RESULTS.md from their JSON.
bench: setup browser
	cd benchmarks && HF_HUB_OFFLINE=1 ../$(BIN)/python run_all.py

# The reading model (rag/models/reader), rebuilt from ../shared/train/: pairs, training (about two hours on
# 2 cores, in the background is fine; rerun to resume from the last checkpoint), ONNX export, calibration and
# the model card. The work folder lives outside the repository.
READER_WORK ?= $(HOME)/reader-work
TRAIN_DATA ?= ../shared/train
model: setup
	HF_HUB_OFFLINE=1 $(BIN)/python scripts/reader/pairs.py --train-dir $(TRAIN_DATA) --out $(READER_WORK)/pairs
	HF_HUB_OFFLINE=1 nice $(BIN)/python scripts/reader/train.py --pairs $(READER_WORK)/pairs --work $(READER_WORK)/run
	HF_HUB_OFFLINE=1 $(BIN)/python scripts/reader/export.py --work $(READER_WORK)/run --pairs $(READER_WORK)/pairs

# A further stage from the model that ships (its int8 weights dequantized): fresh SQuAD questions and a random
# 75,000 of the pairs, at a lower learning rate (about 75 minutes on 2 cores). The shipped model is stage 1
# then this stage once.
model-continue: setup
	HF_HUB_OFFLINE=1 $(BIN)/python scripts/reader/warm_start.py --onnx rag/models/reader --out $(READER_WORK)/warm
	HF_HUB_OFFLINE=1 $(BIN)/python scripts/reader/pairs.py --train-dir $(TRAIN_DATA) --out $(READER_WORK)/pairs2 \
		--seed 29 --read-share 0.25 --verify-share 0.3 --other-share 0.6 --keep 75000
	HF_HUB_OFFLINE=1 nice $(BIN)/python scripts/reader/train.py --pairs $(READER_WORK)/pairs2 --work $(READER_WORK)/run2 \
		--init $(READER_WORK)/warm --lr 3e-5 --seed 29
	HF_HUB_OFFLINE=1 $(BIN)/python scripts/reader/export.py --work $(READER_WORK)/run2 --pairs $(READER_WORK)/pairs2

clean:
	rm -rf $(VENV) vectorstore/onnx vectorstore/*.faiss vectorstore/*.sqlite vectorstore/manifest.json
