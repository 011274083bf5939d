"""The transcription service: OpenAI's audio transcription API for this
package's CTC models, an alignment extension, a web page, and the
safeguards a service needs, as one FastAPI application.

Routes
------
``POST /v1/audio/transcriptions``
    OpenAI's form: ``file``, ``model`` (required, any name: the service
    serves one model), ``language`` (accepted; the model's language is
    fixed), ``prompt`` (hotwords, see below), ``response_format`` (``json``,
    ``text``, ``srt``, ``vtt``, ``verbose_json``),
    ``timestamp_granularities[]`` (``word``, ``segment``; with
    ``verbose_json``), ``temperature`` (accepted, ignored: decoding is
    deterministic), ``keywords[]`` (hotwords), and ``stream``,
    ``include[]``, ``chunking_strategy``, ``languages[]`` (accepted;
    streaming is refused). Bodies: :mod:`speechbrain_w2vbert.serve.responses`.
``POST /v1/audio/alignments``
    This service's extension: ``file`` and its transcript ``text``; word and
    character times as ``w2vbert-asr align`` gives them (``response_format``
    ``json``, ``srt``, ``vtt``, ``textgrid``).
``GET /v1/models``, ``GET /v1/models/{id}``
    The model served (OpenAI's model list).
``GET /health``
    Liveness: the process answers.
``GET /ready``
    Readiness: the model has run once and the queue has room (503 if not).
``GET /``
    The web page (no external assets).

Hotwords: with a model folder that decodes with a word LM, the request's
``keywords[]`` and the comma-, semicolon-, danda- or line-separated
phrases of ``prompt`` are favoured by the beam search (normalised as
transcripts are); a greedy model refuses ``keywords`` and ignores
``prompt``.

Safeguards: the ``/v1`` routes need ``Authorization: Bearer KEY`` when the
service has an API key (401); an upload over ``max_upload_mb`` (checked as
it streams in) or a recording over ``max_audio_seconds`` (checked before
decoding) is refused with 413; a file that cannot be read, is empty or
holds samples that are not finite numbers with 400; a full queue with 503;
a request over ``timeout`` seconds with 504. Each upload is written into a
folder of its own inside the service's private temporary folder (mode
0700) and removed when its request ends; the service writes nothing else.
Errors are in OpenAI's shape (:mod:`speechbrain_w2vbert.serve.errors`).

Authors: speechbrain-w2vbert contributors
"""

import asyncio
import contextlib
import hmac
import importlib.resources
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import List, Optional

from speechbrain_w2vbert.audio import AudioError
from speechbrain_w2vbert.inference.alignment import AlignmentError
from speechbrain_w2vbert.inference.results import Transcript
from speechbrain_w2vbert.serve.backends import BACKEND_MEMBERS
from speechbrain_w2vbert.serve.batching import Batcher, QueueFull
from speechbrain_w2vbert.serve.errors import APIError
from speechbrain_w2vbert.serve.forms import Form, read_form
from speechbrain_w2vbert.serve.responses import (ALIGNMENT_FORMATS, MEDIA_TYPES, TRANSCRIPTION_FORMATS,
                                                 alignment_body, transcription_body)
from speechbrain_w2vbert.text.normalize import normalize_nepali

__all__ = ["ServiceSettings", "create_app", "prompt_hotwords", "check_audio_file"]

logger = logging.getLogger(__name__)

#: Fields of OpenAI's transcription form that are accepted (some ignored).
TRANSCRIPTION_FIELDS = ("file", "model", "language", "prompt", "response_format", "timestamp_granularities",
                        "temperature", "keywords", "stream", "include", "chunking_strategy", "languages")
ALIGNMENT_FIELDS = ("file", "text", "model", "response_format", "language")
#: Decoded samples (all channels) at most: the longest recording allowed, in 48 kHz stereo.
_DECODED_RATE = 48000 * 2


@dataclass
class ServiceSettings:
    """What the service allows and how it batches.

    Arguments
    ---------
    model_id : str
        The model's name in ``/v1/models`` and ``verbose_json``.
    language : str
        The model's language, as ``verbose_json`` names it (``nepali``).
    api_key : str, optional
        The Bearer key the ``/v1`` routes need (None: no key).
    max_upload_mb : float
        Megabytes (10^6 bytes) of one upload at most (OpenAI's limit: 25).
    max_audio_seconds : float
        Seconds of one recording at most; its decoded samples (all
        channels) at most that long in 48 kHz stereo.
    max_batch : int
        Requests per model call at most.
    max_wait_ms : float
        Milliseconds the worker waits for more requests to batch.
    max_queue : int
        Requests waiting for the model at most (then 503).
    timeout : float
        Seconds a request may take, upload to answer (then 504).
    temp_dir : str, optional
        Where the service makes its private temporary folder (default: the
        system's temporary folder).
    """

    model_id: str = "w2vbert-asr"
    language: str = "nepali"
    api_key: Optional[str] = None
    max_upload_mb: float = 25.0
    max_audio_seconds: float = 1800.0
    max_batch: int = 16
    max_wait_ms: float = 5.0
    max_queue: int = 64
    timeout: float = 300.0
    temp_dir: Optional[str] = None

    @property
    def max_upload_bytes(self) -> int:
        """Bytes of one upload at most."""
        return int(self.max_upload_mb * 1e6)


def prompt_hotwords(prompt: Optional[str]) -> List[str]:
    """The hotwords of a ``prompt``: its phrases separated by commas,
    semicolons, dandas or lines, normalised as transcripts are.

    Example
    -------
    >>> prompt_hotwords("काठमाडौं, पोखरा।  नेपाल\\n")
    ['काठमाडौं', 'पोखरा', 'नेपाल']
    """
    phrases = re.split(r"[,;\n\u0964\u0965]", prompt or "")
    return [p for p in (normalize_nepali(phrase) for phrase in phrases) if p]


def check_audio_file(path: str, name: str, max_seconds: float) -> float:
    """Checks an uploaded file before it is decoded; returns its duration.

    Raises
    ------
    APIError
        400: empty or not audio libsndfile reads; 413: longer than
        ``max_seconds``, or more samples than that in 48 kHz stereo.
    """
    import soundfile

    if os.path.getsize(path) == 0:
        raise APIError(400, f"file '{name}': empty upload (0 bytes)", param="file", code="empty_file")
    try:
        info = soundfile.info(path)
    except Exception as error:  # libsndfile's errors are of several types
        reason = str(error).replace(f"'{path}': ", "").replace(path, name)
        raise APIError(400, f"file '{name}': not audio this service can read ({reason}); send WAV, FLAC, OGG/Opus "
                            "or MP3", param="file", code="invalid_audio") from None
    duration = info.frames / info.samplerate if info.samplerate else 0.0
    if duration > max_seconds:
        raise APIError(413, f"file '{name}': {duration:.1f} s of audio, at most {max_seconds:g} s", param="file",
                       code="audio_too_long")
    if info.frames * info.channels > max_seconds * _DECODED_RATE:
        raise APIError(413, f"file '{name}': {info.channels} channels at {info.samplerate} Hz for {duration:.1f} s "
                            f"decode to more samples than {max_seconds:g} s of 48 kHz stereo", param="file",
                       code="audio_too_long")
    return duration


def _check_fields(form: Form, allowed) -> None:
    unknown = sorted(set(form.names()) - set(allowed))
    if unknown:
        raise APIError(400, f"unknown form field(s): {', '.join(unknown)} (this route takes {', '.join(allowed)})",
                       param=unknown[0], code="unknown_parameter")


def _choice(form: Form, name: str, choices, default: str) -> str:
    value = form.value(name) or default
    if value not in choices:
        raise APIError(400, f"{name}: '{value}' is not one of {', '.join(choices)}", param=name)
    return value


def create_app(backend, settings: Optional[ServiceSettings] = None):
    """The FastAPI application serving ``backend``.

    Arguments
    ---------
    backend : Backend
        What runs the model (:mod:`speechbrain_w2vbert.serve.backends`).
    settings : ServiceSettings, optional
        Limits, batching, API key (default: :class:`ServiceSettings` ()).

    Returns
    -------
    fastapi.FastAPI
        Its ``state`` holds ``batcher`` (the worker and its queue) and
        ``private_dir`` while it runs.

    Raises
    ------
    TypeError
        ``backend`` lacks a member of the :class:`Backend` protocol (named).
    """
    missing = [member for member in BACKEND_MEMBERS if not hasattr(backend, member)]
    if missing:
        raise TypeError(f"{type(backend).__name__} is not a serve backend: it lacks {', '.join(missing)} "
                        "(see speechbrain_w2vbert.serve.backends.Backend)")
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect

    settings = settings or ServiceSettings()
    created = int(time.time())

    @contextlib.asynccontextmanager
    async def lifespan(app):
        """The private folder and the model's worker, for the life of the app."""
        private = tempfile.mkdtemp(prefix="w2vbert-serve-", dir=settings.temp_dir)  # mode 0700
        batcher = Batcher(backend, settings.max_batch, settings.max_wait_ms, settings.max_queue)
        app.state.private_dir, app.state.batcher = private, batcher
        try:
            batcher.start(warmup=await asyncio.to_thread(_warmup_waveform, backend, private))
            yield
        finally:
            batcher.stop()
            shutil.rmtree(private, ignore_errors=True)

    app = FastAPI(title="w2vbert-asr", summary="Speech recognition with a w2v-BERT 2.0 CTC model",
                  lifespan=lifespan)

    # ------------------------------------------------------------ errors
    @app.exception_handler(APIError)
    async def api_error(request, error: APIError):
        """An :class:`APIError` as its JSON body and status."""
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request, error: HTTPException):
        """Unknown routes and methods, in OpenAI's shape."""
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code)
        message = f"{request.method} {request.url.path}: {error.detail}"
        return await api_error(request, APIError(error.status_code, message, code=code))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, error: RequestValidationError):
        """FastAPI's validation errors, in OpenAI's shape."""
        return await api_error(request, APIError(400, f"invalid request: {error.errors()}"))

    @app.exception_handler(Exception)
    async def server_error(request, error: Exception):
        """Anything unexpected: logged, and a 500 in OpenAI's shape."""
        logger.exception("%s %s failed", request.method, request.url.path)
        return await api_error(request, APIError(500, f"internal error ({type(error).__name__}: {error})"))

    def authorize(request: Request) -> None:
        """Raises 401 unless the request carries the API key (when there is one)."""
        if settings.api_key is None:
            return
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key:
            raise APIError(401, "missing API key: send it as the header Authorization: Bearer KEY",
                           code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(key.strip().encode(), settings.api_key.encode()):
            raise APIError(401, "incorrect API key", code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})

    # ------------------------------------------------------------ requests
    @contextlib.asynccontextmanager
    async def upload(request: Request, allowed):
        """The request's form, its file written into a folder of its own (removed after)."""
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > settings.max_upload_bytes + 2**20:
            raise APIError(413, f"request of {int(length) / 1e6:.1f} MB, uploads at most {settings.max_upload_mb:g} MB",
                           param="file", code="file_too_large")
        folder = tempfile.mkdtemp(prefix="request-", dir=request.app.state.private_dir)
        try:
            try:
                form = await read_form(request.stream(), request.headers.get("content-type"), folder,
                                       settings.max_upload_bytes)
            except ClientDisconnect:
                raise APIError(400, "the client disconnected during the upload") from None
            _check_fields(form, allowed)
            if form.file("file") is None:
                sent = "as a text field, not a file" if form.values("file") else "missing"
                raise APIError(400, f"file: {sent}: send the audio as the multipart file field 'file'", param="file",
                               code="missing_file")
            yield form
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    async def waveform(form: Form):
        """The uploaded file decoded at the model's rate (400/413 if it cannot be)."""
        upload = form.file("file")
        await asyncio.to_thread(check_audio_file, upload.path, upload.filename, settings.max_audio_seconds)
        try:
            wav = await asyncio.to_thread(backend.read, upload.path)
        except AudioError as error:
            reason = str(error).replace(f"'{upload.path}': ", "").replace(upload.path, upload.filename)
            raise APIError(400, f"file '{upload.filename}': {reason}", param="file", code="invalid_audio") from None
        return wav

    async def model_run(coroutine):
        """Awaits a batcher job; a full queue is a 503."""
        try:
            return await coroutine
        except QueueFull as error:
            raise APIError(503, f"the service is busy: {error}; retry later", code="queue_full",
                           headers={"Retry-After": "1"}) from None

    async def limited(handler, request: Request):
        """Runs a handler within the time limit (504 after it)."""
        try:
            return await asyncio.wait_for(handler(request), settings.timeout)
        except asyncio.TimeoutError:
            raise APIError(504, f"{request.url.path}: no answer within the service's limit of {settings.timeout:g} s",
                           code="timeout") from None

    async def transcribe(request: Request):
        """The transcription route's work (see the module doc)."""
        async with upload(request, TRANSCRIPTION_FIELDS) as form:
            if not form.value("model"):
                raise APIError(400, "model: missing (any name is accepted; GET /v1/models names this one)",
                               param="model", code="missing_model")
            fmt = form.value("response_format") or "json"
            if fmt not in TRANSCRIPTION_FORMATS:
                raise APIError(400, f"response_format: '{fmt}' is not one of {', '.join(TRANSCRIPTION_FORMATS)}",
                               param="response_format")
            granularities = form.values("timestamp_granularities")
            wrong = [g for g in granularities if g not in ("word", "segment")]
            if wrong:
                raise APIError(400, f"timestamp_granularities: '{wrong[0]}' is not word or segment",
                               param="timestamp_granularities")
            if granularities and fmt != "verbose_json":
                raise APIError(400, "timestamp_granularities needs response_format verbose_json",
                               param="timestamp_granularities")
            temperature = form.value("temperature")
            if temperature is not None:
                try:
                    float(temperature)
                except ValueError:
                    raise APIError(400, f"temperature: '{temperature}' is not a number", param="temperature") from None
            if (form.value("stream") or "false").lower() not in ("false", "0"):
                raise APIError(400, "stream: streaming is not supported; leave it out", param="stream")
            hotwords = [h for k in form.values("keywords") if (h := normalize_nepali(k))]
            uses_lm = backend.uses_lm
            if hotwords and not uses_lm:
                raise APIError(400, "keywords: hotwords need a model that decodes with a word LM (lm.ckpt); this one "
                                    "decodes greedily", param="keywords")
            if uses_lm:
                hotwords += prompt_hotwords(form.value("prompt"))
            wav = await waveform(form)
            result = await model_run(request.app.state.batcher.transcribe(wav, hotwords))
            if isinstance(result, AudioError):  # no speech: an empty transcript
                result = Transcript("", round(len(wav) / backend.sample_rate, 3), [])
            body = transcription_body(result, fmt, settings.language, granularities)
            if isinstance(body, dict):
                return JSONResponse(body)
            return Response(body, media_type=MEDIA_TYPES[fmt])

    async def align(request: Request):
        """The alignment route's work (see the module doc)."""
        async with upload(request, ALIGNMENT_FIELDS) as form:
            if not backend.aligns:
                raise APIError(501, f"the {backend.name} backend cannot align transcripts: serve with --backend torch",
                               code="unsupported")
            text = form.value("text")
            if not text or not text.strip():
                raise APIError(400, "text: missing: send the transcript to align as the field 'text'", param="text")
            fmt = _choice(form, "response_format", ALIGNMENT_FORMATS, "json")
            wav = await waveform(form)
            try:
                alignment = await model_run(request.app.state.batcher.align(wav, text))
            except AlignmentError as error:
                raise APIError(400, f"text: {error}", param="text", code="alignment_failed") from None
            except AudioError as error:
                raise APIError(400, f"file '{form.file('file').filename}': {error}", param="file") from None
            body = alignment_body(alignment, fmt)
            if isinstance(body, dict):
                return JSONResponse(body)
            return Response(body, media_type=MEDIA_TYPES[fmt])

    # ------------------------------------------------------------ routes
    @app.post("/v1/audio/transcriptions", summary="Transcribe audio (OpenAI's API)")
    async def transcriptions(request: Request):
        """OpenAI's transcription form: ``file``, ``model``, ``response_format``, ``timestamp_granularities[]``,
        ``prompt`` / ``keywords[]`` (hotwords), ``language`` and ``temperature`` (accepted)."""
        authorize(request)
        return await limited(transcribe, request)

    @app.post("/v1/audio/alignments", summary="Align a known transcript to its audio")
    async def alignments(request: Request):
        """``file`` and its transcript ``text``: word and character times (``response_format`` json, srt, vtt,
        textgrid)."""
        authorize(request)
        return await limited(align, request)

    def model_card():
        """The model as OpenAI's model object."""
        return {"id": settings.model_id, "object": "model", "created": created, "owned_by": "speechbrain-w2vbert"}

    @app.get("/v1/models", summary="The model served")
    async def models(request: Request):
        """The models served (one)."""
        authorize(request)
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model:path}", summary="One model")
    async def model(request: Request, model: str):
        """The model served, by its id (404 for another)."""
        authorize(request)
        if model != settings.model_id:
            raise APIError(404, f"model '{model}' is not served here (this service serves '{settings.model_id}')",
                           param="model", code="model_not_found")
        return model_card()

    @app.get("/health", summary="Liveness")
    async def health():
        """Liveness: 200 while the process answers."""
        return {"status": "ok"}

    @app.get("/ready", summary="Readiness")
    async def ready(request: Request):
        """Readiness: 200 once the model has run and while the queue has room, else 503; counts."""
        batcher = request.app.state.batcher
        if not (batcher.alive and batcher.ready.is_set()):
            raise APIError(503, "not ready: the model is warming up", code="not_ready")
        if batcher.queued >= batcher.max_queue:
            raise APIError(503, f"not ready: the queue is full ({batcher.queued} requests)", code="queue_full")
        return {"status": "ready", "queued": batcher.queued, "max_queue": batcher.max_queue, **batcher.totals}

    page = importlib.resources.files("speechbrain_w2vbert.serve").joinpath("static/index.html").read_text("utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        """The web page."""
        return HTMLResponse(page, headers={"Content-Security-Policy": (
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; media-src 'self' blob:; "
            "connect-src 'self'; img-src 'self' data:")})

    return app


def _warmup_waveform(backend, folder: str):
    """A second of near-silence read by the backend (its own waveform type)."""
    import numpy as np
    import soundfile

    path = os.path.join(folder, "warmup.wav")
    noise = np.random.default_rng(0).standard_normal(backend.sample_rate).astype("float32") * 1e-3
    soundfile.write(path, noise, backend.sample_rate)
    try:
        return backend.read(path)
    finally:
        os.remove(path)


def run_server(app, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
               announce=None) -> None:
    """Serves ``app`` with uvicorn until interrupted.

    Arguments
    ---------
    app : fastapi.FastAPI
        What :func:`create_app` made.
    host, port : str, int
        Where to listen (port 0: any free port).
    log_level : str
        uvicorn's log level.
    announce : callable, optional
        Called with the URL once the socket is bound (before the model's
        warm-up: poll ``/ready``).
    """
    import socket

    import uvicorn

    sock = listening_socket(host, port)
    config = uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=5)
    if announce is not None:
        bound = sock.getsockname()[1]
        announce(f"http://{f'[{host}]' if sock.family == socket.AF_INET6 else host}:{bound}")
    uvicorn.Server(config).run(sockets=[sock])


def listening_socket(host: str, port: int):
    """A TCP socket bound to ``host``:``port`` (0: any free port), for the
    server to listen on.

    It names its protocol (``IPPROTO_TCP``): asyncio turns Nagle's algorithm
    off (``TCP_NODELAY``) only on connections of such sockets, and with it on,
    each answer on a kept-alive connection waits for the client's delayed
    acknowledgement (40 ms on Linux).

    Raises
    ------
    OSError
        The address is taken, or not this machine's.
    """
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
