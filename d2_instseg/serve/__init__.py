"""A segmentation web app on ``d2_instseg.Predictor`` (``tools/serve.py``): a page and a JSON API
over the models of a ``models.yaml``. Needs FastAPI, uvicorn and python-multipart."""
