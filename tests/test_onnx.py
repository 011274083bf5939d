"""Deploying without PyTorch (speechbrain_w2vbert.onnx): the numpy frontend
and resampling against transformers and torch, the export of the committed
test model against the PyTorch path (log-probabilities, greedy and LM
transcripts, timestamps, JSON), the runtime in a process where torch cannot
be imported, silero-vad's ONNX model against silero-vad's own code, the
sherpa-onnx export run by sherpa-onnx, and bad folders and files.

One export of the test model (with the sample corpus' LM and the int8
graph) serves the whole module (~15 s).
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.helpers import DATA_DIR, MODEL, ROOT, cli
from tests.test_decoding import lm, lm_folder, tokenizer  # noqa: F401  (fixtures: the sample corpus' LM)
from tests.test_features import TOLERANCE, hard_inputs, reference

COMMITTED = sorted(os.path.join(DATA_DIR, n) for n in os.listdir(DATA_DIR) if n.endswith(".flac"))

#: Imports of torch, torchaudio, speechbrain and transformers fail in a process that runs this first.
BLOCKER = ("import sys\n"
           "class Block:\n"
           "    def find_spec(self, name, path=None, target=None):\n"
           "        if name.split('.')[0] in ('torch', 'torchaudio', 'speechbrain', 'transformers'):\n"
           "            raise ImportError(f'{name} is blocked in this test')\n"
           "sys.meta_path.insert(0, Block())\n")


@pytest.fixture(scope="module")
def lm_asr(lm_folder, tmp_path_factory):  # noqa: F811
    """The test model with the sample corpus' 3-gram LM, loaded by load_asr."""
    from speechbrain_w2vbert.inference.folder import load_asr

    folder, _ = lm_folder
    return load_asr(folder, str(tmp_path_factory.mktemp("lm_asr")))


@pytest.fixture(scope="module")
def onnx_folder(lm_folder, tmp_path_factory):  # noqa: F811
    """The test model (with its LM) exported by ``w2vbert-asr export-onnx --int8``."""
    folder = str(tmp_path_factory.mktemp("onnx") / "model")
    cli("export-onnx", lm_folder[0], folder, "--int8", "--savedir", tmp_path_factory.mktemp("export_sb"))
    return folder


@pytest.fixture(scope="module")
def greedy_torch(asr):
    from speechbrain_w2vbert.inference.transcriber import Transcriber

    return Transcriber(asr, segmenter=None)


@pytest.fixture(scope="module")
def greedy_onnx(onnx_folder):
    from speechbrain_w2vbert.onnx.runtime import OnnxTranscriber

    return OnnxTranscriber(onnx_folder, use_lm=False, segmenter=None)


# ------------------------------------------------------------------ frontend
def test_window_and_filterbank_are_transformers(reference_extractor):
    from transformers.audio_utils import mel_filter_bank, window_function

    from speechbrain_w2vbert.onnx.frontend import kaldi_mel_filters, povey_window

    expected = mel_filter_bank(num_frequency_bins=257, num_mel_filters=80, min_frequency=20, max_frequency=8000,
                               sampling_rate=16000, norm=None, mel_scale="kaldi", triangularize_in_mel_space=True)
    np.testing.assert_allclose(kaldi_mel_filters(), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(povey_window(), window_function(400, "povey", periodic=False), rtol=0, atol=1e-15)


def test_numpy_features_match_transformers_and_seamless_fbank(reference_extractor, joined_speech, nepali_speech):
    """The committed recordings and the hard inputs of test_features.py
    (digital silence, band-limited, clipped, noise only...) and a 3-frame
    utterance: within 1e-4 of transformers' extractor and of SeamlessFbank,
    the torch path's (measured: at most 1e-5 but on the 3-frame utterance,
    9.6e-5, where the reference's fp32 rounding is divided by each bin's
    spread over 3 frames)."""
    from speechbrain_w2vbert.models.features import SeamlessFbank
    from speechbrain_w2vbert.onnx.frontend import batch_features, seamless_features

    inputs = dict(hard_inputs(joined_speech, nepali_speech))
    inputs.update({os.path.basename(p): sf.read(p, dtype="float32")[0] for p in COMMITTED})
    inputs["3 frames"] = nepali_speech[0][:720]
    for name, wav in inputs.items():
        ours = seamless_features(wav)
        ref, n = reference(reference_extractor, wav)
        assert ours.shape == (n, 160), name
        assert np.abs(ours - ref).max() <= 1e-4, (name, np.abs(ours - ref).max())
        torch_feats, _ = SeamlessFbank()(torch.from_numpy(np.ascontiguousarray(wav))[None])
        assert np.abs(ours - torch_feats[0].numpy()).max() <= 1e-4, name
        if len(wav) > 16000:
            assert np.abs(ours - ref).max() <= TOLERANCE, name
    # digital silence: exactly 0, as SeamlessFbank (the reference's fp32 rounding gives -0.003)
    assert (seamless_features(np.zeros(16000, np.float32)) == 0).all()
    feats, mask = batch_features([nepali_speech[0], nepali_speech[1][:5000]])
    assert mask.dtype == np.int64 and (feats[1, mask[1].sum():] == 0).all()
    np.testing.assert_array_equal(feats[1, : mask[1].sum()], seamless_features(nepali_speech[1][:5000]))


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_numpy_resampling_is_the_torch_paths(rate):
    from speechbrain_w2vbert.audio import resample as torch_resample
    from speechbrain_w2vbert.onnx.frontend import resample

    stereo = np.random.default_rng(rate).standard_normal((rate * 2 + 7, 2)).astype(np.float32) * 0.1
    expected = torch_resample(torch.from_numpy(stereo), rate, 16000).numpy()
    got = resample(stereo, rate, 16000)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-5


# ------------------------------------------------------------------ parity
def test_export_folder_and_manifest(onnx_folder, asr):
    from speechbrain_w2vbert.inference.manifest import verify_manifest

    manifest = verify_manifest(onnx_folder)
    assert manifest["kind"] == "onnx" and manifest["models"] == {"fp32": "model.onnx", "int8": "model.int8.onnx"}
    assert manifest["tokens"] == asr.tokenizer.tokens and manifest["blank_index"] == 0
    assert (manifest["sample_rate"], manifest["frame_rate"], manifest["samples_per_frame"]) == (16000, 50.0, 320)
    assert manifest["lm"]["file"] == "lm.arpa" and manifest["lm"]["lm_weight"] == 0.5
    assert manifest["normalizer"]["function"].endswith("normalize_nepali")
    assert manifest["parity_max_abs_diff"] < 1e-4
    assert {"model.onnx.data", "model.int8.onnx", "vocab.json", "lm.arpa", "unigrams.txt"} <= set(manifest["files"])
    # fp32 weights beside the graph; int8 in one file
    assert os.path.getsize(os.path.join(onnx_folder, "model.onnx.data")) > 5 * os.path.getsize(
        os.path.join(onnx_folder, "model.onnx"))
    assert not any(n.endswith(".data") and "int8" in n for n in os.listdir(onnx_folder))


def test_fp32_log_probs_and_greedy_transcripts_are_the_torch_paths(greedy_torch, greedy_onnx, sample_test_rows):
    """The committed recordings and the sample test set: log-probabilities
    within 1e-4, identical greedy transcripts, identical JSON with word
    times and confidences."""
    paths = COMMITTED + [r["wav"] for r in sample_test_rows]
    torch_wavs = [greedy_torch.read(p) for p in paths]
    onnx_wavs = [greedy_onnx.read(p) for p in paths]
    worst = 0.0
    for ours, theirs in zip(greedy_onnx.pieces_log_probs(onnx_wavs), greedy_torch.pieces_log_probs(torch_wavs)):
        assert (theirs[len(ours):].argmax(-1) == 0).all()  # the torch path's extra frames are padding blanks
        worst = max(worst, float(np.abs(ours - theirs[: len(ours)].numpy()).max()))
    assert worst < 1e-4, worst
    expected = greedy_torch.transcribe_waveforms(torch_wavs, timestamps=True)
    got = greedy_onnx.transcribe_waveforms(onnx_wavs, timestamps=True)
    assert_same_results(got, expected)


def assert_same_results(got, expected):
    """Same texts, segments and word times; confidences (4 decimals) within 1e-3 (the posteriors differ by <1e-4)."""
    text = lambda r: r["text"] if isinstance(r, dict) else r.text  # noqa: E731
    assert [text(r) for r in got] == [text(r) for r in expected]
    for ours, theirs in zip(got, expected):
        ours, theirs = ours if isinstance(ours, dict) else ours.to_json(), theirs.to_json()
        assert [(w["word"], w["start"], w["end"]) for w in ours["words"]] == [
            (w["word"], w["start"], w["end"]) for w in theirs["words"]]
        assert all(abs(a["confidence"] - b["confidence"]) <= 1e-3 for a, b in zip(ours["words"], theirs["words"]))
        assert [(s["start"], s["end"], s["text"]) for s in ours["segments"]] == [
            (s["start"], s["end"], s["text"]) for s in theirs["segments"]]


def test_lm_transcripts_and_word_times_are_the_torch_paths(lm_asr, onnx_folder, sample_test_rows):
    """Beam search with the folder's LM (same weight, bonus, beam): the same
    transcripts as the PyTorch path's SpeechBrain searcher, and the same
    words with times and confidences (the LM text aligned to the frames)."""
    from speechbrain_w2vbert.inference.decoding import select_decoder
    from speechbrain_w2vbert.inference.folder import folder_lm_decoder
    from speechbrain_w2vbert.inference.transcriber import Transcriber
    from speechbrain_w2vbert.onnx.runtime import OnnxTranscriber

    theirs = Transcriber(lm_asr, segmenter=None, decoder=select_decoder(folder_lm_decoder(lm_asr)))
    ours = OnnxTranscriber(onnx_folder, segmenter=None)
    assert ours.decoder is not None and ours.decoder.beam_size == theirs.decoder.beam_size
    paths = [r["wav"] for r in sample_test_rows]
    expected = theirs.transcribe_waveforms([theirs.read(p) for p in paths], timestamps=True)
    got = ours.transcribe_waveforms([ours.read(p) for p in paths], timestamps=True)
    assert_same_results(got, expected)
    greedy = OnnxTranscriber(onnx_folder, segmenter=None, use_lm=False).transcribe_waveforms(
        [ours.read(p) for p in paths])
    assert [r.text for r in greedy] != [r.text for r in got]  # the LM does change the text


def test_forced_path_is_torchaudios(greedy_torch, sample_test_rows):
    from speechbrain_w2vbert.inference.alignment import align_ids
    from speechbrain_w2vbert.onnx.runtime import forced_path

    for row in sample_test_rows[:6]:
        log_probs = greedy_torch.pieces_log_probs([greedy_torch.read(row["wav"])])[0]
        targets = greedy_torch.tokenizer.encode(row["wrd"])
        expected, _ = align_ids(log_probs, targets, 0)
        got = forced_path(log_probs.numpy(), targets)
        score = lambda path: float(log_probs[torch.arange(len(path)), torch.tensor(path)].sum())  # noqa: E731
        assert got == list(expected) or abs(score(got) - score(list(expected))) < 1e-4
    assert forced_path(log_probs.numpy()[:3], targets) is None


def test_int8_is_close_to_fp32(onnx_folder, sample_test_rows):
    """int8 (per-channel dynamic quantisation): CER within 1 point of fp32
    on the sample test set (bench/inference.py --onnx measures it)."""
    from speechbrain_w2vbert.onnx.runtime import OnnxTranscriber
    from speechbrain_w2vbert.text.scoring import error_counts

    refs = [r["wrd"] for r in sample_test_rows]
    cers = {}
    for precision in ("fp32", "int8"):
        transcriber = OnnxTranscriber(onnx_folder, precision, use_lm=False, segmenter=None)
        texts = [r.text for r in transcriber.transcribe_waveforms([transcriber.read(r["wav"]) for r in sample_test_rows])]
        counts = error_counts(texts, refs)
        cers[precision] = 100.0 * counts["char_errors"] / counts["chars"]
    assert abs(cers["int8"] - cers["fp32"]) <= 1.0, cers


# ------------------------------------------------------------------ without torch
def test_the_runtime_and_the_cli_run_without_torch(onnx_folder, greedy_torch, test_files, tmp_path):
    """In a process where torch, speechbrain and transformers cannot be
    imported: OnnxTranscriber and ``w2vbert-asr transcribe --backend onnx``
    give the PyTorch path's JSON (greedy, with word times), the LM decodes,
    and an unreadable file is reported while the others are transcribed."""
    paths = COMMITTED + [r["wav"] for r in test_files[:3]]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not audio")
    out = tmp_path / "out.json"
    code = BLOCKER + (
        "import json, sys\n"
        "from speechbrain_w2vbert.cli import main\n"
        "from speechbrain_w2vbert.onnx.runtime import OnnxTranscriber\n"
        f"folder, paths, out, bad = {onnx_folder!r}, {paths!r}, {str(out)!r}, {str(bad)!r}\n"
        "t = OnnxTranscriber(folder, use_lm=False, segmenter=None, num_threads=1)\n"
        "greedy = [r.to_json() for r in t.transcribe_waveforms([t.read(p) for p in paths], timestamps=True)]\n"
        "lm = OnnxTranscriber(folder, segmenter=None).transcribe_waveforms([t.read(paths[0])])[0].text\n"
        "status = main(['transcribe', folder, bad, *paths, '--backend', 'onnx', '--no-lm', '--format', 'json',\n"
        "               '--timestamps', 'word', '--output', out])\n"
        "assert not any(m.split('.')[0] in ('torch', 'speechbrain', 'transformers') for m in sys.modules)\n"
        "print(json.dumps({'greedy': greedy, 'lm': lm, 'status': status}))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    expected = greedy_torch.transcribe_waveforms([greedy_torch.read(p) for p in paths], timestamps=True)
    assert_same_results(result["greedy"], expected)
    assert result["lm"]
    assert result["status"] == 1 and f"w2vbert-asr: {bad}: unreadable" in done.stderr
    written = json.loads(out.read_text(encoding="utf-8"))
    assert "error" in written[0]
    assert_same_results(written[1:], expected)


@pytest.mark.slow
def test_vad_is_silero_vads_own(long_recording):
    """The numpy VAD's speech spans are silero-vad's ``get_speech_timestamps``
    on the same ONNX model (silero-vad's OnnxWrapper), and the segments of a
    long file match the PyTorch segmenter's within a VAD window or two."""
    from silero_vad import get_speech_timestamps, load_silero_vad

    from speechbrain_w2vbert.inference.segmentation import VoiceActivitySegmenter
    from speechbrain_w2vbert.onnx.vad import OnnxVoiceActivitySegmenter

    wav = long_recording.wav.numpy()
    segmenter = OnnxVoiceActivitySegmenter()
    stamps = get_speech_timestamps(torch.from_numpy(wav), load_silero_vad(onnx=True), threshold=0.5,
                                   min_speech_duration_ms=250, min_silence_duration_ms=500, speech_pad_ms=0)
    assert segmenter.speech(wav) == [(s["start"], s["end"]) for s in stamps]
    ours, theirs = segmenter(wav), VoiceActivitySegmenter()(long_recording.wav)
    assert len(ours) == len(theirs) > 10
    assert max(abs(a - b) for x, y in zip(ours, theirs) for a, b in zip(x, y)) <= 2 * 512


@pytest.mark.slow
def test_long_file_in_vad_segments_and_chunks(onnx_folder, long_recording, tmp_path):
    """A 2-minute file through the CLI with --backend onnx: cut at pauses by
    the VAD (one segment per utterance), and with --segment fixed in chunks;
    word times ordered inside the file."""
    for options in (["--segment", "vad"], ["--segment", "fixed", "--chunk-length", "10", "--stride-length", "2"]):
        out = tmp_path / "long.json"
        cli("transcribe", onnx_folder, long_recording.path, "--backend", "onnx", "--format", "json", "--no-lm",
            "--timestamps", "word", "--output", out, "--no-progress", *options)
        (result,) = json.loads(out.read_text(encoding="utf-8"))
        words = result["words"]
        assert " ".join(w["word"] for w in words) == " ".join(result["text"].split())
        assert all(a["end"] <= b["start"] for a, b in zip(words, words[1:]))
        if options[1] == "vad":
            assert len(result["segments"]) == len(long_recording.parts)
        else:
            assert len(result["segments"]) == 1


# ------------------------------------------------------------------ sherpa-onnx
def test_sherpa_onnx_runs_the_sherpa_export(asr, greedy_onnx, sample_test_rows, tmp_path):
    """``export-onnx --format sherpa`` loads in sherpa-onnx 2.0.1 as its
    ``fire_red_asr_ctc`` model type and gives the ONNX runtime's greedy
    transcripts on the sample test set (sherpa-onnx computes the Kaldi fbank
    itself; the graph normalises and stacks it)."""
    import sherpa_onnx

    folder = str(tmp_path / "sherpa")
    cli("export-onnx", MODEL, folder, "--format", "sherpa", "--savedir", tmp_path / "sb")
    assert sorted(os.listdir(folder)) == ["manifest.json", "model.onnx", "tokens.txt"]
    recognizer = sherpa_onnx.OfflineRecognizer.from_fire_red_asr_ctc(
        model=os.path.join(folder, "model.onnx"), tokens=os.path.join(folder, "tokens.txt"), num_threads=1)
    texts = []
    for row in sample_test_rows:
        wav, rate = sf.read(row["wav"], dtype="float32")
        stream = recognizer.create_stream()
        stream.accept_waveform(rate, wav)
        recognizer.decode_stream(stream)
        texts.append(stream.result.text)
    ours = [r.text for r in greedy_onnx.transcribe_waveforms([greedy_onnx.read(r["wav"]) for r in sample_test_rows])]
    assert texts == ours


# ------------------------------------------------------------------ bad input
def test_bad_folders_are_clear_errors(onnx_folder, tmp_path):
    from speechbrain_w2vbert.inference.manifest import ManifestError, write_manifest
    from speechbrain_w2vbert.onnx.runtime import OnnxFolderError, OnnxTranscriber

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(OnnxFolderError, match=f"{empty}: no manifest.json: not a folder written by w2vbert-asr"):
        OnnxTranscriber(str(empty))
    with pytest.raises(OnnxFolderError, match="a 'encoder_asr' folder, not an ONNX export"):
        OnnxTranscriber(encoder_asr_folder(tmp_path))
    truncated = str(tmp_path / "truncated")
    shutil.copytree(onnx_folder, truncated)
    data = os.path.join(truncated, "model.onnx.data")
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 2)
    with pytest.raises(ManifestError, match=f"{data}: .* bytes where the export wrote .*truncated"):
        OnnxTranscriber(truncated)
    # A graph of another vocabulary (its manifest rewritten to match the files)
    other = str(tmp_path / "other")
    shutil.copytree(onnx_folder, other)
    vocab = json.load(open(os.path.join(other, "vocab.json"), encoding="utf-8"))
    del vocab[max(vocab, key=vocab.get)]
    json.dump(vocab, open(os.path.join(other, "vocab.json"), "w", encoding="utf-8"), ensure_ascii=False)
    manifest = json.load(open(os.path.join(other, "manifest.json"), encoding="utf-8"))
    manifest["tokens"] = manifest["tokens"][:-1]
    write_manifest(other, "onnx", **{k: v for k, v in manifest.items() if k not in ("format", "version", "kind", "files")})
    with pytest.raises(OnnxFolderError, match=r"model\.onnx: the graph outputs 56 labels but the folder's vocabulary "
                                              r"has 55 tokens \(a graph of another model\)"):
        OnnxTranscriber(other, use_lm=False)
    with pytest.raises(OnnxFolderError, match="has no int8 graph"):
        OnnxTranscriber(fp32_only(tmp_path, onnx_folder), "int8")
    status = subprocess.run([sys.executable, "-m", "speechbrain_w2vbert.cli", "transcribe", str(empty),
                             COMMITTED[0], "--backend", "onnx"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert status.returncode == 1 and f"w2vbert-asr: {empty}: no manifest.json" in status.stderr


def encoder_asr_folder(tmp_path):
    """A copy of the test model with a 0.2.0 manifest (an EncoderASR folder)."""
    from speechbrain_w2vbert.inference.manifest import write_manifest

    folder = str(tmp_path / "encoder_asr")
    shutil.copytree(MODEL, folder)
    write_manifest(folder, "encoder_asr")
    return folder


def fp32_only(tmp_path, onnx_folder):
    """A copy of the export without its int8 graph (manifest rewritten)."""
    from speechbrain_w2vbert.inference.manifest import write_manifest

    folder = str(tmp_path / "fp32_only")
    shutil.copytree(onnx_folder, folder)
    os.remove(os.path.join(folder, "model.int8.onnx"))
    manifest = json.load(open(os.path.join(folder, "manifest.json"), encoding="utf-8"))
    del manifest["models"]["int8"]
    write_manifest(folder, "onnx", **{k: v for k, v in manifest.items() if k not in ("format", "version", "kind", "files")})
    return folder


def test_short_and_unreadable_audio_are_reported(greedy_onnx, tmp_path):
    from speechbrain_w2vbert.audio import AudioError

    results = greedy_onnx.transcribe_waveforms([np.zeros(100, np.float32), sf.read(COMMITTED[0], dtype="float32")[0]])
    assert isinstance(results[0], AudioError) and "too short" in str(results[0])
    assert results[1].text
    with pytest.raises(AudioError, match="unreadable"):
        greedy_onnx.read(str(tmp_path / "missing.wav"))
