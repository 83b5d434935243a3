# The two set-up-and-go commands of the README are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out

.PHONY: install install-test run test test-quick bench analyses clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip==25.3"

install: $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test]"

run: install
	$(BIN)/cms-anomaly rediscover-top --out $(OUT)/rediscover-top

test: install-test
	$(BIN)/python -m pytest

# the suite without the productions, whole jobs and notebooks (marker `slow`)
test-quick: install-test
	$(BIN)/python -m pytest -m "not slow"

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

clean:
	rm -rf $(OUT)
