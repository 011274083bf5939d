"""The transcription service (``w2vbert-asr serve``): OpenAI's audio
transcription API, an alignment extension and a web page over one model.

:mod:`speechbrain_w2vbert.serve.app` (routes, safeguards, the uvicorn
runner), :mod:`speechbrain_w2vbert.serve.batching` (the model's worker
thread and its bounded queue: requests batched across clients),
:mod:`speechbrain_w2vbert.serve.backends` (what runs the model),
:mod:`speechbrain_w2vbert.serve.forms` (streamed multipart uploads),
:mod:`speechbrain_w2vbert.serve.responses` (the response formats),
:mod:`speechbrain_w2vbert.serve.errors` (OpenAI's error shape); the page is
``static/index.html``. Needs the ``serve`` extra (FastAPI, uvicorn,
python-multipart); see docs/service.md.
"""
