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

from tests.helpers import DATA_DIR, levenshtein

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
    silence = np.zeros(rate // 2, dtype="float32")
    sf.write(path, np.concatenate([silence, wav, silence, silence, silence, silence, silence, silence]), rate,
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


@pytest.mark.extended  # real-time capture: under make test's two busy workers Chromium's fake microphone drops audio
def test_record_from_the_microphone(browser, service, capture_wav):
    """Chromium's fake microphone plays the capture file from its start;
    what the page sends (decoded from the browser's Opus, as WAV) is
    transcribed nearly as the capture file's same stretch is."""
    import io

    from selenium.webdriver.common.by import By

    path, seconds = capture_wav
    open_page(browser, service)
    browser.find_element(By.ID, "record").click()
    wait(browser, "document.getElementById('record').textContent === 'Stop'", "recording starts")
    time.sleep(seconds + 1.5)  # the capture file: 0.5 s of silence, the recording, then silence
    browser.find_element(By.ID, "record").click()
    wait(browser, "document.getElementById('transcript').dataset.state === 'done'", "the recording is transcribed")
    text = browser.execute_script("return document.getElementById('transcript').dataset.text")
    duration = browser.execute_script("return document.getElementById('player').duration")
    assert seconds < duration < seconds + 4
    assert shown_words(browser)
    wav, rate = sf.read(path, dtype="float32")
    same_stretch = io.BytesIO()
    sf.write(same_stretch, wav[:int(duration * rate)], rate, format="WAV")
    expected = httpx.post(service.url + "/v1/audio/transcriptions", timeout=60, data={"model": "m"},
                          headers={"Authorization": f"Bearer {service.api_key}"},
                          files={"file": ("same.wav", same_stretch.getvalue())}).json()["text"]
    # through the browser's Opus encoder and 44.1/48 kHz: close to the file's own transcript, not equal
    assert levenshtein(text, expected) <= len(expected) // 3, (text, expected)
