#!/usr/bin/env bash
# Create or reuse the project's virtualenv at .venv and install what d2_instseg needs.
# Each step leaves a stamp file, so re-running installs nothing that is already there.
#
#   D2_SOURCE=mirror   (default) Detectron2 from the registry package `sal-detectron2` (pure Python, no _C)
#   D2_SOURCE=none     keep whatever `detectron2` the venv already imports (e.g. upstream built from source)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
VENV=.venv
STAMPS=$VENV/.stamps
D2_SOURCE=${D2_SOURCE:-mirror}

[ -x $VENV/bin/python ] || "$PY" -m venv $VENV
mkdir -p $STAMPS
PIP="$VENV/bin/python -m pip install --disable-pip-version-check -q"
# Every other package at the version of tools/constraints.txt (the venv the README's figures came from)
CONSTRAINTS=tools/constraints.txt
PINNED="$PIP -c $CONSTRAINTS"
PINS=$(md5sum < $CONSTRAINTS | cut -c1-8)

step() {  # step NAME CMD...: run CMD once, remembered by a stamp
  local name=$1; shift
  if [ ! -f "$STAMPS/$name" ]; then
    echo "[setup] $name ..."
    "$@"
    touch "$STAMPS/$name"
  fi
}

step "torch-$PINS" $PINNED torch==2.14.1 torchvision==0.29.1
if [ "$D2_SOURCE" = mirror ]; then
  D2_DIR=$VENV/detectron2-mirror
  SITE=$($VENV/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  install_mirror() {
    # The wheel is tagged cp310 only; its pure-Python code runs on 3.11. A dedicated folder keeps its
    # top-level `tools` package from shadowing ours.
    $PIP --no-deps --only-binary=:all: --python-version 3.10 --target "$D2_DIR" sal-detectron2==0.7.2
    rm -rf "$D2_DIR/tools" "$D2_DIR"/detectron2/_C*.so
    echo "$(cd "$D2_DIR" && pwd)" > "$SITE/detectron2-mirror.pth"
  }
  step detectron2-mirror install_mirror
fi
# shapely: fvcore's crop of COCO polygons and Detectron2's Cityscapes loader; cityscapesscripts: the
# Cityscapes loader's labels and evaluators (run under NumPy 2 by d2_instseg.evaluation.cityscapes);
# faster-coco-eval: the C++ COCOeval behind the COCO evaluator (same figures as pycocotools);
# onnx, onnxruntime, onnxscript: model export (tools/export_model.py) and the TEST.BACKEND runtimes;
# torchao: PyTorch's PT2E int8 quantiser for x86 (--format pt2 --quantize int8, TEST.BACKEND inductor);
# tifffile: 16-bit label images from tools/predict.py; fastapi ... psutil: the web app (tools/serve.py) and its tests (selenium drives Debian's chromium).
DEPS=(fvcore iopath pycocotools omegaconf hydra-core yacs termcolor tabulate cloudpickle tqdm tensorboard
  matplotlib Pillow packaging "setuptools<82" opencv-python-headless pytest hypothesis scipy pydensecrf2
  shapely cityscapesscripts faster-coco-eval "ruff==0.17.6" onnx onnxruntime onnxscript torchao tifffile
  fastapi uvicorn python-multipart httpx swagger-ui-bundle selenium psutil)
# The stamp names the checksums of the list and of the pins: adding a package to DEPS or moving a pin
# installs on the next run.
step "deps-$(echo "${DEPS[*]}" | md5sum | cut -c1-8)-$PINS" $PINNED "${DEPS[@]}"
step package $PIP --no-build-isolation --no-deps -e .
