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

from typing import List, Optional, Sequence, Tuple, Union

import torch

from speechbrain_w2vbert.audio import AudioError, read_audio, resample
from speechbrain_w2vbert.inference.alignment import AlignmentError, align_ids, split_transcript, transcript_ids
from speechbrain_w2vbert.inference.chunking import chunk_spans, stitch_chunks
from speechbrain_w2vbert.inference.folder import asr_model
from speechbrain_w2vbert.inference.results import Alignment, Segment, Transcript, Word
from speechbrain_w2vbert.inference.segmentation import VoiceActivitySegmenter
from speechbrain_w2vbert.inference.timestamps import token_strings, word_times, word_timestamps
from speechbrain_w2vbert.text.normalize import normalize_nepali

__all__ = ["Transcriber", "NoSpeechError"]


class NoSpeechError(AudioError):
    """The voice-activity detector found no speech in a recording."""


class Transcriber:
    """Transcribes and aligns waveforms with an ``EncoderASR`` whose
    ``encode_batch`` returns blank-masked CTC log-probabilities (the folders
    written by :func:`speechbrain_w2vbert.inference.folder.export_inference_folder`).

    Arguments
    ---------
    asr : speechbrain.inference.ASR.EncoderASR
        The loaded model.
    chunk_length : float
        Seconds per chunk: longer files are segmented, longer segments
        chunked (default 20).
    stride_length : float
        Seconds of context dropped on each side of a chunk (default 4).
    batch_size : int
        Files, segments or chunks per forward pass (default 8).
    progress : bool or None
        Progress bar over the chunks of a long file (None: only on a terminal).
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
        self.decoder = decoder
        self.sample_rate = int(getattr(asr.hparams, "sample_rate", 16000))
        encoder = asr_model(asr).encoder
        self.min_samples = encoder.min_samples
        self.frame = encoder.samples_per_frame
        self.seconds_per_frame = self.frame / self.sample_rate
        self.chunk = int(chunk_length * self.sample_rate)
        self.stride = int(stride_length * self.sample_rate)
        chunk_spans(self.chunk + 1, self.chunk, self.stride, self.frame)  # validates the lengths
        self.batch_size = batch_size
        self.progress = progress
        if segmenter == "vad":
            segmenter = VoiceActivitySegmenter(self.sample_rate)
        elif isinstance(segmenter, str):
            raise ValueError(f"segmenter must be 'vad', None or a VoiceActivitySegmenter, got {segmenter!r}")
        self.segmenter = segmenter
        self.tokenizer = asr.tokenizer
        self.tokens = token_strings(asr.tokenizer)

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

    @torch.no_grad()
    def frame_log_probs(self, wav: torch.Tensor) -> torch.Tensor:
        """Log-probabilities [T, V] of one waveform, chunked if longer than a chunk."""
        from tqdm import tqdm

        spans = chunk_spans(wav.shape[0], self.chunk, self.stride, self.frame)
        if len(spans) == 1:
            return self._log_probs([wav])[0]
        # Whole chunks are batched; the last one (up to a frame shorter) runs alone, unpadded.
        groups = [spans[:-1][i:i + self.batch_size] for i in range(0, len(spans) - 1, self.batch_size)]
        groups.append(spans[-1:])
        outputs = []
        disable = None if self.progress is None else not self.progress  # None: only on a terminal
        with tqdm(total=len(spans), unit="chunk", disable=disable, leave=False) as bar:
            for group in groups:
                outputs.extend(self._log_probs([wav[s.start:s.end] for s in group]))
                bar.update(len(group))
        return stitch_chunks(outputs, spans, self.frame, self.asr.tokenizer.blank_index)

    def pieces_log_probs(self, pieces: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """Log-probabilities [T, V] of each waveform: those up to a chunk
        long batched by length, longer ones chunked."""
        results: List[Optional[torch.Tensor]] = [None] * len(pieces)
        short = sorted((i for i, w in enumerate(pieces) if w.shape[0] <= self.chunk),
                       key=lambda i: pieces[i].shape[0])
        for start in range(0, len(short), self.batch_size):
            ids = short[start:start + self.batch_size]
            for i, lp in zip(ids, self._log_probs([pieces[i] for i in ids])):
                results[i] = lp
        for i, wav in enumerate(pieces):
            if results[i] is None:
                results[i] = self.frame_log_probs(wav)
        return results

    def segments(self, wav: torch.Tensor) -> List[Tuple[int, int]]:
        """Sample spans ``[(start, end), ...]`` transcribed separately: the
        whole waveform when it is no longer than a chunk or there is no
        segmenter, else its speech segments.

        Raises
        ------
        NoSpeechError
            The segmenter found no speech.
        """
        if wav.shape[0] <= self.chunk or self.segmenter is None:
            return [(0, wav.shape[0])]
        spans = self.segmenter(wav)
        if not spans:
            raise NoSpeechError(f"no speech found by the voice-activity detector in "
                                f"{wav.shape[0] / self.sample_rate:.1f} s (fixed chunks, --segment fixed or segmenter=None, "
                                "transcribe it anyway)")
        return spans

    def path_words(self, path: Sequence[int], log_probs: torch.Tensor, offset: float = 0.0,
                   characters: bool = False) -> List[Word]:
        """Words with times and confidences of a frame path through ``log_probs``."""
        probs = log_probs.gather(1, torch.as_tensor(path)[:, None]).squeeze(1).exp().tolist()
        return word_timestamps(path, self.tokens, self.seconds_per_frame, offset, probs, characters)

    def decode(self, log_probs: torch.Tensor, timestamps: bool = False,
               offset: float = 0.0) -> Tuple[str, Optional[List[Word]]]:
        """Greedy text (as ``EncoderASR.transcribe_batch`` gives it) or the
        beam search's with the decoder, and with ``timestamps`` the words
        with times (from ``offset`` seconds) and confidences (the posteriors
        of the greedy path, or of the beam search's text aligned); None
        without ``timestamps``."""
        if self.decoder is not None:
            text, spans = self.decoder.decode_with_words([log_probs])[0]
            words = None
            if timestamps:
                try:
                    path, _ = align_ids(log_probs, self.tokenizer.encode(text), self.tokenizer.blank_index)
                    words = self.path_words(path, log_probs, offset)
                except AlignmentError:  # no text, or one it cannot spell: the searcher's spans (end on their last frame)
                    words = word_times([(w, s, e + 1) for w, s, e in spans], self.seconds_per_frame, offset)
            return text, words
        path = log_probs.argmax(-1).tolist()
        return self.tokenizer.decode_ctc(path), self.path_words(path, log_probs, offset) if timestamps else None

    def at_model_rate(self, wav: torch.Tensor, sample_rate: Optional[int]) -> torch.Tensor:
        """``wav`` (1-D, at ``sample_rate`` Hz; None: the model's rate)
        resampled to the model's rate, as :func:`read_audio` resamples files."""
        if wav.dim() != 1:
            raise ValueError(f"expected a 1-D waveform (mono), got shape {tuple(wav.shape)}")
        if sample_rate is None or sample_rate == self.sample_rate:
            return wav
        return resample(wav, sample_rate, self.sample_rate)

    def transcribe_waveforms(self, wavs: Sequence[torch.Tensor], timestamps: bool = False,
                             sample_rate: Optional[int] = None) -> List[Union[Transcript, AudioError]]:
        """Transcribe 1-D waveforms at ``sample_rate`` Hz (default: the
        model's rate; others are resampled).

        Returns
        -------
        list of Transcript or AudioError
            One per waveform, in order: its :class:`~speechbrain_w2vbert.inference.results.Transcript`
            (words in each segment with ``timestamps``), or the
            :class:`NoSpeechError` of a waveform in which the segmenter finds
            no speech.
        """
        results: List[Union[Transcript, AudioError]] = []
        items, pieces = [], []  # (waveform, start, end) of each piece
        wavs = [self.at_model_rate(w, sample_rate) for w in wavs]
        for i, wav in enumerate(wavs):
            try:
                spans = self.segments(wav)
            except NoSpeechError as error:
                results.append(error)
                continue
            results.append(Transcript("", round(wav.shape[0] / self.sample_rate, 3), []))
            for start, end in spans:
                items.append((i, start, end))
                pieces.append(wav[start:end])
        for (i, start, end), lp in zip(items, self.pieces_log_probs(pieces)):
            text, words = self.decode(lp, timestamps, offset=start / self.sample_rate)
            results[i].segments.append(Segment(round(start / self.sample_rate, 3), round(end / self.sample_rate, 3),
                                               text, words))
        for result in results:
            if isinstance(result, Transcript):
                result.text = " ".join(s.text for s in result.segments if s.text)
        return results

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
