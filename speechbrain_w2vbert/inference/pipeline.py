"""How recordings become transcripts, whatever runs the network: batches of
short waveforms (sorted by length); long ones cut at pauses into speech
segments (:mod:`speechbrain_w2vbert.inference.segmentation`), a segment
longer than a chunk (or, without a segmenter, the whole waveform) in
overlapping chunks (:mod:`speechbrain_w2vbert.inference.chunking`); greedy
or beam-search decoding; word timestamps and confidences
(:mod:`speechbrain_w2vbert.inference.timestamps`).

:class:`TranscriptionPipeline` holds all of that; a backend subclass says
only how waveforms become log-probabilities, how files are read and
resampled, and how a known text is aligned to log-probabilities:
:class:`~speechbrain_w2vbert.inference.transcriber.Transcriber` (PyTorch,
``EncoderASR``) and :class:`~speechbrain_w2vbert.onnx.runtime.OnnxTranscriber`
(onnxruntime, no torch). Waveforms and log-probabilities are whatever the
backend uses (torch tensors or numpy arrays): this module only slices them
and reads their shapes.

Nothing here needs torch.

Authors: speechbrain-w2vbert contributors
"""

from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from speechbrain_w2vbert.audio import AudioError
from speechbrain_w2vbert.inference.chunking import chunk_spans, stitch_chunks
from speechbrain_w2vbert.inference.results import Segment, Transcript, Word
from speechbrain_w2vbert.inference.timestamps import token_strings, word_times, word_timestamps

__all__ = ["TranscriptionPipeline", "NoSpeechError"]


class NoSpeechError(AudioError):
    """The voice-activity detector found no speech in a recording."""


class TranscriptionPipeline:
    """Transcription of waveforms by a CTC model (see the module docstring).

    Arguments
    ---------
    tokenizer : CharTokenizer or SentencePieceCTCTokenizer
        The model's tokenizer (``decode_ctc``, ``encode``, ``tokens``, ``blank_index``).
    sample_rate : int
        The model's rate in Hz.
    min_samples : int
        The shortest input (samples) that gives one output frame.
    samples_per_frame : int
        Input samples per output frame.
    chunk_length : float
        Seconds per chunk: longer waveforms are segmented, longer segments
        chunked (default 20).
    stride_length : float
        Seconds of context dropped on each side of a chunk (default 4).
    batch_size : int
        Waveforms, segments or chunks per forward pass (default 8).
    progress : bool or None
        Progress bar over the chunks of a long waveform (None: only on a terminal).
    decoder : object, optional
        Beam search instead of greedy decoding: an object with
        ``decode_with_words(log_probs_list) -> [(text, [(word, first frame,
        last frame), ...]), ...]`` (:class:`~speechbrain_w2vbert.lm.beam.LMBeamDecoder`,
        or the ONNX runtime's pyctcdecode decoder).
    segmenter : callable or None
        Cuts waveforms longer than a chunk into speech spans ``[(start, end),
        ...]`` (a :class:`~speechbrain_w2vbert.inference.segmentation.VoiceActivitySegmenter`);
        None cuts them in fixed overlapping chunks only.
    """

    def __init__(self, tokenizer, sample_rate: int, min_samples: int, samples_per_frame: int,
                 chunk_length: float = 20.0, stride_length: float = 4.0, batch_size: int = 8,
                 progress: Optional[bool] = None, decoder=None, segmenter=None):
        self.tokenizer = tokenizer
        self.tokens = token_strings(tokenizer)
        self.decoder = decoder
        self.sample_rate = int(sample_rate)
        self.min_samples = int(min_samples)
        self.frame = int(samples_per_frame)
        self.seconds_per_frame = self.frame / self.sample_rate
        self.chunk = int(chunk_length * self.sample_rate)
        self.stride = int(stride_length * self.sample_rate)
        chunk_spans(self.chunk + 1, self.chunk, self.stride, self.frame)  # validates the lengths
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.progress = progress
        self.segmenter = segmenter

    # ------------------------------------------------------ backend hooks
    def read(self, path: str):
        """A file's waveform at the model's rate (raises ``AudioError``)."""
        raise NotImplementedError

    def at_model_rate(self, wav, sample_rate: Optional[int]):
        """``wav`` (1-D, at ``sample_rate`` Hz; None: the model's rate) at the model's rate."""
        raise NotImplementedError

    def _log_probs(self, wavs: List) -> List:
        """Log-probabilities [T, V] of each waveform (frames past a
        waveform's end are not returned or are blanks)."""
        raise NotImplementedError

    def _align(self, log_probs, text: str) -> Optional[List[int]]:
        """The frame path of ``text`` through ``log_probs`` (forced
        alignment), or None where it cannot be aligned."""
        return None

    # ------------------------------------------------------ the pipeline
    def frame_log_probs(self, wav):
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
        return stitch_chunks(outputs, spans, self.frame, self.tokenizer.blank_index)

    def pieces_log_probs(self, pieces: Sequence) -> List:
        """Log-probabilities [T, V] of each waveform: those up to a chunk
        long batched by length, longer ones chunked."""
        results: List = [None] * len(pieces)
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

    def segments(self, wav) -> List[Tuple[int, int]]:
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

    def path_words(self, path: Sequence[int], log_probs, offset: float = 0.0,
                   characters: bool = False) -> List[Word]:
        """Words with times and confidences of a frame path through ``log_probs``."""
        array = np.asarray(log_probs, dtype=np.float32)
        probs = np.exp(array[np.arange(len(path)), np.asarray(path, dtype=np.int64)]).tolist()
        return word_timestamps(path, self.tokens, self.seconds_per_frame, offset, probs, characters)

    def decode(self, log_probs, timestamps: bool = False, offset: float = 0.0) -> Tuple[str, Optional[List[Word]]]:
        """Greedy text (as ``EncoderASR.transcribe_batch`` gives it) or the
        beam search's with the decoder, and with ``timestamps`` the words
        with times (from ``offset`` seconds) and confidences (the posteriors
        of the greedy path, or of the beam search's text aligned); None
        without ``timestamps``."""
        if self.decoder is not None:
            text, spans = self.decoder.decode_with_words([log_probs])[0]
            words = None
            if timestamps:
                path = self._align(log_probs, text) if text else None
                if path is not None:
                    words = self.path_words(path, log_probs, offset)
                else:  # no text, or one it cannot spell: the searcher's spans (end on their last frame)
                    words = word_times([(w, s, e + 1) for w, s, e in spans], self.seconds_per_frame, offset)
            return text, words
        path = np.asarray(log_probs).argmax(-1).tolist()
        return self.tokenizer.decode_ctc(path), self.path_words(path, log_probs, offset) if timestamps else None

    def transcribe_waveforms(self, wavs: Sequence, timestamps: bool = False,
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
