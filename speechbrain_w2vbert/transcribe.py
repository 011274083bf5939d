"""Transcribing real recordings with an ``EncoderASR`` model: batches of
short files (sorted by length), long files in overlapping chunks
(:mod:`speechbrain_w2vbert.chunking`), word timestamps
(:mod:`speechbrain_w2vbert.timestamps`); audio is read by
:func:`speechbrain_w2vbert.audio.read_audio`.

Authors: speechbrain-w2vbert contributors
"""

from typing import Dict, List, Optional, Sequence

import torch

from speechbrain_w2vbert.audio import read_audio
from speechbrain_w2vbert.chunking import chunk_spans, stitch_chunks
from speechbrain_w2vbert.timestamps import token_strings, word_times, word_timestamps

__all__ = ["Transcriber"]


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
    decoder : speechbrain_w2vbert.decoding.LMBeamDecoder, optional
        Beam search (with its LM) instead of greedy decoding.
    """

    def __init__(self, asr, chunk_length: float = 20.0, stride_length: float = 4.0, batch_size: int = 8,
                 progress: Optional[bool] = None, decoder=None):
        self.asr = asr
        self.decoder = decoder
        self.sample_rate = int(getattr(asr.hparams, "sample_rate", 16000))
        encoder = asr.mods.encoder.encoder  # EncoderCTC's encoder lobe
        self.frame = encoder.samples_per_frame
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
        (frames past a waveform's end are blanks, see ``EncoderCTC``)."""
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
        """Greedy text (as ``EncoderASR.transcribe_batch`` gives it) or the
        beam search's with the decoder, and the words with times if
        ``timestamps``."""
        if self.decoder is not None:
            text, words = self.decoder.decode_with_words([log_probs])[0]
            result = {"text": text}
            if timestamps:  # the searcher's spans end on their last frame
                result["words"] = word_times([(w, s, e + 1) for w, s, e in words], self.seconds_per_frame)
            return result
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
