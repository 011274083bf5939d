"""The service's web page in a real browser: Debian's Chromium driven by
selenium (chromedriver), against the ``service`` fixture. It enters the API
key, uploads a committed recording and checks the transcript shown (words,
their times, low-confidence marks) against the API's answer, plays the
audio from a clicked word, downloads the SRT, and records through
Chromium's fake capture device fed with a known recording.

Skipped where Chromium or chromedriver is not installed (.ci/run installs
them: ``apt-get install chromium chromium-driver``).
"""

import os
import shutil
import time

import httpx
import numpy as np
import pytest
import soundfile as sf

from tests.helpers import DATA_DIR

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SPEECH = os.path.join(DATA_DIR, "ne_speech_a.flac")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver: apt-get install chromium chromium-driver "
           "(.ci/run installs them)")


@pytest.fixture(scope="module")
def capture_wav(tmp_path_factory):
    """What the fake microphone plays: 0.5 s of silence, the recording, 3 s of silence (WAV, 16 kHz)."""
    wav, rate = sf.read(SPEECH, dtype="float32")
    path = str(tmp_path_factory.mktemp("capture") / "capture.wav")
    sf.write(path, np.concatenate([np.zeros(rate // 2, "float32"), wav, np.zeros(3 * rate, "float32")]), rate,
             subtype="PCM_16")
    return path, len(wav) / rate


@pytest.fixture(scope="module")
def browser(capture_wav, tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    downloads = str(tmp_path_factory.mktemp("downloads"))
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                     f"--use-file-for-fake-audio-capture={capture_wav[0]}", "--autoplay-policy=no-user-gesture-required",
                     f"--user-data-dir={tmp_path_factory.mktemp('profile')}"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"download.default_directory": downloads,
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=DriverService(CHROMEDRIVER), options=options)
    driver.downloads = downloads
    yield driver
    driver.quit()


def wait(driver, script, what, timeout=60):
    """Polls a JavaScript expression until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script("return " + script)
        if value:
            return value
        if time.monotonic() > deadline:
            status = driver.execute_script("return document.getElementById('status').textContent")
            raise AssertionError(f"{what} (page status: {status!r})")
        time.sleep(0.05)


def open_page(driver, service):
    """Loads the page and gives it the API key when it asks (sessionStorage keeps it)."""
    from selenium.webdriver.common.by import By

    driver.get(service.url + "/")
    wait(driver, "document.getElementById('model').textContent || !document.getElementById('auth').hidden",
         "the page asks for the key or names the model")
    if driver.find_element(By.ID, "auth").is_displayed():
        driver.find_element(By.ID, "api-key").send_keys(service.api_key)
        driver.find_element(By.ID, "save-key").click()
    wait(driver, "document.getElementById('model').textContent === 'tiny_ne_model'", "the model's name is shown")


def shown_words(driver):
    return driver.execute_script(
        "return [...document.querySelectorAll('#transcript .word')].map(e => ({word: e.querySelector('.text')"
        ".textContent, time: e.querySelector('.time').textContent, start: +e.dataset.start, end: +e.dataset.end, "
        "confidence: +e.dataset.confidence, low: e.classList.contains('low')}))")


def test_upload_transcript_word_times_play_and_download(browser, service):
    from selenium.webdriver.common.by import By

    auth = {"Authorization": f"Bearer {service.api_key}"}
    with open(SPEECH, "rb") as f:
        expected = httpx.post(service.url + "/v1/audio/transcriptions", headers=auth, timeout=60,
                              data={"model": "m", "response_format": "verbose_json",
                                    "timestamp_granularities[]": ["word", "segment"]},
                              files={"file": ("ne_speech_a.flac", f)}).json()
    browser.get(service.url + "/")  # a new browser profile: no key yet
    wait(browser, "!document.getElementById('auth').hidden", "the page asks for the API key")
    open_page(browser, service)

    browser.find_element(By.ID, "file").send_keys(SPEECH)
    browser.find_element(By.ID, "threshold").clear()
    browser.find_element(By.ID, "threshold").send_keys("0.8")
    browser.find_element(By.ID, "transcribe").click()
    wait(browser, "document.getElementById('transcript').dataset.state === 'done'", "the transcript is shown")
    assert browser.execute_script("return document.getElementById('transcript').dataset.text") == expected["text"]
    words = shown_words(browser)
    assert [w["word"] for w in words] == [w["word"] for w in expected["words"]]
    assert [w["time"] for w in words] == [f"{w['start']:.2f}" for w in expected["words"]]
    assert [w["low"] for w in words] == [w["confidence"] < 0.8 for w in expected["words"]]
    assert any(w["low"] for w in words) and not all(w["low"] for w in words)  # the threshold splits them

    target = browser.find_elements(By.CSS_SELECTOR, "#transcript .word")[-1]
    target.click()
    start = words[-1]["start"]
    position = wait(browser, "(() => { const a = document.getElementById('player'); "
                             "return !a.paused || a.currentTime > 0 ? a.currentTime + 1e-6 : 0 })()",
                    "the audio plays from the clicked word")
    assert position >= start - 0.05

    browser.find_element(By.ID, "download-srt").click()
    path = os.path.join(browser.downloads, "ne_speech_a.srt")
    deadline = time.monotonic() + 30
    while not os.path.exists(path):
        assert time.monotonic() < deadline, os.listdir(browser.downloads)
        time.sleep(0.05)
    with open(SPEECH, "rb") as f:
        srt = httpx.post(service.url + "/v1/audio/transcriptions", headers=auth, timeout=60,
                         data={"model": "m", "response_format": "srt"}, files={"file": f}).text
    time.sleep(0.2)  # the file is complete once renamed from .crdownload; give the write a moment
    with open(path, encoding="utf-8") as f:
        assert f.read() == srt


def sent_audio(driver):
    """The bytes of the audio the page holds (and sends): read in the page with a FileReader."""
    import base64

    encoded = driver.execute_async_script(
        "const done = arguments[arguments.length - 1]; const reader = new FileReader();"
        "reader.onload = () => done(reader.result.split(',')[1]); reader.onerror = () => done(null);"
        "reader.readAsDataURL(current.blob);")
    assert encoded, "the page's audio could not be read"
    return base64.b64decode(encoded)


def where_in(recording, rate, reference):
    """Aligns ``recording`` (any rate) with ``reference`` (16 kHz) by
    cross-correlation; returns (offset in seconds of the reference within the
    recording, normalised correlation over their overlap)."""
    import torch

    from speechbrain_w2vbert.audio import resample

    recording = resample(torch.from_numpy(recording), rate, 16000).numpy()
    size = len(recording) + len(reference)
    correlation = np.fft.irfft(np.fft.rfft(recording, size) * np.conj(np.fft.rfft(reference, size)), size)
    lag = int(np.argmax(correlation))
    lag = lag if lag < size // 2 else lag - size
    a, b = recording[max(lag, 0):], reference[max(-lag, 0):]
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    return lag / 16000, float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)))


def test_record_from_the_microphone(browser, service, capture_wav):
    """Chromium's fake microphone plays the capture file from its start. The
    page records it (MediaRecorder's Opus, decoded by the browser, sent as
    WAV): what it sends is the capture file, within a few milliseconds and
    the codec's loss, and what it shows is the service's transcript of what
    it sent."""
    import io

    from selenium.webdriver.common.by import By

    path, seconds = capture_wav
    open_page(browser, service)
    browser.find_element(By.ID, "record").click()
    wait(browser, "document.getElementById('record').textContent === 'Stop'", "recording starts")
    time.sleep(seconds + 1.5)  # the capture file: 0.5 s of silence, the recording, then silence
    browser.find_element(By.ID, "record").click()
    wait(browser, "document.getElementById('transcript').dataset.state === 'done'", "the recording is transcribed")
    assert shown_words(browser)
    text = browser.execute_script("return document.getElementById('transcript').dataset.text")

    sent = sent_audio(browser)
    recording, rate = sf.read(io.BytesIO(sent), dtype="float32")
    assert recording.ndim == 1 and rate in (44100, 48000)  # mono WAV at the browser's rate
    reference, _ = sf.read(path, dtype="float32")
    offset, correlation = where_in(recording, rate, reference[:int((0.5 + seconds) * 16000)])
    assert abs(offset) < 0.2 and correlation > 0.9, (offset, correlation)  # 0.98 through Opus, when in place
    assert len(recording) / rate > offset + 0.5 + seconds  # all of the speech
    expected = httpx.post(service.url + "/v1/audio/transcriptions", timeout=60, data={"model": "m"},
                          headers={"Authorization": f"Bearer {service.api_key}"},
                          files={"file": ("recording.wav", sent)}).json()["text"]
    assert text == expected
