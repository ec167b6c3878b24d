# The two commands of the README:
#   make demo   train + evaluate every method on the built-in shapes data, write overlays and plots
#   make test   run the test suite
# Both create or reuse the virtualenv at .venv (tools/setup_venv.sh installs only what is missing).
PY := .venv/bin/python

.PHONY: venv demo test clean-venv

venv:
	@bash tools/setup_venv.sh

demo: venv
	$(PY) tools/main_job.py

test: venv
	$(PY) -m pytest tests -q --durations=15

clean-venv:
	rm -rf .venv
