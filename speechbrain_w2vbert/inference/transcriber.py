"""Transcribing and aligning real recordings with an ``EncoderASR`` model:
batches of short files (sorted by length); long files cut at pauses into
speech segments (:mod:`speechbrain_w2vbert.inference.segmentation`), a segment longer
than a chunk (or, with ``segmenter=None``, the whole file) in overlapping
chunks (:mod:`speechbrain_w2vbert.inference.chunking`); word timestamps and
confidences (:mod:`speechbrain_w2vbert.inference.timestamps`); forced alignment of
known transcripts (:mod:`speechbrain_w2vbert.inference.alignment`). Audio is read by
:func:`speechbrain_w2vbert.audio.read_audio`; results are
:mod:`speechbrain_w2vbert.inference.results` types.

Authors: speechbrain-w2vbert contributors
"""

from typing import List, Optional, Union

import torch

from speechbrain_w2vbert.audio import read_audio, resample
from speechbrain_w2vbert.inference.alignment import AlignmentError, align_ids, split_transcript, transcript_ids
from speechbrain_w2vbert.inference.folder import asr_model
from speechbrain_w2vbert.inference.pipeline import NoSpeechError, TranscriptionPipeline
from speechbrain_w2vbert.inference.results import Alignment, Segment
from speechbrain_w2vbert.inference.segmentation import VoiceActivitySegmenter
from speechbrain_w2vbert.text.normalize import normalize_nepali

__all__ = ["Transcriber", "NoSpeechError"]


class Transcriber(TranscriptionPipeline):
    """Transcribes and aligns waveforms with an ``EncoderASR`` whose
    ``encode_batch`` returns blank-masked CTC log-probabilities (the folders
    written by :func:`speechbrain_w2vbert.inference.folder.export_inference_folder`):
    the PyTorch backend of :class:`~speechbrain_w2vbert.inference.pipeline.TranscriptionPipeline`,
    which holds the batching, segmentation, chunking and decoding
    (``transcribe_waveforms``, ``pieces_log_probs``, ``decode``...).

    Arguments
    ---------
    asr : speechbrain.inference.ASR.EncoderASR
        The loaded model.
    chunk_length, stride_length, batch_size, progress
        As :class:`~speechbrain_w2vbert.inference.pipeline.TranscriptionPipeline`
        (defaults 20 s, 4 s, 8, None).
    decoder : speechbrain_w2vbert.lm.beam.LMBeamDecoder, optional
        Beam search (with its LM) instead of greedy decoding (what
        :func:`~speechbrain_w2vbert.inference.decoding.select_decoder` chose).
    segmenter : VoiceActivitySegmenter, "vad" or None
        Cuts files longer than a chunk at pauses (default "vad": a
        :class:`VoiceActivitySegmenter` with its defaults); None cuts them in
        fixed overlapping chunks only.
    """

    def __init__(self, asr, chunk_length: float = 20.0, stride_length: float = 4.0, batch_size: int = 8,
                 progress: Optional[bool] = None, decoder=None,
                 segmenter: Union[VoiceActivitySegmenter, str, None] = "vad"):
        self.asr = asr
        sample_rate = int(getattr(asr.hparams, "sample_rate", 16000))
        encoder = asr_model(asr).encoder
        if segmenter == "vad":
            segmenter = VoiceActivitySegmenter(sample_rate)
        elif isinstance(segmenter, str):
            raise ValueError(f"segmenter must be 'vad', None or a VoiceActivitySegmenter, got {segmenter!r}")
        super().__init__(asr.tokenizer, sample_rate, encoder.min_samples, encoder.samples_per_frame, chunk_length,
                         stride_length, batch_size, progress, decoder, segmenter)

    def read(self, path: str) -> torch.Tensor:
        """:func:`read_audio` at the model's rate (at least the encoder's shortest input)."""
        return read_audio(path, self.sample_rate, self.min_samples)

    @torch.no_grad()
    def _log_probs(self, wavs: List[torch.Tensor]) -> List[torch.Tensor]:
        """Log-probabilities [T, V] of each waveform, batched and padded
        (frames past a waveform's end are blanks, see ``EncoderCTC``)."""
        longest = max(w.shape[0] for w in wavs)
        batch = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True)
        lens = torch.tensor([w.shape[0] / longest for w in wavs])
        return list(self.asr.encode_batch(batch, lens).float().cpu())

    def _align(self, log_probs: torch.Tensor, text: str) -> Optional[List[int]]:
        """The forced-alignment path of ``text`` (None where it cannot be aligned)."""
        try:
            return align_ids(log_probs, self.tokenizer.encode(text), self.tokenizer.blank_index)[0]
        except AlignmentError:
            return None

    def at_model_rate(self, wav, sample_rate: Optional[int]) -> torch.Tensor:
        """``wav`` (1-D tensor, or array such as soundfile's, at
        ``sample_rate`` Hz; None: the model's rate) as a tensor at the
        model's rate, resampled as :func:`read_audio` resamples files."""
        if not isinstance(wav, torch.Tensor):
            wav = torch.as_tensor(wav, dtype=torch.float32)
        if wav.dim() != 1:
            raise ValueError(f"expected a 1-D waveform (mono), got shape {tuple(wav.shape)}")
        if sample_rate is None or sample_rate == self.sample_rate:
            return wav
        return resample(wav, sample_rate, self.sample_rate)

    def align_waveform(self, wav: torch.Tensor, transcript: str, sample_rate: Optional[int] = None) -> Alignment:
        """Forced alignment of a known transcript (normalised with
        :func:`speechbrain_w2vbert.text.normalize.normalize_nepali`) to a 1-D waveform
        at ``sample_rate`` Hz (default: the model's rate; others are
        resampled); long ones segment by segment (see
        :mod:`speechbrain_w2vbert.inference.alignment`).

        Returns
        -------
        Alignment
            The normalised transcript, its segments and words, every word
            with its tokens (``chars``), times and confidences (the mean
            posterior of the path's tokens, in [0, 1]).

        Raises
        ------
        AlignmentError
            Empty transcript, characters outside the model's vocabulary, a
            transcript (or a segment's share of it) too long for its audio.
        NoSpeechError
            A long recording in which the segmenter finds no speech.
        """
        text = normalize_nepali(transcript)
        transcript_ids(self.tokenizer, text)  # names the characters the model cannot write
        wav = self.at_model_rate(wav, sample_rate)
        spans = self.segments(wav)
        log_probs = self.pieces_log_probs([wav[a:b] for a, b in spans])
        words = text.split()
        if len(spans) > 1:
            hypotheses = [self.tokenizer.decode_ctc(lp.argmax(-1).tolist()) for lp in log_probs]
            shares = split_transcript(words, hypotheses)
        else:
            shares = [words]
        segments = []
        for (start, end), lp, share in zip(spans, log_probs, shares):
            segment = Segment(round(start / self.sample_rate, 3), round(end / self.sample_rate, 3), " ".join(share), [])
            if share:
                try:
                    path, _ = align_ids(lp, transcript_ids(self.tokenizer, segment.text),
                                        self.tokenizer.blank_index, self.seconds_per_frame)
                except AlignmentError as error:
                    where = f"segment {segment.start:.2f}-{segment.end:.2f} s: " if len(spans) > 1 else ""
                    raise AlignmentError(f"{where}{error}") from None
                segment.words = self.path_words(path, lp, start / self.sample_rate, characters=True)
            segments.append(segment)
        return Alignment(text, round(wav.shape[0] / self.sample_rate, 3), segments)
