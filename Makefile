# The two commands of the README:
#   make demo   train + evaluate every method on the built-in shapes data, write overlays and plots
#   make test   run the test suite
#   make demo-irnet   the weakly supervised IRNet pipeline on shapes (image-level labels only)
#   make lint   ruff: lint, import order and formatting (run by .ci/run before the tests)
# Both create or reuse the virtualenv at .venv (tools/setup_venv.sh installs only what is missing).
PY := .venv/bin/python

.PHONY: venv demo demo-irnet test lint clean-venv

venv:
	@bash tools/setup_venv.sh

demo: venv
	$(PY) tools/main_job.py

demo-irnet: venv
	$(PY) tools/irnet_pipeline.py --config-file configs/shapes/irnet.yaml OUTPUT_DIR output/irnet

test: venv
	$(PY) -m pytest tests -q --durations=30

# ruff (settings in pyproject.toml): lint + import order, and the formatting at 100 columns
lint: venv
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

clean-venv:
	rm -rf .venv
