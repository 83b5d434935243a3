# The two set-up-and-go commands of the README are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out

.PHONY: install install-test system-deps run mypy-tree lint docs test test-quick bench analyses hunt-study hunt-classes-study clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip==25.3"

install: $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e .

# the test, lint and docs dependency groups of pyproject.toml (pip >= 25.1 reads PEP 735 groups)
install-test: $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e . --group test --group lint --group docs

# the servers the tests start on loopback: Debian's XRootD server (remote input); installed where missing
# (as root through apt-get; otherwise the command to run is printed)
system-deps:
	@command -v xrootd >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xrootd-server >/dev/null; \
	  else echo "make system-deps: install Debian's xrootd-server (sudo apt-get install xrootd-server)" >&2; exit 1; fi; }

run: install
	$(BIN)/cms-anomaly rediscover-top --out $(OUT)/rediscover-top

# mypy's view of pyproject's package-dir: build/mypy/cms_anomaly/<name> links to the folder of cms_anomaly.<name>
mypy-tree:
	rm -rf build/mypy && mkdir -p build/mypy/cms_anomaly
	for f in cms_anomaly/*.py; do ln -s ../../../$$f build/mypy/$$f; done
	for pair in $$($(PYTHON) -c 'import tomllib; d = tomllib.load(open("pyproject.toml", "rb"))["tool"]["setuptools"]["package-dir"]; print(*(k.split(".")[1] + ":" + v for k, v in d.items() if "." in k))'); do \
	  ln -s ../../../$${pair#*:} build/mypy/cms_anomaly/$${pair%%:*}; done

# ruff (lint + format check) and mypy on the layers of pure functions (configured in pyproject.toml)
lint: install-test mypy-tree
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# the documentation (docs/, mkdocs-material; no network needed) into site/
docs: install-test
	$(BIN)/mkdocs build --strict --quiet

test: system-deps lint docs
	$(BIN)/python -m pytest

# the suite without the productions, whole jobs, notebooks, servers and clusters (marker `slow`), on two
# processes (pytest-xdist)
test-quick: install-test
	$(BIN)/python -m pytest -m "not slow" -n 2

bench: install
	$(BIN)/cms-anomaly bench generate --events 300
	$(BIN)/cms-anomaly generate wjets zjets ttbar --events 3000 --seed 5 --out $(OUT)/bench-sm
	$(BIN)/cms-anomaly bench processor $(OUT)/bench-sm/fileset.json --replicate 20
	$(BIN)/cms-anomaly bench scoring --events 1000000
	$(BIN)/cms-anomaly bench training

analyses: install
	$(BIN)/cms-anomaly trigger --out $(OUT)/trigger --samples $(OUT)/samples/single-lepton
	$(BIN)/cms-anomaly disco --out $(OUT)/disco --samples $(OUT)/samples/single-lepton
	$(BIN)/cms-anomaly outlier --out $(OUT)/outlier --samples $(OUT)/samples/single-lepton
	$(BIN)/cms-anomaly dijet --out $(OUT)/dijet --samples $(OUT)/samples/dijet

# the hunt with known answers: a hidden process at several shares (the rediscover-top productions), and the
# false-positive rate over 20 independent signal-free pseudo-data productions (~40 min on 2 cores)
hunt-study: install
	$(BIN)/python benchmarks/hunt_study.py injection --fractions 0 0.005 0.01 0.02 0.05 --npe 5000 \
		--out $(OUT)/hunt-injection --samples $(OUT)/rediscover-top/samples
	$(BIN)/python benchmarks/hunt_study.py fpr --seeds 20 --events 0.2 --out $(OUT)/hunt-fpr

hunt-classes-study: install
	$(BIN)/python benchmarks/hunt_classes_study.py fpr --seeds 20 --events 0.05 --executor iterative \
		--out $(OUT)/hunt-classes-fpr
	$(BIN)/python benchmarks/hunt_classes_study.py injection --cards zprime_ssm wprime_ssm --fractions 0.02 0.05 0.1 \
		--events 0.05 --executor iterative --out $(OUT)/hunt-classes-injection --samples $(OUT)/hunt-classes-fpr/samples

clean:
	rm -rf $(OUT)
