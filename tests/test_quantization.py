"""int8 inference (speechbrain_w2vbert.inference.quantization, ``--int8``): every
linear layer of the encoder quantised, the CTC head not, transcripts close
to fp32 on the sample test set, and a clear error off the CPU."""

import json

import pytest
import torch

from tests.helpers import MODEL, cli


def test_int8_encoder_transcribes_close_to_fp32(sample_test_rows, tmp_path):
    """Measured (bench/inference.py --int8): CER 17.62 fp32 vs 17.40 int8 on
    the 19 test utterances; asserted: within 1 point."""
    from speechbrain_w2vbert.inference.folder import load_asr
    from speechbrain_w2vbert.text.scoring import error_counts
    from speechbrain_w2vbert.inference.quantization import count_quantized, quantize_asr_int8
    from speechbrain_w2vbert.inference.transcriber import Transcriber

    asr = load_asr(MODEL, str(tmp_path / "sb"))
    linears = sum(isinstance(m, torch.nn.Linear) for m in asr.mods.encoder.encoder.model.modules())
    refs = [r["wrd"] for r in sample_test_rows]
    wavs = [Transcriber(asr).read(r["wav"]) for r in sample_test_rows]

    def cer():
        counts = error_counts([r.text for r in Transcriber(asr).transcribe_waveforms(wavs)], refs)
        return 100.0 * counts["char_errors"] / counts["chars"]

    fp32 = cer()
    quantize_asr_int8(asr)
    assert count_quantized(asr.mods.encoder.encoder.model) == linears
    assert isinstance(asr.mods.encoder.head, torch.nn.Linear)  # the CTC head stays fp32
    int8 = cer()
    assert abs(int8 - fp32) <= 1.0, (fp32, int8)


def test_int8_option_of_the_cli(sample_test_rows, tmp_path):
    _, out, _ = cli("transcribe", MODEL, sample_test_rows[0]["wav"], "--int8", "--format", "json",
                    "--savedir", tmp_path / "sb")
    assert json.loads(out)[0]["text"]


def test_int8_refuses_a_model_off_the_cpu():
    from speechbrain_w2vbert.inference.quantization import quantize_asr_int8

    class Fake:  # what quantize_asr_int8 looks at: mods.encoder's parameters' device
        class mods:
            encoder = torch.nn.Linear(2, 2).to("meta")

    with pytest.raises(ValueError, match="CPU only; the model is on meta"):
        quantize_asr_int8(Fake())
