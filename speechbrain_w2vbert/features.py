"""Batched, device-resident twin of ``SeamlessM4TFeatureExtractor``.

w2v-BERT 2.0 was pre-trained on Kaldi-style 80-bin log-mel filterbanks,
normalised per utterance and per mel bin, with every two consecutive 10 ms
frames stacked into one 160-dim vector (50 frames/s). A model fed anything
else runs but does not learn, so :class:`SeamlessFbank` reproduces
``transformers.SeamlessM4TFeatureExtractor`` exactly; it differs only in how
it computes: in torch, on the waveform's device, for a whole padded batch at
once, and always in fp32.

Authors: speechbrain-w2vbert contributors
"""

import contextlib
from typing import Tuple

import numpy as np
import torch
from transformers.audio_utils import mel_filter_bank, window_function

__all__ = ["SeamlessFbank"]


@contextlib.contextmanager
def _full_fp32_matmul(device: torch.device):
    """Disables TF32 matmuls on CUDA for the block (the mel projection needs
    full fp32: TF32's 10-bit mantissa moves the features by ~1e-3)."""
    if device.type != "cuda":
        yield
        return
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


class SeamlessFbank(torch.nn.Module):
    """Log-mel filterbanks exactly as ``SeamlessM4TFeatureExtractor`` makes them.

    Per utterance: scale to 16-bit range, cut 25 ms frames every 10 ms
    (no padding at the edges), remove each frame's DC offset, pre-emphasise,
    apply the Povey window, take the 512-point power spectrum, apply the
    80-filter Kaldi mel bank (20 Hz to Nyquist), take the log with a floor,
    normalise every mel bin to zero mean and unit (unbiased) variance over
    the utterance's own frames, and stack frame pairs into 160-dim vectors.
    A trailing odd frame is dropped, as the reference's attention mask does.

    The window and the mel filterbank are taken from ``transformers``'
    ``window_function`` and ``mel_filter_bank`` with the reference's
    arguments, so the constants cannot drift from it.

    Arguments
    ---------
    sample_rate : int
        Sampling rate of the input in Hz (default 16000, the only rate the
        pre-trained model knows; resample before calling).
    n_mels : int
        Number of mel bins per 10 ms frame (default 80).
    stride : int
        Number of consecutive frames stacked into one output vector
        (default 2, giving ``n_mels * stride`` = 160 dims at 50 frames/s).
    eps : float
        Added to the variance before the square root in the per-bin
        normalisation (default 1e-7, the reference's value).
    dtype : torch.dtype
        Precision of the computation (default ``torch.float32``): float32 is
        within 1e-3 of the reference (up to ~9e-4 measured), float64 within
        ~3e-6 at about 2.2x the cost. The output is float32 either way.
    cpu_tile_frames : int
        On the CPU, the spectra are computed for about this many frames at a
        time (default 4096), which keeps intermediates small; the result does
        not depend on it. 0 computes the whole batch at once, as on CUDA.

    Example
    -------
    >>> fbank = SeamlessFbank()
    >>> wavs = torch.randn(2, 16000) * 0.1
    >>> wav_lens = torch.tensor([1.0, 0.5])
    >>> feats, feat_lens = fbank(wavs, wav_lens)
    >>> feats.shape
    torch.Size([2, 49, 160])
    >>> feat_lens
    tensor([1.0000, 0.4898])
    >>> bool((feats[1, 24:] == 0).all())
    True
    """

    #: Samples per analysis window (25 ms at 16 kHz).
    FRAME_LENGTH = 400
    #: Samples between windows (10 ms at 16 kHz).
    HOP_LENGTH = 160
    #: FFT size (the window length rounded up to a power of two, as Kaldi).
    FFT_LENGTH = 512
    #: Pre-emphasis coefficient.
    PREEMPHASIS = 0.97
    #: Floor applied to mel energies before the log (float32 machine epsilon).
    MEL_FLOOR = 1.192092955078125e-07

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mels: int = 80,
        stride: int = 2,
        eps: float = 1e-7,
        cpu_tile_frames: int = 4096,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.sample_rate = sample_rate
        self.n_mels = n_mels
        self.stride = stride
        self.eps = eps
        self.cpu_tile_frames = cpu_tile_frames
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"SeamlessFbank computes in float32 or float64, not {dtype}")
        self.dtype = dtype
        mel_filters = mel_filter_bank(
            num_frequency_bins=self.FFT_LENGTH // 2 + 1,
            num_mel_filters=n_mels,
            min_frequency=20,
            max_frequency=sample_rate // 2,
            sampling_rate=sample_rate,
            norm=None,
            mel_scale="kaldi",
            triangularize_in_mel_space=True,
        )
        window = window_function(self.FRAME_LENGTH, "povey", periodic=False)
        # (257, n_mels) and (400,); buffers follow .to(device) but are not
        # saved in checkpoints: they are fixed by the arguments above.
        self.register_buffer(
            "mel_filters", torch.from_numpy(np.asarray(mel_filters, dtype=np.float64)), persistent=False
        )
        self.register_buffer("window", torch.from_numpy(np.asarray(window, dtype=np.float64)), persistent=False)
        # _compute folds each frame's DC removal into a global pre-emphasis,
        # which is exact only because the window ignores a frame's first sample.
        assert window[0] == 0.0, "the Povey window must start at 0"

    @property
    def min_samples(self) -> int:
        """Fewest samples that give one output frame (``stride`` windows)."""
        return self.FRAME_LENGTH + (self.stride - 1) * self.HOP_LENGTH

    def num_frames(self, num_samples: torch.Tensor) -> torch.Tensor:
        """Number of 160-dim output frames for utterances of ``num_samples``.

        Arguments
        ---------
        num_samples : torch.Tensor
            Integer tensor of valid sample counts, any shape.

        Returns
        -------
        torch.Tensor
            Output frame counts, same shape, 0 where the input is too short.

        Example
        -------
        >>> SeamlessFbank().num_frames(torch.tensor([399, 560, 16000]))
        tensor([ 0,  1, 49])
        """
        frames = torch.div(num_samples - self.FRAME_LENGTH, self.HOP_LENGTH, rounding_mode="floor") + 1
        return torch.div(frames.clamp(min=0), self.stride, rounding_mode="floor")

    # Always eager, also inside a torch.compile'd model (SpeechBrain's
    # --compile): the input checks branch on the data, and the tiled in-place
    # writes below are views of one buffer that AOTAutograd cannot merge under
    # dynamic shapes (it fails with "Expected !size_bytes_is_heap_allocated_").
    # The features take no gradient and cost little beside the encoder.
    @torch.compiler.disable
    def forward(
        self, wavs: torch.Tensor, wav_lens: torch.Tensor = None, dtype: torch.dtype = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Computes the normalised, stacked log-mel features of a padded batch.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms [B, T] in [-1, 1] at ``sample_rate``, right-padded.
        wav_lens : torch.Tensor, optional
            Relative lengths [B] in (0, 1] (SpeechBrain's convention); the
            valid samples of utterance ``i`` are ``round(wav_lens[i] * T)``.
            ``None`` means every utterance fills the tensor.
        dtype : torch.dtype, optional
            Compute in this precision for this call instead of ``self.dtype``.

        Returns
        -------
        feats : torch.Tensor
            Features [B, T', n_mels * stride] in fp32, with
            ``T' = num_frames(T)``; frames past an utterance's end hold 0.0.
        feat_lens : torch.Tensor
            Relative lengths [B] of the valid frames (``n_i / T'``).
        """
        num_samples = self._check_inputs(wavs, wav_lens)
        with torch.autocast(device_type=wavs.device.type, enabled=False):
            return self._compute(wavs.to(dtype or self.dtype), num_samples)

    def _check_inputs(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> torch.Tensor:
        """Validates the batch; returns the valid sample count of each row."""
        if wavs.dim() != 2:
            raise ValueError(
                f"SeamlessFbank expects waveforms of shape [batch, time], got {tuple(wavs.shape)}; "
                "down-mix multi-channel audio and add a batch dimension to a single utterance."
            )
        batch, length = wavs.shape
        if wav_lens is None:
            wav_lens = torch.ones(batch, device=wavs.device)
        if wav_lens.shape != (batch,):
            raise ValueError(
                f"wav_lens has shape {tuple(wav_lens.shape)} but the batch holds {batch} waveforms: "
                "give one relative length per utterance."
            )
        bad = ~((wav_lens > 0) & (wav_lens <= 1 + 1e-6))  # NaN is caught too
        if bad.any():
            index = int(bad.nonzero()[0])
            raise ValueError(
                f"wav_lens[{index}] = {float(wav_lens[index])} is not a relative length in (0, 1] "
                f"(SpeechBrain convention: valid samples / {length}, the padded length)."
            )
        num_samples = torch.round(wav_lens.to(wavs.device).double() * length).long().clamp(max=length)
        short = num_samples < self.min_samples
        if short.any():
            index = int(short.nonzero()[0])
            n = int(num_samples[index])
            raise ValueError(
                f"utterance {index} of the batch has {n} samples ({1000 * n / self.sample_rate:.1f} ms): "
                f"SeamlessFbank needs at least {self.min_samples} samples "
                f"({1000 * self.min_samples / self.sample_rate:.0f} ms, {self.stride} windows of 25 ms "
                "at a 10 ms hop) to make one output frame. Drop or pad such utterances "
                "(the OpenSLR 54 preparation drops them with min_duration)."
            )
        return num_samples

    def _log_mel(self, frames: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Log-mel energies [b, n, 80] of pre-emphasised frames [b, n, 400]."""
        batch, count, _ = frames.shape
        # Window the DC-corrected frames straight into the zero-padded FFT buffer.
        buffer = frames.new_empty(batch, count, self.FFT_LENGTH)
        buffer[..., self.FRAME_LENGTH :].zero_()
        windowed = buffer[..., : self.FRAME_LENGTH]
        window = self.window.to(frames.dtype)
        torch.mul(frames, window, out=windowed)
        windowed.addcmul_(offsets, window, value=-1.0)
        spectrum = torch.fft.rfft(buffer)  # [b, n, 257] complex
        power = spectrum.real.square().addcmul_(spectrum.imag, spectrum.imag)
        return torch.matmul(power, self.mel_filters.to(power.dtype)).clamp_(min=self.MEL_FLOOR).log_()

    @torch.no_grad()
    def _compute(self, wavs: torch.Tensor, num_samples: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Features of a validated fp32 batch (see :meth:`forward`)."""
        batch, length = wavs.shape
        all_frames = (length - self.FRAME_LENGTH) // self.HOP_LENGTH + 1  # N: every 10 ms frame
        out_frames = all_frames // self.stride  # T'
        wavs = wavs * 32768.0  # Kaldi works on 16-bit integer amplitudes

        # Per frame, Kaldi removes the mean m, then pre-emphasises:
        #   y[k] = (x[k] - m) - p (x[k-1] - m) = z[k] - (1 - p) m,  k >= 1,
        # with z = x[t] - p x[t-1] taken once over the whole waveform. y[0] is
        # special, but the Povey window is 0 there, so it never counts.
        preemph = torch.cat((wavs[:, :1], wavs[:, 1:] - self.PREEMPHASIS * wavs[:, :-1]), dim=1)  # [B, T]
        frames = preemph.unfold(1, self.FRAME_LENGTH, self.HOP_LENGTH)  # [B, N, 400] view
        offsets = (1.0 - self.PREEMPHASIS) * wavs.unfold(1, self.FRAME_LENGTH, self.HOP_LENGTH).mean(
            dim=-1, keepdim=True
        )  # [B, N, 1]: (1 - p) m

        # On the CPU, frames go through in tiles of about cpu_tile_frames:
        # whole-batch intermediates (tens of MB each) cost more in page faults
        # than in arithmetic (measured 2.4x slower for 16 x 10 s).
        if wavs.device.type == "cpu" and self.cpu_tile_frames:
            step = max(1, self.cpu_tile_frames // batch)
        else:
            step = all_frames
        log_mel = wavs.new_empty(batch, all_frames, self.n_mels)  # [B, N, 80]
        with _full_fp32_matmul(wavs.device):
            for start in range(0, all_frames, step):
                stop = min(start + step, all_frames)
                log_mel[:, start:stop] = self._log_mel(frames[:, start:stop], offsets[:, start:stop])

        # Per-utterance, per-bin normalisation over the utterance's own frames,
        # unbiased (ddof=1) as the reference. The values are shifted by the
        # first frame first: that keeps fp32 precise and makes a bin that is
        # constant over the utterance (digital silence) come out exactly 0.
        valid_frames = torch.div(num_samples - self.FRAME_LENGTH, self.HOP_LENGTH, rounding_mode="floor") + 1
        invalid = (torch.arange(all_frames, device=wavs.device)[None, :] >= valid_frames[:, None]).unsqueeze(-1)
        shifted = (log_mel - log_mel[:, :1]).masked_fill_(invalid, 0.0)  # [B, N, 80]
        count = valid_frames.float()[:, None, None]
        centered = shifted.sub_(shifted.sum(dim=1, keepdim=True) / count).masked_fill_(invalid, 0.0)
        var = centered.square().sum(dim=1, keepdim=True) / (count - 1).clamp(min=1)  # one frame gives 0
        normed = centered.div_(torch.sqrt(var + self.eps))

        # Stack frame pairs: [B, N, 80] -> [B, T', 80 * stride]; frame 2k then
        # 2k + 1. A trailing odd frame counted in the statistics but is dropped.
        feats = normed[:, : out_frames * self.stride].reshape(batch, out_frames, self.n_mels * self.stride)
        feat_frames = torch.div(valid_frames, self.stride, rounding_mode="floor")
        feats.masked_fill_((torch.arange(out_frames, device=wavs.device)[None, :] >= feat_frames[:, None]).unsqueeze(-1), 0.0)
        return feats.float(), feat_frames.float() / out_frames
