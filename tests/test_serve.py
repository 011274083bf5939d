"""The transcription service (``w2vbert-asr serve``).

In-process, over a stand-in backend whose model calls the test holds and
releases: batching across clients, the event loop answering while the
model runs, the bounded queue (503), the time limit (504), hotwords, the
API key and malformed forms. End to end, against the ``service`` fixture
(the real command serving the test model in its own process): the
official ``openai`` SDK with each response format (parsed by the SDK's own
types, compared with the Transcriber's own results), the alignment route,
each bad request followed by a good one, 200 bad requests against the
resident memory, and what the service leaves on disk.
"""

import concurrent.futures
import contextlib
import io
import json
import os
import threading
import time

import httpx
import numpy as np
import pytest
import soundfile as sf

from speechbrain_w2vbert.audio import AudioError
from speechbrain_w2vbert.inference.results import Segment, Transcript, Word
from tests.helpers import DATA_DIR, MODEL, cli, levenshtein

SPEECH = os.path.join(DATA_DIR, "ne_speech_a.flac")
SPEECH_B = os.path.join(DATA_DIR, "ne_speech_b.flac")


def audio_bytes(samples, rate=16000, fmt="WAV", subtype=None) -> bytes:
    """``samples`` ([T] or [T, C]) written as an audio file in memory."""
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


# ---------------------------------------------------------------- stand-in backend, in-process server
class HeldBackend:
    """Reads WAVs with soundfile; "transcribes" a waveform as ``n<samples>``;
    each model call waits until the test opens :attr:`gate`."""

    name = "held"
    sample_rate = 16000
    aligns = False

    def __init__(self, uses_lm=False):
        self.gate = threading.Event()
        self.gate.set()
        self.running = threading.Event()  # set while a call waits at the gate
        self.uses_lm = uses_lm
        self.hotword_sets = []

    def read(self, path):
        wav, _ = sf.read(path, dtype="float32")
        if len(wav) == 0:
            raise AudioError("empty: no audio samples")
        return wav

    def transcribe_waveforms(self, wavs, timestamps=False, sample_rate=None):
        self.running.set()
        assert self.gate.wait(60)
        self.running.clear()
        texts = [f"n{len(w)}" for w in wavs]
        return [Transcript(t, len(w) / 16000, [Segment(0.0, len(w) / 16000, t, [Word(t, 0.0, 0.1, 0.9)])])
                for t, w in zip(texts, wavs)]

    def with_hotwords(self, hotwords):
        self.hotword_sets.append(tuple(hotwords))
        return self

    def align_waveform(self, wav, transcript, sample_rate=None):
        raise NotImplementedError


@contextlib.contextmanager
def running(app):
    """``app`` served by uvicorn in a thread on a free port: its URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive()
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def held_service(backend=None, **settings):
    from speechbrain_w2vbert.serve.app import ServiceSettings, create_app

    backend = backend or HeldBackend()
    app = create_app(backend, ServiceSettings(model_id="held", **settings))
    return backend, app


def post(url, samples=1600, key=None, **fields):
    """POST a WAV of ``samples`` samples to the transcription route."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    files = {"file": ("a.wav", audio_bytes(np.zeros(samples, dtype="float32")), "audio/wav")}
    return httpx.post(url + "/v1/audio/transcriptions", data={"model": "m", **fields}, files=files, headers=headers,
                      timeout=60)


def wait_for(condition, what):
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


def test_requests_of_many_clients_are_batched_and_each_gets_its_own_result():
    backend, app = held_service(max_batch=4, max_wait_ms=0)
    with running(app) as url, concurrent.futures.ThreadPoolExecutor(8) as pool:
        batcher = app.state.batcher
        backend.gate.clear()
        first = pool.submit(post, url, 1000)
        wait_for(backend.running.is_set, "the first request reaches the model")
        others = [pool.submit(post, url, 2000 + i) for i in range(6)]
        wait_for(lambda: batcher.queued == 6, "six requests queue while the model runs")
        backend.gate.set()
        responses = [first.result()] + [f.result() for f in others]
    assert [r.status_code for r in responses] == [200] * 7
    assert [r.json()["text"] for r in responses] == ["n1000"] + [f"n{2000 + i}" for i in range(6)]
    assert batcher.calls == [1, 4, 2]  # the queued six in calls of at most max_batch


def test_the_batcher_waits_max_wait_ms_for_more_requests():
    backend, app = held_service(max_batch=3, max_wait_ms=5000)
    with running(app) as url, concurrent.futures.ThreadPoolExecutor(3) as pool:
        responses = list(pool.map(lambda n: post(url, n), [1000, 2000, 3000]))
    assert [r.json()["text"] for r in responses] == ["n1000", "n2000", "n3000"]
    assert app.state.batcher.calls == [3]  # one call: the batch filled before the wait ran out


def test_the_event_loop_answers_while_the_model_runs():
    backend, app = held_service()
    with running(app) as url, concurrent.futures.ThreadPoolExecutor(1) as pool:
        backend.gate.clear()
        pending = pool.submit(post, url)
        wait_for(backend.running.is_set, "the request reaches the model")
        assert httpx.get(url + "/health", timeout=10).json() == {"status": "ok"}
        assert httpx.get(url + "/ready", timeout=10).status_code == 200
        assert httpx.get(url + "/v1/models", timeout=10).json()["data"][0]["id"] == "held"
        assert not pending.done()  # the model was still busy while those were answered
        backend.gate.set()
        assert pending.result().status_code == 200


def test_a_full_queue_answers_503_and_the_service_goes_on():
    backend, app = held_service(max_queue=2, max_wait_ms=0, max_batch=1)
    with running(app) as url, concurrent.futures.ThreadPoolExecutor(4) as pool:
        backend.gate.clear()
        first = pool.submit(post, url)
        wait_for(backend.running.is_set, "the first request reaches the model")
        queued = [pool.submit(post, url) for _ in range(2)]
        wait_for(lambda: app.state.batcher.queued == 2, "two requests queue")
        refused = post(url)
        assert httpx.get(url + "/ready", timeout=10).status_code == 503  # a balancer should send work elsewhere
        backend.gate.set()
        assert [f.result().status_code for f in [first] + queued] == [200] * 3
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    error = refused.json()["error"]
    assert error["code"] == "queue_full" and error["type"] == "server_error" and "busy" in error["message"]


def test_a_request_over_the_time_limit_answers_504_and_is_not_run():
    backend, app = held_service(timeout=0.5, max_wait_ms=0, max_batch=1)
    with running(app) as url, concurrent.futures.ThreadPoolExecutor(2) as pool:
        backend.gate.clear()
        slow = pool.submit(post, url, 1000)
        wait_for(backend.running.is_set, "the first request reaches the model")
        behind = post(url, 2000)  # queued behind it: gives up after 0.5 s
        assert slow.result().status_code == 504
        backend.gate.set()
        assert behind.status_code == 504 and behind.json()["error"]["code"] == "timeout"
        assert "0.5 s" in behind.json()["error"]["message"]
        after = post(url, 3000)
    assert after.status_code == 200 and after.json()["text"] == "n3000"
    assert app.state.batcher.calls == [1, 1]  # the first and the last: the abandoned one never ran


def test_hotwords_from_keywords_and_prompt_reach_the_backend():
    backend, app = held_service(HeldBackend(uses_lm=True))
    with running(app) as url:
        ok = httpx.post(url + "/v1/audio/transcriptions", timeout=30,
                        data={"model": "m", "keywords[]": ["काठमाडौं", "पोखरा"], "prompt": "नेपाल, भक्तपुर।"},
                        files={"file": ("a.wav", audio_bytes(np.zeros(1600, dtype="float32")))})
        assert ok.status_code == 200, ok.text
    assert backend.hotword_sets == [("काठमाडौं", "पोखरा", "नेपाल", "भक्तपुर")]
    greedy, app = held_service()
    with running(app) as url:
        assert post(url, prompt="नेपाल").status_code == 200  # a prompt without an LM: ignored
        refused = post(url, **{"keywords[]": "नेपाल"})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "keywords"
    assert "word LM" in refused.json()["error"]["message"] and greedy.hotword_sets == []


def test_api_key_and_malformed_requests_get_openai_errors():
    backend, app = held_service(api_key="k1", max_upload_mb=0.01)
    with running(app) as url:
        for key in (None, "wrong"):
            refused = post(url, key=key)
            assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
            assert refused.headers["www-authenticate"] == "Bearer"
        assert httpx.get(url + "/health").status_code == 200  # liveness needs no key
        assert post(url, key="k1").status_code == 200
        auth = {"Authorization": "Bearer k1"}

        def error(response, status):
            assert response.status_code == status, response.text
            body = response.json()
            assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
            return body["error"]

        assert "multipart/form-data" in error(httpx.post(url + "/v1/audio/transcriptions", headers=auth,
                                                         json={"model": "m"}), 400)["message"]
        body = (b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF')
        truncated = httpx.post(url + "/v1/audio/transcriptions", content=body,
                               headers={**auth, "Content-Type": "multipart/form-data; boundary=x"})
        assert "truncated" in error(truncated, 400)["message"]

        def chunks():  # no Content-Length: the limit is enforced while the upload streams in
            yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'
            for _ in range(100):
                yield bytes(1000)
        oversize = httpx.post(url + "/v1/audio/transcriptions", content=chunks(),
                              headers={**auth, "Content-Type": "multipart/form-data; boundary=x"})
        assert error(oversize, 413)["code"] == "file_too_large"
        assert error(post(url, key="k1", response_format="xml"), 400)["param"] == "response_format"
        assert error(post(url, key="k1", response_format="json", **{"timestamp_granularities[]": "word"}),
                     400)["param"] == "timestamp_granularities"
        assert error(post(url, key="k1", stream="true"), 400)["param"] == "stream"
        assert error(post(url, key="k1", temperature="warm"), 400)["param"] == "temperature"
        assert error(httpx.get(url + "/v1/nothing", headers=auth), 404)["code"] == "not_found"
        assert error(httpx.get(url + "/v1/models/other", headers=auth), 404)["code"] == "model_not_found"
        assert post(url, key="k1").status_code == 200


def test_the_page_needs_nothing_from_outside():
    from speechbrain_w2vbert.serve.app import ServiceSettings, create_app

    app = create_app(HeldBackend(), ServiceSettings())
    with running(app) as url:
        page = httpx.get(url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "connect-src 'self'" in page.headers["content-security-policy"]
    assert "http://" not in page.text and "https://" not in page.text and "//cdn" not in page.text


def accepted_nodelay(sock):
    """TCP_NODELAY of a connection asyncio accepts on ``sock`` (as uvicorn serves it)."""
    import asyncio
    import socket

    async def main():
        loop = asyncio.get_running_loop()
        nodelay = loop.create_future()

        class Accept(asyncio.Protocol):
            def connection_made(self, transport):
                nodelay.set_result(transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP,
                                                                                 socket.TCP_NODELAY))
                transport.close()

        server = await loop.create_server(Accept, sock=sock)
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        try:
            return await asyncio.wait_for(nodelay, 30)
        finally:
            writer.close()
            server.close()

    return asyncio.run(main())


def test_the_service_socket_answers_without_waiting_for_acknowledgements():
    """asyncio turns Nagle's algorithm off only on connections of a socket
    that names IPPROTO_TCP; a plain SOCK_STREAM socket keeps it on (each
    answer on a kept-alive connection then waits 40 ms for the client's
    delayed acknowledgement)."""
    import socket

    from speechbrain_w2vbert.serve.app import listening_socket

    assert accepted_nodelay(listening_socket("127.0.0.1", 0))
    plain = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    plain.bind(("127.0.0.1", 0))
    assert not accepted_nodelay(plain)


def test_a_backend_missing_part_of_the_protocol_is_named():
    from speechbrain_w2vbert.serve.app import create_app
    from speechbrain_w2vbert.serve.backends import Backend

    class NoAlignment:  # HeldBackend's members but align_waveform
        name, sample_rate, aligns, uses_lm = "none", 16000, False, False
        read, transcribe_waveforms, with_hotwords = (HeldBackend.read, HeldBackend.transcribe_waveforms,
                                                     HeldBackend.with_hotwords)

    assert isinstance(HeldBackend(), Backend) and not isinstance(NoAlignment(), Backend)
    with pytest.raises(TypeError, match=r"NoAlignment is not a serve backend: it lacks align_waveform \("):
        create_app(NoAlignment())


# ---------------------------------------------------------------- the real service, end to end
@pytest.fixture(scope="module")
def reference(asr):
    """What the Transcriber itself gives for the committed recordings (word times, alignments)."""
    from speechbrain_w2vbert.inference.transcriber import Transcriber

    transcriber = Transcriber(asr)
    wavs = [transcriber.read(p) for p in (SPEECH, SPEECH_B)]
    return transcriber, dict(zip((SPEECH, SPEECH_B), transcriber.transcribe_waveforms(wavs, timestamps=True)))


@pytest.fixture(scope="module")
def client(service):
    from openai import OpenAI

    return OpenAI(base_url=service.url + "/v1", api_key=service.api_key, max_retries=0)


def test_openai_sdk_each_response_format(client, reference):
    from openai.types.audio import Transcription, TranscriptionVerbose

    from speechbrain_w2vbert.inference.subtitles import subtitle_cues, to_srt, to_vtt

    expected = reference[1][SPEECH]
    assert [m.id for m in client.models.list()] == ["tiny_ne_model"]
    with open(SPEECH, "rb") as f:
        result = client.audio.transcriptions.create(model="tiny_ne_model", file=f, temperature=0.3, language="ne")
    assert isinstance(result, Transcription) and result.text == expected.text
    assert result.usage.type == "duration" and result.usage.seconds == expected.duration

    for fmt, body in (("text", expected.text + "\n"), ("srt", to_srt(subtitle_cues(expected.segments))),
                      ("vtt", to_vtt(subtitle_cues(expected.segments)))):
        with open(SPEECH, "rb") as f:
            assert client.audio.transcriptions.create(model="m", file=f, response_format=fmt) == body

    with open(SPEECH, "rb") as f:
        verbose = client.audio.transcriptions.create(model="m", file=f, response_format="verbose_json",
                                                     timestamp_granularities=["word", "segment"])
    assert isinstance(verbose, TranscriptionVerbose)
    assert (verbose.text, verbose.duration, verbose.language) == (expected.text, expected.duration, "nepali")
    assert [(w.word, w.start, w.end, w.model_extra["confidence"]) for w in verbose.words] == [
        (w.word, w.start, w.end, w.confidence) for w in expected.words]
    assert [(s.id, s.start, s.end, s.text) for s in verbose.segments] == [
        (i, s.start, s.end, s.text) for i, s in enumerate(expected.segments)]
    segment = verbose.segments[0]
    assert segment.avg_logprob < 0 and segment.compression_ratio > 0 and segment.no_speech_prob == 0.0

    with open(SPEECH, "rb") as f:  # OpenAI's default granularity: segments, no words
        default = client.audio.transcriptions.create(model="m", file=f, response_format="verbose_json")
    assert default.words is None and len(default.segments) == len(expected.segments)


def test_an_sdk_error_names_the_problem(client):
    import openai

    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.transcriptions.create(model="m", file=("notes.txt", b"hello, not audio"))
    assert caught.value.status_code == 400 and caught.value.code == "invalid_audio"
    assert "notes.txt" in caught.value.message and caught.value.param == "file"


def test_alignment_route_gives_what_the_transcriber_gives(service, reference, sample_test_rows):
    transcriber, _ = reference
    row = sample_test_rows[0]
    expected = transcriber.align_waveform(transcriber.read(row["wav"]), row["wrd"])
    auth = {"Authorization": f"Bearer {service.api_key}"}

    def align(text, fmt="json"):
        with open(row["wav"], "rb") as f:
            return httpx.post(service.url + "/v1/audio/alignments", headers=auth, timeout=60,
                              data={"text": text, "response_format": fmt}, files={"file": ("u.flac", f)})

    assert align(row["wrd"]).json() == json.loads(json.dumps(expected.to_json()))
    grid = align(row["wrd"], "textgrid")
    assert grid.text.startswith('File type = "ooTextFile"') and 'name = "chars"' in grid.text
    refused = align("abc xyz")
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "text"
    assert "'a' (U+0061)" in refused.json()["error"]["message"]


def bad_requests(service, tmp_path):
    """(name, files, headers, status, words of the message) of each bad request."""
    wav, _ = sf.read(SPEECH, dtype="float32")
    auth = {"Authorization": f"Bearer {service.api_key}"}
    oversize = np.random.default_rng(0).integers(-2**15, 2**15, int(service.limits["max_upload_mb"] * 1e6 / 2 + 1e5))
    flac = open(SPEECH, "rb").read()
    nan = np.full(16000, np.nan, dtype="float32")
    long = np.zeros(16000 * (service.limits["max_audio_seconds"] + 5), dtype="float32")
    return [
        ("oversize", {"file": ("big.wav", audio_bytes(oversize.astype("int16"), subtype="PCM_16"))}, auth, 413,
         ["file", "2 MB"]),
        ("wrong key", {"file": ("a.flac", flac)}, {"Authorization": "Bearer nope"}, 401, ["incorrect API key"]),
        ("no file", {"prompt": (None, "x")}, auth, 400, ["file", "missing"]),
        ("text as audio", {"file": ("notes.wav", b"just some text\n" * 50)}, auth, 400, ["notes.wav", "not audio"]),
        ("truncated FLAC", {"file": ("cut.flac", flac[:len(flac) // 2])}, auth, 400, ["cut.flac", "lost sync"]),
        ("0-byte", {"file": ("empty.wav", b"")}, auth, 400, ["empty.wav", "0 bytes"]),
        ("NaN samples", {"file": ("nan.wav", audio_bytes(nan, subtype="FLOAT"))}, auth, 400,
         ["nan.wav", "not finite"]),
        ("too long", {"file": ("long.flac", audio_bytes(long, fmt="FLAC"))}, auth, 413, ["long.flac", "at most 60 s"]),
    ]


def test_each_bad_request_then_a_good_one(service, reference, tmp_path):
    expected = reference[1][SPEECH].text
    auth = {"Authorization": f"Bearer {service.api_key}"}

    def good():
        with open(SPEECH, "rb") as f:
            response = httpx.post(service.url + "/v1/audio/transcriptions", headers=auth, timeout=60,
                                  data={"model": "m"}, files={"file": ("a.flac", f)})
        assert response.status_code == 200 and response.json()["text"] == expected

    for name, files, headers, status, words in bad_requests(service, tmp_path):
        response = httpx.post(service.url + "/v1/audio/transcriptions", headers=headers, timeout=60,
                              data={"model": "m"}, files=files)
        assert response.status_code == status, (name, response.text)
        message = response.json()["error"]["message"]
        assert all(w in message for w in words), (name, message)
        good()
    # 96 kHz, 6 channels: down-mixed and resampled, then transcribed like the 16 kHz original
    wav, _ = sf.read(SPEECH, dtype="float32")
    import torch
    import torchaudio

    up = torchaudio.functional.resample(torch.from_numpy(wav), 16000, 96000).numpy()
    six = np.stack([up * g for g in (1.0, 0.9, 1.1, 1.0, 0.95, 1.05)], axis=1)
    response = httpx.post(service.url + "/v1/audio/transcriptions", headers=auth, timeout=60, data={"model": "m"},
                          files={"file": ("six.flac", audio_bytes(six, 96000, "FLAC", "PCM_16"))})
    assert response.status_code == 200, response.text
    assert levenshtein(response.json()["text"], expected) <= len(expected) // 5
    good()


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:"))


def test_200_bad_requests_leave_memory_and_the_service_answering(service, reference, tmp_path):
    expected = reference[1][SPEECH].text
    auth = {"Authorization": f"Bearer {service.api_key}"}
    cases = [c for c in bad_requests(service, tmp_path) if c[0] != "wrong key"]
    with httpx.Client(base_url=service.url, timeout=60) as http:
        def send(case):
            _, files, headers, status, _ = case
            assert http.post("/v1/audio/transcriptions", headers=headers, data={"model": "m"},
                             files=files).status_code == status

        for case in cases * 2:  # allocator warm-up
            send(case)
        before = rss_mb(service.process.pid)
        for i in range(200):
            send(cases[i % len(cases)])
        after = rss_mb(service.process.pid)
        with open(SPEECH, "rb") as f:
            good = http.post("/v1/audio/transcriptions", headers=auth, data={"model": "m"}, files={"file": f})
    print(f"resident set: {before:.0f} MB before 200 bad requests, {after:.0f} MB after")
    assert after <= 1.10 * before, (before, after)
    assert good.status_code == 200 and good.json()["text"] == expected


def test_uploads_leave_nothing_behind(service, client):
    with open(SPEECH, "rb") as f:
        client.audio.transcriptions.create(model="m", file=f)
    names = os.listdir(service.tmpdir)
    private = [n for n in names if n.startswith("w2vbert-serve-")]
    assert len(private) == 1
    folder = os.path.join(service.tmpdir, private[0])
    assert os.stat(folder).st_mode & 0o777 == 0o700 and os.listdir(folder) == []  # each request's folder removed
    # the rest of TMPDIR: the model's savedir (links into the model folder) and torch's empty cache folder
    others = [n for n in names if n not in private]
    assert all(n.startswith(("w2vbert-asr-", "torchinductor_")) for n in others), others
    for name in others:
        for root, _, files in os.walk(os.path.join(service.tmpdir, name)):
            assert all(os.path.islink(os.path.join(root, f)) for f in files), files


def test_onnx_backend_serves_the_onnx_runtimes_transcripts(tmp_path):
    """``serve --backend onnx``'s backend: the ONNX folder's transcripts
    through the openai SDK, as the OnnxTranscriber gives them; hotwords
    refused without an LM; the alignment route answers 501 and the service
    goes on."""
    from openai import BadRequestError, OpenAI

    from speechbrain_w2vbert.onnx.runtime import OnnxTranscriber
    from speechbrain_w2vbert.serve.app import ServiceSettings, create_app
    from speechbrain_w2vbert.serve.backends import TranscriberBackend

    folder = str(tmp_path / "onnx")
    cli("export-onnx", MODEL, folder, "--savedir", str(tmp_path / "sb"))
    transcriber = OnnxTranscriber(folder, segmenter=None)
    expected = transcriber.transcribe_waveforms([transcriber.read(SPEECH)], timestamps=True)[0]
    backend = TranscriberBackend(OnnxTranscriber(folder, segmenter=None), "onnx")
    assert not backend.aligns and not backend.uses_lm
    with running(create_app(backend, ServiceSettings(model_id="onnx"))) as url:
        client = OpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
        with open(SPEECH, "rb") as f:
            verbose = client.audio.transcriptions.create(model="onnx", file=f, response_format="verbose_json",
                                                         timestamp_granularities=["word"])
        assert verbose.text == expected.text and expected.text
        assert [(w.word, w.start, w.end) for w in verbose.words] == [(w.word, w.start, w.end) for w in expected.words]
        with open(SPEECH, "rb") as f, pytest.raises(BadRequestError, match="hotwords need"):
            client.audio.transcriptions.create(model="onnx", file=f, extra_body={"keywords": "नेपाल"})
        with open(SPEECH, "rb") as f:
            aligned = httpx.post(url + "/v1/audio/alignments", data={"text": expected.text}, files={"file": f},
                                 timeout=60)
        assert aligned.status_code == 501 and "onnx backend cannot align" in aligned.json()["error"]["message"]
        with open(SPEECH_B, "rb") as f:
            assert client.audio.transcriptions.create(model="onnx", file=f).text == transcriber.transcribe_waveforms(
                [transcriber.read(SPEECH_B)])[0].text


def test_serve_onnx_backend_refuses_an_encoder_asr_folder():
    with pytest.raises(SystemExit, match="manifest|export-onnx"):
        cli("serve", MODEL, "--backend", "onnx")


@pytest.mark.parametrize("command", ["serve", "transcribe"])
@pytest.mark.parametrize("option, message", [
    (("--device", "cuda:0"), "runs on the CPU .*leave out --device cuda:0"),
    (("--revision", "main"), "--revision and --trust-remote-code are for EncoderASR folders"),
    (("--trust-remote-code",), "--revision and --trust-remote-code are for EncoderASR folders")])
def test_onnx_backend_refuses_torch_only_options(command, option, message):
    files = [SPEECH] if command == "transcribe" else []
    with pytest.raises(SystemExit, match=message):
        cli(command, MODEL, *files, "--backend", "onnx", *option)


def test_torch_backend_hotwords_need_the_lm(asr):
    from speechbrain_w2vbert.inference.transcriber import Transcriber
    from speechbrain_w2vbert.serve.backends import TranscriberBackend

    backend = TranscriberBackend(Transcriber(asr, segmenter=None))
    assert backend.with_hotwords([]) is backend and not backend.uses_lm
    with pytest.raises(ValueError, match="hotwords need the LM"):
        backend.with_hotwords(["नेपाल"])


def test_torch_backend_hotwords_with_the_folders_lm(tmp_path, sample_test_rows):
    """A folder with a word LM: each hotword set gets its own decoder (the
    folder's LM, weights and beam, plus the hotwords), kept for reuse; the
    backend itself is unchanged; the variant transcribes."""
    import shutil

    from speechbrain_w2vbert.inference.decoding import select_decoder
    from speechbrain_w2vbert.inference.folder import folder_lm_decoder, load_asr
    from speechbrain_w2vbert.inference.transcriber import Transcriber
    from speechbrain_w2vbert.serve.backends import TranscriberBackend

    folder = str(tmp_path / "tiny_ne_model_lm")
    shutil.copytree(os.path.join(DATA_DIR, "legacy_0.1", "tiny_ne_model_lm"), folder)
    for name in ("encoder.ckpt", "ctc_head.ckpt"):
        shutil.copyfile(os.path.join(MODEL, name), os.path.join(folder, name))
    asr = load_asr(folder, str(tmp_path / "cache"))
    lm = folder_lm_decoder(asr)
    backend = TranscriberBackend(Transcriber(asr, decoder=select_decoder(lm), segmenter=None))
    hot = backend.with_hotwords(["नेपाल", " ", "काठमाडौं"])
    assert backend.uses_lm and hot is not backend and backend.transcriber.decoder is lm
    assert hot.transcriber.decoder.hotwords == ["काठमाडौं", "नेपाल"]
    assert (hot.transcriber.decoder.lm_path, hot.transcriber.decoder.lm_weight) == (lm.lm_path, lm.lm_weight)
    assert backend.with_hotwords(["काठमाडौं", "नेपाल"]) is hot  # the same set: the same decoder
    (result,) = hot.transcribe_waveforms([hot.read(sample_test_rows[0]["wav"])], True)
    assert isinstance(result, Transcript) and result.text
