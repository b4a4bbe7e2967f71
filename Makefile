# Two commands do all set-up on a fresh machine with Python 3.11:
#   make demo   installs snnc in .venv and compiles, evaluates and runs the shipped digits CNN
#   make test   installs snnc with its test tools in .venv and runs the linter and the tests
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.snnc-installed

.PHONY: demo test install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# Lava 0.10.0 declares python<3.11 and pins old numpy; it runs on 3.11 and current numpy
	# with the shims in backends/lava/compat.py, so install it without its declared deps,
	# plus the deps it really uses (issue #3)
	$(BIN)/python -m pip install --quiet --no-deps --ignore-requires-python lava-nc==0.10.0
	$(BIN)/python -m pip install --quiet "asteval>=0.9.31,<0.10" scipy scikit-learn
	@# lava-dl 0.6.0 (netx, the reader the netx tests load files with) declares python<3.11
	@# and torchvision/opencv/pillow for slayer's object detection, which netx never uses
	@# (compat.py makes that import optional); netx itself needs lava-nc, h5py and torch
	$(BIN)/python -m pip install --quiet --no-deps --ignore-requires-python lava-dl==0.6.0
	@# independent NIR consumers for the interop tests: Sinabs (it pins an older nir, which
	@# it does not need, so it goes in without its declared dependencies). torch 2.13.0 is
	@# the CPU wheel; other versions download CUDA builds.
	@# onnxscript: the dynamo exporter (torch.onnx.export(..., dynamo=True)) that tests use
	$(BIN)/python -m pip install --quiet torch==2.13.0 "matplotlib>=3.8" pbr onnxscript==0.7.2
	@# Norse reads NIR too (issue 17); it declares torchvision, which its NIR reader does not use
	$(BIN)/python -m pip install --quiet --no-deps sinabs==3.1.3 nirtorch==2.6 norse==1.1.0
	@# Graphviz renders `snnc inspect --svg`; snnc works without it
	command -v dot >/dev/null || (apt-get update -qq && apt-get install -y -qq graphviz) \
		|| echo "note: Graphviz not installed; snnc inspect --svg will say how to get it"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/snnc compile examples/digits/model.onnx --calib examples/digits/calib.npz \
		--timesteps 32 -o out/digits.snn
	$(BIN)/snnc run out/digits.snn --data examples/digits/test.npz
	$(BIN)/snnc eval examples/digits/model.onnx --data examples/digits/test.npz \
		--calib examples/digits/calib.npz --timesteps 1,2,4,8,16,32,64 --json out/digits-eval.json

# the suite in 2 worker processes (pytest-xdist), each test file whole in one of them (its
# module fixtures built once): 2 cores are what CI has; TEST_WORKERS=0 runs it in this process
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

clean:
	rm -rf out .pytest_cache .ruff_cache
