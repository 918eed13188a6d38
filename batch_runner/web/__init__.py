"""The service face (``batch_runner serve``): the HTTP API, seed 001's API, metrics and the
dashboard, on FastAPI and uvicorn, installed with the ``[web]`` extra. Nothing outside this
room imports it but the ``serve`` command."""
