# Spine X-ray screening toolkit. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
, := ,
EXTRAS := $(if $(GPU),dev$(,)gpu,dev$(,)cpu)
STAMP := $(VENV)/.installed-$(if $(GPU),gpu,cpu)

# Tests and the demo never touch the network; the library itself never forces this on a user.
OFFLINE := YOLO_OFFLINE=1 YOLO_AUTOINSTALL=0 YOLO_CONFIG_DIR=$(CURDIR)/.ultralytics \
	NO_ALBUMENTATIONS_UPDATE=1 HF_HUB_OFFLINE=1

PHANTOM ?= data/phantom
PREPARED ?= data/prepared
DEMO_IMAGES ?= 300
CONFIG_DIR ?= configs/ensemble
SPLIT ?= test
FOLDS ?= 5
MEMBER ?= $(CONFIG_DIR)/resnet50.yaml
SPACE ?= configs/tune/space.yaml
TRIALS ?= 30
YOLO_CONFIG := $(or $(CONFIG),configs/yolo_spine.yaml)
YOLO_WEIGHTS ?= runs/yolo_spine/train/weights/best.pt
DETECTOR_CONFIG := $(or $(CONFIG),configs/detectors/faster_rcnn_r50_fpn.yaml)
DETECTOR_CKPT ?= runs/detectors/$(basename $(notdir $(DETECTOR_CONFIG)))/checkpoints/best.ckpt
ENSEMBLE_JSON ?= runs/ensemble/ensemble.json
EXPORT ?= export
DEMO_INPUTS ?= data/demo_inputs

.PHONY: help install test test-slow lint demo demo-data demo-spread phantom prepare-data train-ensemble fit-ensemble cv-ensemble tune \
	evaluate-ensemble train-yolo evaluate-yolo train-detector evaluate-detector export-detector compare-detectors demo-detectors export-onnx evaluate gate explain serve node batch bench docs docs-serve docs-assets clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv and install the project with extras dev,cpu (GPU=1: dev,gpu); idempotent

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# onnxruntime and onnxruntime-gpu share one folder: never both
	@$(PY) -m pip uninstall -y -q $(if $(GPU),onnxruntime,onnxruntime-gpu) 2>/dev/null || true
	$(PY) -m pip install -q -e '.[$(EXTRAS)]' 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
	@rm -f $(VENV)/.installed-*
	@touch $@

test: install ## run the fast test suite (no network)
	$(OFFLINE) $(PY) -m pytest -q

test-slow: install ## run the slow tests (@pytest.mark.slow)
	@$(OFFLINE) $(PY) -m pytest -q -m slow; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no slow tests collected"; exit 0; fi; exit $$rc

lint: install ## ruff
	$(PY) -m ruff check dernet yolo_spine tests benchmarks docs

docs: install ## build the documentation site into site/ (mkdocs build --strict: a broken link or reference fails)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet
	@echo "documentation: site/index.html (open it from the disk: pages, pictures and search need no server or network)"

docs-assets: install ## the docs' pictures from this project's outputs (after make demo, make test, make demo-detectors) into docs/assets/
	$(OFFLINE) $(PY) docs/make_assets.py

docs-serve: install ## serve the documentation at http://127.0.0.1:8000, rebuilt on every change
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --strict

phantom: install ## write a phantom dataset in the release layout to $(PHANTOM)
	$(OFFLINE) $(PY) -m dernet.datasets synth --out $(PHANTOM) --images $(DEMO_IMAGES) --long-side 512 --seed 0 --quiet

prepare-data: install ## prepare a release: make prepare-data SOURCE=path/to/vindr-spinexr [OUT=data/prepared]
	@test -n "$(SOURCE)" || { echo "usage: make prepare-data SOURCE=path/to/release [OUT=$(PREPARED)]"; exit 2; }
	$(PY) -m dernet.datasets prepare --source $(SOURCE) --out $(or $(OUT),$(PREPARED))

train-ensemble: install ## train the three members from $(CONFIG_DIR), then voting weights + threshold on validation
	$(PY) -m dernet train-ensemble --config-dir $(CONFIG_DIR)

fit-ensemble: install ## re-choose voting weights and threshold on validation ($(CONFIG_DIR)/ensemble.yaml)
	$(PY) -m dernet fit-ensemble --config $(CONFIG_DIR)/ensemble.yaml

cv-ensemble: install ## K-fold cross-validation of each member: make cv-ensemble FOLDS=5 [CONFIG_DIR=...]
	@for member in densenet121 tf_efficientnetv2_s resnet50; do \
		$(PY) -m dernet cv --folds $(FOLDS) --config $(CONFIG_DIR)/$$member.yaml || exit $$?; done

tune: install ## Optuna search of one member: make tune MEMBER=configs/ensemble/resnet50.yaml [SPACE=... TRIALS=30 ARGS=...]
	$(PY) -m dernet tune --config $(MEMBER) --space $(SPACE) --trials $(TRIALS) $(ARGS)

evaluate-ensemble: install ## members + ensemble metrics with 95% CIs and ROC on SPLIT (default test)
	$(PY) -m dernet evaluate-ensemble --config $(CONFIG_DIR)/ensemble.yaml --split $(SPLIT)

train-yolo: install ## train the lesion detector from $(YOLO_CONFIG) (CONFIG=... overrides; key=value in ARGS=...)
	$(PY) -m yolo_spine.train --config $(YOLO_CONFIG) $(ARGS)

evaluate-yolo: install ## detector AP@0.5 per class + mAP on SPLIT (default test) for YOLO_WEIGHTS
	$(PY) -m yolo_spine.evaluate --weights $(YOLO_WEIGHTS) --data $(PREPARED) --split $(SPLIT)

train-detector: install ## a torchvision detector: make train-detector CONFIG=configs/detectors/retinanet_r50_fpn.yaml [ARGS=...]
	$(PY) -m dernet.detectors fit --config $(DETECTOR_CONFIG) $(ARGS)
evaluate-detector: install ## its AP@0.5 per class + mAP on SPLIT (CONFIG= names the run, or DETECTOR_CKPT=path)
	$(PY) -m dernet.detectors.evaluate --checkpoint $(DETECTOR_CKPT) --data $(PREPARED) --split $(SPLIT)
export-detector: install ## it to verified ONNX as $(EXPORT)'s detector (CONFIG= names the run, or DETECTOR_CKPT=path)
	$(PY) -m dernet.detectors.export --checkpoint $(DETECTOR_CKPT) --data $(PREPARED) --models $(EXPORT)
compare-detectors: install ## one table on SPLIT: YOLO11, each of DETECTORS (best.ckpt files), their WBF, the best's gate modes
	$(PY) -m dernet.detectors.compare --yolo $(YOLO_WEIGHTS) --detectors $(or $(DETECTORS),$(wildcard \
		runs/detectors/*/checkpoints/best.ckpt)) --data $(PREPARED) --split $(SPLIT) --out $(or $(OUT),runs/compare) \
		$(if $(wildcard $(EXPORT)/manifest.json),--models $(EXPORT))
export-onnx: install ## export/dernet.onnx + yolo_spine.onnx + manifest.json (verified); QUANTIZE="int8 openvino-bf16"
	$(PY) -m dernet.export --ensemble $(ENSEMBLE_JSON) --weights $(YOLO_WEIGHTS) --data $(PREPARED) \
		--models $(EXPORT) $(if $(QUANTIZE),--quantize $(QUANTIZE))

evaluate: install ## classification + per-class AP for each gate mode, from the exported models on SPLIT (default test)
	$(PY) -m dernet.evaluation --models $(EXPORT) --data $(PREPARED) --split $(SPLIT)

gate: install ## screen files or folders with the exported models: make gate INPUT=path [ARGS="--mode fusion"]
	@test -n "$(INPUT)" || { echo "usage: make gate INPUT=file-or-folder [ARGS=...]"; exit 2; }
	$(PY) -m dernet.gate $(INPUT) --models $(EXPORT) $(ARGS)

explain: install ## Grad-CAM heatmaps per member + ensemble: make explain INPUT=path [ARGS="--method gradcam++"]
	@test -n "$(INPUT)" || { echo "usage: make explain INPUT=file-or-folder [ENSEMBLE_JSON=...] [ARGS=...]"; exit 2; }
	$(PY) -m dernet.explain $(INPUT) --ensemble $(ENSEMBLE_JSON) $(ARGS)

serve: install ## the gate as a web page on http://127.0.0.1:8000/ (HOST=, PORT=, EXPORT=; EXPLAIN=1: heatmap toggle)
	$(PY) -m dernet.web --host $(or $(HOST),127.0.0.1) --port $(or $(PORT),8000) --models $(EXPORT) \
		$(if $(EXPLAIN),--ensemble $(ENSEMBLE_JSON))

$(CURDIR)/.ultralytics/Arial.ttf: | $(STAMP)
	@YOLO_CONFIG_DIR=$(CURDIR)/.ultralytics $(PY) -m yolo_spine.glue > /dev/null

demo-data: install ## the demo's phantom (data/phantom) and its prepared cache (data/prepared)
	$(OFFLINE) $(PY) -m dernet.datasets synth --out $(PHANTOM) --images $(DEMO_IMAGES) --long-side 512 --seed 0 --quiet
	$(OFFLINE) $(PY) -m dernet.datasets prepare --source $(PHANTOM) --out $(PREPARED) \
		--config configs/demo/data.yaml

demo: install $(CURDIR)/.ultralytics/Arial.ttf ## phantom -> prepare -> train both (CPU) -> export -> evaluate -> gate -> heatmaps
	@echo "Demo: models trained for minutes on synthetic phantom radiographs. NOT FOR CLINICAL USE."
	@$(MAKE) --no-print-directory demo-data
	$(OFFLINE) $(PY) -m dernet train-ensemble --config-dir configs/demo/ensemble \
		--trainer.enable_progress_bar $(if $(CI),false,true)
	$(OFFLINE) $(PY) -m yolo_spine.train --config configs/demo/yolo_spine.yaml
	$(OFFLINE) $(PY) -m dernet.export --ensemble $(ENSEMBLE_JSON) --weights $(YOLO_WEIGHTS) --data $(PREPARED) \
		--models $(EXPORT)
	$(OFFLINE) $(PY) -m dernet.evaluation --models $(EXPORT) --data $(PREPARED) --split test
	@rm -rf $(DEMO_INPUTS) runs/gate runs/explain
	$(OFFLINE) $(PY) -m dernet.datasets samples --source $(PHANTOM) --out $(DEMO_INPUTS)
	$(OFFLINE) $(PY) -m dernet.gate $(DEMO_INPUTS) --models $(EXPORT) --out runs/gate --dicom
	$(OFFLINE) $(PY) -m dernet.explain $(DEMO_INPUTS)/abnormal --ensemble $(ENSEMBLE_JSON) --out runs/explain
	@echo ""
	@echo "Demo outputs (synthetic data, not for clinical use):"
	@echo "  phantom release:   $(PHANTOM)/ (annotations/*.csv, train_images/, test_images/, summary.json)"
	@echo "  prepared dataset:  $(PREPARED)/ (images/, labels/, data.yaml, classification.csv, summary.json)"
	@echo "  ensemble runs:     runs/ensemble/<member>/ (config.yaml, metrics.csv, checkpoints/best.ckpt), ensemble.json"
	@echo "  detector run:      runs/yolo_spine/train/ (weights/best.pt)"
	@echo "  exported models:   $(EXPORT)/ (dernet.onnx, yolo_spine.onnx, manifest.json)"
	@echo "  evaluation:        runs/evaluation/ (evaluation_test.{md,json}, roc_test.png, pr_test.png, confusion_test.png)"
	@echo "  gate reports:      runs/gate/{abnormal,normal}/ (<input>.json, <input>.overlay.png), summary.csv"
	@echo "  DICOM results:     runs/gate/{abnormal,normal}/ (<input>.sr.dcm, .sc.dcm, .pr.dcm: for a PACS, with patient data)"
	@echo "  heatmaps:          runs/explain/ (<input>.explain.png: Grad-CAM per member + ensemble; <input>.heatmap.png)"

demo-spread: install $(CURDIR)/.ultralytics/Arial.ttf ## the demo's training over 3 seeds x 1/2 threads: runs/demo_spread/spread.md (~2 h on 2 cores)
	@test -f $(PREPARED)/classification.csv || $(MAKE) --no-print-directory demo-data
	$(OFFLINE) $(PY) -m benchmarks.demo_spread --out runs/demo_spread $(ARGS)

DEMO_DETECTORS := faster_rcnn_r18_fpn retinanet_r18_fpn
demo-detectors: install ## after make demo: Faster R-CNN + RetinaNet (CPU), the comparison with YOLO11, WBF, gate modes
	@test -f $(YOLO_WEIGHTS) -a -f $(EXPORT)/manifest.json || { echo "make demo-detectors: $(YOLO_WEIGHTS) or \
		$(EXPORT)/manifest.json is missing; run make demo first"; exit 2; }
	@echo "Demo detectors: trained for minutes on synthetic phantom radiographs. NOT FOR CLINICAL USE."
	@for name in $(DEMO_DETECTORS); do echo "== training $$name (configs/demo/detectors/$$name.yaml)"; \
		$(OFFLINE) $(PY) -m dernet.detectors fit --config configs/demo/detectors/$$name.yaml \
			--trainer.enable_progress_bar $(if $(CI),false,true) || exit $$?; done
	$(OFFLINE) $(PY) -m dernet.detectors.compare --yolo $(YOLO_WEIGHTS) --data $(PREPARED) --split test \
		--out runs/compare --models $(EXPORT) \
		--detectors $(foreach n,$(DEMO_DETECTORS),runs/detectors/$(n)/checkpoints/best.ckpt)
	@echo ""
	@echo "Demo detector outputs (synthetic data, not for clinical use):"
	@echo "  runs:              runs/detectors/<name>/ (config.yaml, metrics.csv, checkpoints/best.ckpt)"
	@echo "  comparison:        runs/compare/comparison_test.{md,json} (YOLO11, Faster R-CNN, RetinaNet, WBF; the best"
	@echo "                     one's AP in the gate's three modes)"

node: install ## a DICOM node on port 11112 (AE SPINECAD): make node [ARGS="--forward PACS@host:104 --config configs/node.yaml"]
	$(PY) -m dernet.node --models $(EXPORT) $(ARGS)

batch: install ## screen an archive on Ray Data to Parquet: make batch INPUT=folder-or-list [OUT=runs/batch] [ARGS=...]
	@test -n "$(INPUT)" || { echo "usage: make batch INPUT=files-folders-or-lists [OUT=runs/batch] [ARGS=...]"; exit 2; }
	$(PY) -m dernet.batch $(INPUT) --models $(EXPORT) --out $(or $(OUT),runs/batch) $(ARGS)

bench: install ## speed beside the naive path (after make demo): runs/bench/latest.json + a Markdown table (<15 min)
	$(OFFLINE) $(PY) -m benchmarks --out runs/bench

clean: ## remove caches (keeps .venv, data/, runs/ and export/)
	rm -rf .pytest_cache .ruff_cache .ultralytics
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +
