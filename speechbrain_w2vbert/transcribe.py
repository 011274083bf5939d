"""Transcribing real recordings with an ``EncoderASR`` model: audio of any
format, rate and channel count, batches of short files, long files in
overlapping chunks, and word timestamps from the CTC frames.

Long files are cut as transformers' CTC pipeline does with
``chunk_length_s`` / ``stride_length_s``: each chunk of ``chunk`` seconds
overlaps its neighbours by ``stride`` seconds on each side; the frames of
those strides are dropped, the kept frames of all chunks are concatenated
into the frame sequence of the whole file, and that sequence is decoded
once (so a word at a chunk border is neither split nor repeated). Chunk
starts fall on the encoder's frame grid (320 samples = 20 ms for w2v-BERT
2.0), so the kept frames of neighbouring chunks tile the file exactly. The
encoder only ever sees chunk-sized inputs, ``batch_size`` chunks at a time.

Two departures from the pipeline: the last chunk is a whole chunk ending
at the end of the file (the pipeline's last chunk can be a few seconds of
audio with little context), and :func:`stitch_chunks` moves each border
between two chunks, within the middle half of their overlap, to where both
chunks are most confident of a blank (a pause or a gap between characters),
so that no character is dropped or doubled between two chunks that place it
a frame apart. Chunked text still differs from a one-pass transcript where
the cut context changes the model's output (tests/test_cli.py measures it).

Example
-------
>>> spans = chunk_spans(16000 * 50, chunk=16000 * 20, stride=16000 * 4, frame=320)
>>> [(s.start / 16000, s.end / 16000, s.keep_from, s.keep_to) for s in spans]
[(0.0, 20.0, 0, 800), (12.0, 32.0, 200, 800), (24.0, 44.0, 200, 800), (30.0, 50.0, 500, None)]
>>> words = word_timestamps([0, 5, 5, 0, 6, 2, 2, 7, 0, 0], ["", "[UNK]", "|", "क", "ख", "र", "म", "घ"],
...                         seconds_per_frame=0.02)
>>> words
[{'word': 'रम', 'start': 0.02, 'end': 0.1}, {'word': 'घ', 'start': 0.14, 'end': 0.16}]
>>> print(to_srt(words))
1
00:00:00,020 --> 00:00:00,100
रम
<BLANKLINE>
2
00:00:00,140 --> 00:00:00,160
घ
<BLANKLINE>

Authors: speechbrain-w2vbert contributors
"""

import functools
import math
from dataclasses import dataclass
from itertools import groupby
from typing import Dict, List, Optional, Sequence

import torch

__all__ = [
    "AudioError",
    "MIN_SAMPLES",
    "read_audio",
    "Span",
    "chunk_spans",
    "stitch_chunks",
    "samples_per_frame",
    "token_strings",
    "word_timestamps",
    "Transcriber",
    "to_srt",
]

#: Fewest 16 kHz samples a file must have (35 ms: one w2v-BERT frame).
MIN_SAMPLES = 560


@functools.lru_cache(maxsize=None)
def _normalizer(sample_rate: int):
    """SpeechBrain's ``AudioNormalizer`` (average to mono, resample), the one
    ``EncoderASR.load_audio`` uses; it caches its resamplers, so one per rate."""
    from speechbrain.dataio.preprocess import AudioNormalizer

    return AudioNormalizer(sample_rate=sample_rate, mix="avg-to-mono")


class AudioError(ValueError):
    """A file that cannot be transcribed (unreadable, empty, too short)."""


def read_audio(path: str, sample_rate: int = 16000) -> torch.Tensor:
    """Read any file soundfile reads, down-mixed to mono and resampled.

    Training (:class:`speechbrain_w2vbert.training.AudioReader`), the CLI and
    the tests all read audio through this one function.

    Arguments
    ---------
    path : str
        Audio file (WAV, FLAC, OGG, MP3... whatever libsndfile reads).
    sample_rate : int
        Target rate in Hz.

    Returns
    -------
    torch.Tensor
        1-D float32 waveform in [-1, 1].

    Raises
    ------
    AudioError
        The file is unreadable, empty or shorter than :data:`MIN_SAMPLES`.

    Example
    -------
    >>> import os, tempfile, soundfile
    >>> path = os.path.join(tempfile.mkdtemp(), "stereo.wav")
    >>> soundfile.write(path, torch.zeros(8000, 2).numpy(), 8000)
    >>> read_audio(path).shape
    torch.Size([16000])
    >>> soundfile.write(path, torch.zeros(100, 1).numpy(), 8000)
    >>> read_audio(path)
    Traceback (most recent call last):
    ...
    speechbrain_w2vbert.transcribe.AudioError: too short: 0.013 s (200 samples at 16000 Hz; at least 560 needed)
    """
    import soundfile

    try:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)  # [T, C]
    except Exception as error:  # libsndfile's errors are of several types
        raise AudioError(f"unreadable: {error}") from None
    if data.shape[0] == 0:
        raise AudioError("empty: no audio samples")
    wav = _normalizer(sample_rate)(torch.from_numpy(data), rate)
    if wav.shape[0] < MIN_SAMPLES:
        raise AudioError(
            f"too short: {wav.shape[0] / sample_rate:.3f} s ({wav.shape[0]} samples at {sample_rate} Hz; "
            f"at least {MIN_SAMPLES} needed)"
        )
    return wav


@dataclass
class Span:
    """One chunk: samples ``[start, end)`` of the file, and the range
    ``[keep_from, keep_to)`` of its output frames that is kept
    (``keep_to=None``: up to its last frame)."""

    start: int
    end: int
    keep_from: int
    keep_to: Optional[int]


def chunk_spans(num_samples: int, chunk: int, stride: int, frame: int) -> List[Span]:
    """Cut ``num_samples`` into overlapping chunks on the frame grid.

    Arguments
    ---------
    num_samples : int
        Length of the file.
    chunk : int
        Chunk length in samples.
    stride : int
        Context on each side of a chunk whose frames are dropped, in
        samples (the first chunk has none on the left, the last none on
        the right); ``chunk > 2 * stride``.
    frame : int
        Samples per output frame; chunk, stride and starts are rounded to
        multiples of it.

    Returns
    -------
    list of Span
        One span for a file no longer than a chunk. The last chunk ends at
        the end of the file and is a whole chunk (within a frame), so it
        keeps more than ``stride`` of left context.
    """
    chunk, stride = (chunk // frame) * frame, (stride // frame) * frame
    if stride < frame or chunk <= 2 * stride:
        raise ValueError(
            f"need chunk > 2 x stride and stride >= one frame, got chunk {chunk} and stride {stride} samples"
        )
    step = chunk - 2 * stride
    spans, start = [], 0
    while start + chunk < num_samples:
        spans.append(Span(start, start + chunk, 0 if start == 0 else stride // frame, (chunk - stride) // frame))
        start += step
    if not spans:
        return [Span(0, num_samples, 0, None)]
    kept_until = spans[-1].start + chunk - stride  # samples kept so far
    last = -(-(num_samples - chunk) // frame) * frame  # a whole chunk before the end, on the grid
    spans.append(Span(last, num_samples, (kept_until - last) // frame, None))
    return spans


def stitch_chunks(outputs: Sequence[torch.Tensor], spans: Sequence[Span], frame: int, blank_index: int = 0,
                  context: int = 3) -> torch.Tensor:
    """Joins the log-probabilities of overlapping chunks into those of the file.

    Each border sits at the frame, within the middle half of the kept
    strides around the nominal border (``keep_to`` of a chunk, ``keep_from``
    of the next), where the blank log-probabilities of both chunks summed
    over ``context`` frames on each side are largest (ties: the frame
    nearest the nominal border).

    Arguments
    ---------
    outputs : sequence of torch.Tensor
        Log-probabilities [T_i, V] of each chunk.
    spans : sequence of Span
        The chunks, from :func:`chunk_spans`.
    frame : int
        Samples per output frame.
    blank_index : int
        Id of the CTC blank (default 0).
    context : int
        Frames on each side of a candidate border that must be blank too
        (default 3).

    Returns
    -------
    torch.Tensor
        Log-probabilities [T, V] of the whole file, one row per frame.

    Example
    -------
    >>> spans = chunk_spans(16000 * 30, 16000 * 20, 16000 * 4, 320)
    >>> blank = torch.zeros(1500, 3); blank[:, 1:] = -9  # 30 s of confident blanks
    >>> whole = stitch_chunks([blank[0:1000], blank[500:1500]], spans, 320)
    >>> whole.shape
    torch.Size([1500, 3])
    """
    pieces, begin = [], 0  # begin: first frame of the file not yet taken
    for i, (span, out) in enumerate(zip(spans, outputs)):
        offset = span.start // frame
        if i + 1 == len(spans):
            pieces.append(out[begin - offset:])
            break
        after, after_offset = outputs[i + 1], spans[i + 1].start // frame
        nominal = offset + span.keep_to
        reach = max(1, min(out.shape[0] - span.keep_to, spans[i + 1].keep_from) // 2)  # half the strides
        low = max(nominal - reach, after_offset + context, begin + 1)
        high = min(nominal + reach, offset + out.shape[0] - context - 1, after_offset + after.shape[0] - context - 1)
        border = nominal
        if low <= high:
            # score[t]: blank log-probability of both chunks over [t - context, t + context]
            window = torch.arange(low - context, high + context + 1)
            blank = out[window - offset, blank_index] + after[window - after_offset, blank_index]
            score = blank.unfold(0, 2 * context + 1, 1).sum(-1)  # [high - low + 1]
            distance = (torch.arange(low, high + 1) - nominal).abs()
            border = low + int(torch.argmax(score - 1e-6 * distance))
        pieces.append(out[begin - offset:border - offset])
        begin = border
    return torch.cat(pieces)


def samples_per_frame(encoder_config) -> int:
    """Input samples per output frame of an encoder, from its HF config:
    the product of the convolutional strides (wav2vec 2.0 family) or 320
    (w2v-BERT 2.0: 10 ms features stacked by 2), times the adapter's strides.

    Example
    -------
    >>> from transformers import Wav2Vec2BertConfig
    >>> samples_per_frame(Wav2Vec2BertConfig()), samples_per_frame(Wav2Vec2BertConfig(add_adapter=True))
    (320, 640)
    """
    strides = getattr(encoder_config, "conv_stride", None)
    frame = math.prod(strides) if strides else 320
    if getattr(encoder_config, "add_adapter", False):
        frame *= getattr(encoder_config, "adapter_stride", 2) ** getattr(encoder_config, "num_adapter_layers", 1)
    return frame


def token_strings(tokenizer) -> List[str]:
    """Text of each id for word timestamps: ``""`` for the blank, ``"|"``
    before a new word; SentencePiece pieces with ``▁`` as ``"|"`` + piece."""
    if hasattr(tokenizer, "tokens"):  # CharTokenizer
        return ["" if i == tokenizer.blank_index else t for i, t in enumerate(tokenizer.tokens)]
    pieces = [tokenizer.sp.id_to_piece(i) for i in range(tokenizer.sp.get_piece_size())]
    return [""] + ["|" + p[1:] if p.startswith("\u2581") else p for p in pieces]


def word_timestamps(frame_ids: Sequence[int], tokens: Sequence[str], seconds_per_frame: float,
                    offset: float = 0.0) -> List[Dict]:
    """Words with start and end times from greedy CTC frame ids.

    A token starts at the first frame of its run of repeated ids and ends
    after its last; a word runs from its first token's start to its last
    token's end; ``|`` (or a SentencePiece ``▁``) separates words.

    Arguments
    ---------
    frame_ids : sequence of int
        Argmax id of every frame.
    tokens : sequence of str
        :func:`token_strings` of the tokenizer.
    seconds_per_frame : float
        Frame period (0.02 for w2v-BERT 2.0 without adapter).
    offset : float
        Time of frame 0, in seconds.

    Returns
    -------
    list of dict
        ``{"word", "start", "end"}``, times in seconds rounded to 1 ms.
    """
    words, current, frame = [], None, 0
    for token_id, run in groupby(frame_ids):
        length = len(list(run))
        text = tokens[token_id]
        if text:
            if text.startswith("|"):
                current, text = None, text[1:]
            if text and current is None:
                current = {"word": "", "start": frame, "end": frame}
                words.append(current)
            if current is not None:
                current["word"] += text
                current["end"] = frame + length
        frame += length
    return [
        {"word": w["word"], "start": round(offset + w["start"] * seconds_per_frame, 3),
         "end": round(offset + w["end"] * seconds_per_frame, 3)}
        for w in words
    ]


def _srt_time(seconds: float) -> str:
    millis = int(round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def to_srt(words: Sequence[Dict], words_per_cue: int = 1) -> str:
    """SubRip subtitles: one cue per ``words_per_cue`` words."""
    cues = []
    for n, i in enumerate(range(0, len(words), words_per_cue), start=1):
        group = words[i:i + words_per_cue]
        text = " ".join(w["word"] for w in group)
        cues.append(f"{n}\n{_srt_time(group[0]['start'])} --> {_srt_time(group[-1]['end'])}\n{text}\n")
    return "\n".join(cues)


class Transcriber:
    """Transcribes waveforms with an ``EncoderASR`` whose ``encode_batch``
    returns blank-masked CTC log-probabilities (the folders written by
    :func:`speechbrain_w2vbert.export.export_inference_folder`).

    Arguments
    ---------
    asr : speechbrain.inference.ASR.EncoderASR
        The loaded model.
    chunk_length : float
        Seconds per chunk; longer files are chunked (default 20).
    stride_length : float
        Seconds of context dropped on each side of a chunk (default 4).
    batch_size : int
        Files (short ones) or chunks (long ones) per forward pass.
    progress : bool or None
        Progress bar over the chunks of a long file (None: only on a terminal).
    """

    def __init__(self, asr, chunk_length: float = 20.0, stride_length: float = 4.0, batch_size: int = 8,
                 progress: Optional[bool] = None):
        self.asr = asr
        self.sample_rate = int(getattr(asr.hparams, "sample_rate", 16000))
        encoder = getattr(asr.mods.encoder, "encoder", None)  # W2VBertCTC's encoder lobe
        self.frame = samples_per_frame(encoder.model.config) if hasattr(encoder, "model") else 320
        self.seconds_per_frame = self.frame / self.sample_rate
        self.chunk = int(chunk_length * self.sample_rate)
        self.stride = int(stride_length * self.sample_rate)
        chunk_spans(self.chunk + 1, self.chunk, self.stride, self.frame)  # validates the lengths
        self.batch_size = batch_size
        self.progress = progress
        self.tokens = token_strings(asr.tokenizer)

    def read(self, path: str) -> torch.Tensor:
        """:func:`read_audio` at the model's rate."""
        return read_audio(path, self.sample_rate)

    @torch.no_grad()
    def _log_probs(self, wavs: List[torch.Tensor]) -> List[torch.Tensor]:
        """Log-probabilities [T, V] of each waveform, batched and padded
        (frames past a waveform's end are blanks, see ``W2VBertCTC``)."""
        longest = max(w.shape[0] for w in wavs)
        batch = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True)
        lens = torch.tensor([w.shape[0] / longest for w in wavs])
        return list(self.asr.encode_batch(batch, lens).cpu())

    @torch.no_grad()
    def frame_log_probs(self, wav: torch.Tensor) -> torch.Tensor:
        """Log-probabilities [T, V] of one file, chunked if longer than a chunk."""
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

    def decode(self, log_probs: torch.Tensor, timestamps: bool = False) -> Dict:
        """Greedy text (as ``EncoderASR.transcribe_batch`` gives it), and the
        words with times if ``timestamps``."""
        frame_ids = log_probs.argmax(-1).tolist()
        result = {"text": self.asr.tokenizer.decode_ctc(frame_ids)}
        if timestamps:
            result["words"] = word_timestamps(frame_ids, self.tokens, self.seconds_per_frame)
        return result

    def transcribe_waveforms(self, wavs: Sequence[torch.Tensor], timestamps: bool = False) -> List[Dict]:
        """Transcribe waveforms (at the model's rate): short ones batched by
        length, long ones chunked. Returns one dict per waveform, in order:
        ``text``, ``duration`` (s) and, with ``timestamps``, ``words``."""
        results = [None] * len(wavs)
        short = sorted((i for i, w in enumerate(wavs) if w.shape[0] <= self.chunk), key=lambda i: wavs[i].shape[0])
        for start in range(0, len(short), self.batch_size):
            ids = short[start:start + self.batch_size]
            for i, lp in zip(ids, self._log_probs([wavs[i] for i in ids])):
                results[i] = self.decode(lp, timestamps)
        for i, wav in enumerate(wavs):
            if results[i] is None:
                results[i] = self.decode(self.frame_log_probs(wav), timestamps)
        for i, wav in enumerate(wavs):
            results[i]["duration"] = round(wav.shape[0] / self.sample_rate, 3)
        return results
