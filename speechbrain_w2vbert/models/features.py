"""Batched, device-resident twin of ``SeamlessM4TFeatureExtractor``.

w2v-BERT 2.0 was pre-trained on Kaldi-style 80-bin log-mel filterbanks,
normalised per utterance and per mel bin, with every two consecutive 10 ms
frames stacked into one 160-dim vector (50 frames/s). A model fed anything
else runs but does not learn, so :class:`SeamlessFbank` reproduces
``transformers.SeamlessM4TFeatureExtractor`` exactly; it differs only in how
it computes: in torch, on the waveform's device, for a whole padded batch at
once.

The power spectrum is computed in fp64 (from the waveform on), the rest in
fp32: an fp32 FFT rounds the bins far below a frame's loudest badly enough to
move the normalised features of band-limited audio and speech beside
digital silence by up to ~1e-3, where the reference computes that stage in
fp64. See docs/design.md#the-frontend-in-fp64 for the analysis and the
figures.

Authors: speechbrain-w2vbert contributors
"""

import contextlib
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from transformers.audio_utils import mel_filter_bank, window_function

from speechbrain_w2vbert.models.lengths import absolute_lengths, relative_lengths, valid_mask

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

    How it computes (the result does not depend on it, to float rounding):
    on the CPU only the frames of each utterance, never its padding, go
    through the spectra, in tiles of ``tile_frames`` frames packed across
    utterances. Tiles keep a fixed set of shapes (the tile, or a power of two
    for the last one of a call), so each FFT plan is made once, and the
    buffers are kept between calls (the tile's, about 2 MB, and two fp64
    copies of the largest batch seen, 8 bytes a sample each): a call on a new
    batch shape after other work costs what a repeated call costs. On CUDA
    the whole batch goes through a few large kernels at once. Because of
    those buffers, one instance must not run in several threads at once.

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
    tile_frames : int, optional
        Frames per tile of the spectral stage (None, the default: 256 on the
        CPU, where small tiles stay in the caches; 0 elsewhere). 0 computes
        the whole batch at once, padding included, as on CUDA.
    dtype : torch.dtype
        Precision of the mel projection, the log and the normalisation
        (default ``torch.float32``; ``torch.float64`` computes everything in
        fp64). The output is float32 either way.
    spectral_dtype : torch.dtype
        Precision from the waveform to the power spectrum (default
        ``torch.float64``; never below ``dtype``). ``torch.float32`` is
        faster on the CPU but not exact (see the module docstring).

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
    #: Default frames per tile of the spectral stage, by device type (0, the
    #: default elsewhere: the whole batch at once).
    TILE_FRAMES = {"cpu": 256}
    #: The smallest tile (the last tile of a call is rounded up to a power of two, at least this).
    MIN_TILE_FRAMES = 64

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mels: int = 80,
        stride: int = 2,
        eps: float = 1e-7,
        tile_frames: Optional[int] = None,
        dtype: torch.dtype = torch.float32,
        spectral_dtype: torch.dtype = torch.float64,
    ):
        super().__init__()
        self.sample_rate = sample_rate
        self.n_mels = n_mels
        self.stride = stride
        self.eps = eps
        if tile_frames is not None and tile_frames < 0:
            raise ValueError(f"tile_frames must be >= 0 (0: one tile per call), got {tile_frames}")
        self.tile_frames = tile_frames
        for name, value in (("dtype", dtype), ("spectral_dtype", spectral_dtype)):
            if value not in (torch.float32, torch.float64):
                raise ValueError(f"SeamlessFbank computes in float32 or float64, not {value} ({name})")
        self.dtype = dtype
        self.spectral_dtype = torch.float64 if torch.float64 in (dtype, spectral_dtype) else torch.float32
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
        self._constants_fp64 = {"window": np.asarray(window, dtype=np.float64),
                                "mel_filters": np.asarray(mel_filters, dtype=np.float64)}
        self._mel_blocks = self._two_blocks(np.asarray(mel_filters))
        self._workspaces: Dict[tuple, object] = {}  # buffers and constants kept between calls

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
    # --compile): the input checks and the tiling branch on the data, and
    # the tiled writes are views of one buffer that AOTAutograd cannot merge
    # under dynamic shapes (it fails with "Expected !size_bytes_is_heap_allocated_").
    # The features take no gradient and cost little beside the encoder.
    @torch.compiler.disable
    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Computes the normalised, stacked log-mel features of a padded batch.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms [B, T] in [-1, 1] at ``sample_rate``, right-padded.
        wav_lens : torch.Tensor, optional
            Relative lengths [B] in (0, 1] (SpeechBrain's convention); the
            valid samples of utterance ``i`` are ``round(wav_lens[i] * T)``.
            ``None`` means every utterance fills the tensor.

        Returns
        -------
        feats : torch.Tensor
            Features [B, T', n_mels * stride] in fp32, with
            ``T' = num_frames(T)``; frames past an utterance's end hold 0.0.
        feat_lens : torch.Tensor
            Relative lengths [B] of the valid frames (``n_i / T'``).
        """
        num_samples = self._check_inputs(wavs, wav_lens)  # list of valid sample counts
        with torch.autocast(device_type=wavs.device.type, enabled=False):
            return self._compute(wavs.float(), num_samples, self.dtype, self.spectral_dtype)

    def _apply(self, fn, *args, **kwargs):
        """As ``nn.Module._apply`` (``.to()``, ``.cuda()``, ``.half()``, ...),
        but the window and the filterbank stay fp64 (a ``.half()`` of the
        whole model must not round them), and the buffers kept between calls,
        which belong to the old device, are dropped."""
        getattr(self, "_workspaces", {}).clear()
        module = super()._apply(fn, *args, **kwargs)
        for name in ("window", "mel_filters"):
            value = getattr(self, name)
            if value.dtype != torch.float64:
                setattr(self, name, torch.from_numpy(self._constants_fp64[name]).to(value.device))
        return module

    def _check_inputs(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> List[int]:
        """Validates the batch; returns the valid sample count of each row
        (one transfer of the lengths, checked on the host)."""
        if wavs.dim() != 2:
            raise ValueError(
                f"SeamlessFbank expects waveforms of shape [batch, time], got {tuple(wavs.shape)}; "
                "down-mix multi-channel audio and add a batch dimension to a single utterance."
            )
        batch, length = wavs.shape
        if wav_lens is not None and wav_lens.shape != (batch,):
            raise ValueError(
                f"wav_lens has shape {tuple(wav_lens.shape)} but the batch holds {batch} waveforms: "
                "give one relative length per utterance."
            )
        wav_lens = torch.ones(batch, dtype=torch.float64) if wav_lens is None else wav_lens.detach().cpu()
        for index, relative in enumerate(wav_lens.double().tolist()):
            if not 0 < relative <= 1 + 1e-6:  # NaN is caught too
                raise ValueError(
                    f"wav_lens[{index}] = {relative} is not a relative length in (0, 1] "
                    f"(SpeechBrain convention: valid samples / {length}, the padded length)."
                )
        num_samples = absolute_lengths(wav_lens, length).tolist()
        for index, n in enumerate(num_samples):
            if n < self.min_samples:
                raise ValueError(
                    f"utterance {index} of the batch has {n} samples ({1000 * n / self.sample_rate:.1f} ms): "
                    f"SeamlessFbank needs at least {self.min_samples} samples "
                    f"({1000 * self.min_samples / self.sample_rate:.0f} ms, {self.stride} windows of 25 ms "
                    "at a 10 ms hop) to make one output frame. Drop or pad such utterances "
                    "(the OpenSLR 54 preparation drops them with min_duration)."
                )
        return num_samples

    def _buffer(self, name: str, device: torch.device, dtype: torch.dtype, shape: Tuple[int, ...]) -> torch.Tensor:
        """A buffer kept between calls, at least as large as ``shape`` (its
        contents are whatever the last call left)."""
        key = (name, device, dtype)
        size = int(np.prod(shape))
        buffer = self._workspaces.get(key)
        if buffer is None or buffer.numel() < size:
            buffer = self._workspaces[key] = torch.empty(size, dtype=dtype, device=device)
        return buffer[:size].view(shape)

    def _fft_input(self, device: torch.device, dtype: torch.dtype, rows: int) -> torch.Tensor:
        """The FFT input of one tile size [rows, 512], kept between calls:
        column 0 (the window's zero) and the zero padding are written once."""
        key = ("fft_in", device, dtype, rows)
        fft_in = self._workspaces.get(key)
        if fft_in is None:
            fft_in = self._workspaces[key] = torch.zeros(rows, self.FFT_LENGTH, dtype=dtype, device=device)
        return fft_in

    @staticmethod
    def _two_blocks(filters: np.ndarray) -> List[Tuple[int, int, int, int]]:
        """(first bin, end bin, first filter, end filter) of the two dense
        blocks of the filterbank that the mel projection multiplies: filters
        [0, f) over the bins they cover, and [f, 80) over theirs, with the
        split f that needs the fewest multiply-adds.

        Each FFT bin lies in at most two of the triangular filters, so the
        dense (257, 80) product does 40 times the work it needs; the two
        blocks halve it and stay large enough for BLAS.
        """
        def bins_of(f0, f1):
            """The bin range the filters [f0, f1) cover."""
            used = np.flatnonzero(filters[:, f0:f1].any(axis=1))
            return int(used[0]), int(used[-1]) + 1

        count = filters.shape[1]
        best = None
        for split in range(1, count):
            (a0, a1), (c0, c1) = bins_of(0, split), bins_of(split, count)
            cost = (a1 - a0) * split + (c1 - c0) * (count - split)
            if best is None or cost < best[0]:
                best = (cost, [(a0, a1, 0, split), (c0, c1, split, count)])
        return best[1]

    def _constants(self, device: torch.device, spectral_dtype: torch.dtype, dtype: torch.dtype) -> dict:
        """The window with the 16-bit scaling folded in (x 32768, exact) in
        ``spectral_dtype``, and the mel filterbank's two blocks in ``dtype``."""
        key = ("constants", device, spectral_dtype, dtype)
        constants = self._workspaces.get(key)
        if constants is None:
            window = self.window[1:].to(device, spectral_dtype) * 32768.0  # w[k] for k >= 1 (w[0] = 0)
            filters = self.mel_filters.to(device, dtype)
            blocks = [(b0, b1, f0, f1, filters[b0:b1, f0:f1].contiguous()) for b0, b1, f0, f1 in self._mel_blocks]
            constants = self._workspaces[key] = {"window": window, "mel_blocks": blocks}
        return constants

    def _log_mel(self, fft_in: torch.Tensor, constants: dict, power: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel energies of windowed, zero-padded frames [R, 512], written
        into ``mel`` [R, 80]; ``power`` [R, 257] is scratch in ``mel``'s
        dtype for the power spectrum."""
        spectrum = torch.fft.rfft(fft_in)  # [R, 257] complex, in fft_in's precision (out= would cost a copy)
        # |X|^2 in the spectrum's precision, then stored in mel's (the
        # reference stores the spectrum itself as complex64).
        squared = spectrum.real.mul(spectrum.real).addcmul_(spectrum.imag, spectrum.imag)
        power = squared if squared.dtype == power.dtype else power.copy_(squared)
        for b0, b1, f0, f1, weights in constants["mel_blocks"]:  # filters [f0, f1) lie in bins [b0, b1)
            torch.mm(power[:, b0:b1], weights, out=mel[:, f0:f1])
        return mel.clamp_(min=self.MEL_FLOOR).log_()

    def _preemphasis(self, wavs: torch.Tensor, dtype: torch.dtype, cached: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        """Pre-emphasised waveforms and each 10 ms frame's DC term.

        Per frame, Kaldi removes the mean m, pre-emphasises and windows:
        ``y[k] = ((x[k] - m) - p (x[k-1] - m)) w[k] = (z[k] - (1 - p) m) w[k]``
        for k >= 1, with ``z = x[t] - p x[t-1]`` taken once over the whole
        waveform; y[0] does not count, as the Povey window is 0 there.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms [B, T] in fp32.
        dtype : torch.dtype
            Precision of z and of the DC terms.
        cached : bool
            Write into buffers kept between calls (the CPU path: no page
            faults on fresh memory at every call).

        Returns
        -------
        z : torch.Tensor
            [B, T] in ``dtype``.
        offsets : torch.Tensor
            ``(1 - p) m`` of every frame, [B, N, 1] in ``dtype``. The frame
            means come from fp64 sums of 80-sample blocks, so a frame of
            digital silence gets exactly 0.
        """
        batch, length = wavs.shape
        frames = (length - self.FRAME_LENGTH) // self.HOP_LENGTH + 1

        def buffer(name, buffer_dtype):
            """A [B, T] buffer: kept between calls on the CPU, fresh on CUDA."""
            if cached:
                return self._buffer(name, wavs.device, buffer_dtype, (batch, length))
            return torch.empty(batch, length, dtype=buffer_dtype, device=wavs.device)

        x = buffer("wav64", torch.float64).copy_(wavs)
        z = buffer("preemphasis", dtype)
        # On the flat [B * T] buffer: z[:, 0] then holds the previous row's
        # carry-over, which no frame uses (w[0] = 0).
        flat = z.view(-1)
        flat[0] = x[0, 0]
        torch.sub(x.view(-1)[1:], x.view(-1)[:-1], alpha=self.PREEMPHASIS, out=flat[1:])
        # Frame sums from sums of 80-sample blocks (hop = 2 blocks, window =
        # 5), in fp64: exactly 0 for a frame of digital silence.
        block = self.HOP_LENGTH // 2
        blocks = x[:, : block * (2 * frames + 3)].reshape(batch, -1, block).sum(-1)  # [B, 2N + 3]
        window_blocks = self.FRAME_LENGTH // block
        sums = blocks[:, 0 : 2 * frames : 2].clone()
        for j in range(1, window_blocks):
            sums.add_(blocks[:, j : j + 2 * frames : 2])
        offsets = sums.mul_((1.0 - self.PREEMPHASIS) / self.FRAME_LENGTH)
        return z, offsets.to(dtype).unsqueeze(-1)

    def _tile_rows(self, device: torch.device) -> int:
        """Frames per tile on ``device`` (0: the whole batch at once)."""
        if self.tile_frames is not None:
            return self.tile_frames
        return self.TILE_FRAMES.get(device.type, 0)

    def _spectra_batched(self, wavs: torch.Tensor, log_mel: torch.Tensor, spectral_dtype: torch.dtype) -> None:
        """Log-mel energies of every frame of the batch at once, padding
        included (the CUDA path: a few large kernels)."""
        batch, frames = log_mel.shape[:2]
        constants = self._constants(wavs.device, spectral_dtype, log_mel.dtype)
        z, offsets = self._preemphasis(wavs, spectral_dtype, cached=False)
        fft_in = torch.zeros(batch * frames, self.FFT_LENGTH, dtype=spectral_dtype, device=wavs.device)
        windowed = fft_in.view(batch, frames, -1)[..., 1 : self.FRAME_LENGTH]
        torch.mul(z.unfold(1, self.FRAME_LENGTH, self.HOP_LENGTH)[..., 1:], constants["window"], out=windowed)
        windowed.addcmul_(offsets, constants["window"], value=-1.0)
        power = torch.empty(batch * frames, self.FFT_LENGTH // 2 + 1, dtype=log_mel.dtype, device=wavs.device)
        self._log_mel(fft_in, constants, power, log_mel.view(batch * frames, -1))

    def _spectra_packed(self, wavs: torch.Tensor, counts: List[int], log_mel: torch.Tensor,
                        spectral_dtype: torch.dtype, tile: int) -> None:
        """Log-mel energies of the valid frames only (the CPU path), packed
        across utterances into tiles of ``tile`` frames; ``log_mel`` keeps
        its padded frames as they are.

        Tiles keep a fixed set of shapes (the last one of a call is the
        smallest power of two that holds it), so FFT plans are made once, and
        every buffer but the FFT's output is kept between calls: a call on a
        new batch shape after other work costs what a repeated call costs.
        """
        device, dtype = wavs.device, log_mel.dtype
        constants = self._constants(device, spectral_dtype, dtype)
        window = constants["window"]
        fft_in = self._fft_input(device, spectral_dtype, tile)
        power = self._buffer("power", device, dtype, (tile, self.FFT_LENGTH // 2 + 1))
        mel = self._buffer("mel", device, dtype, (tile, self.n_mels))
        z, offsets = self._preemphasis(wavs, spectral_dtype, cached=True)
        frames = z.unfold(1, self.FRAME_LENGTH, self.HOP_LENGTH)  # [B, N, 400] view
        pending = []  # (utterance, first frame, frames, tile row) in fft_in, not yet transformed

        def transform(filled):
            """Log-mel of the tile's first ``filled`` frames, copied to their utterances."""
            rows = filled if filled == tile else min(tile, max(self.MIN_TILE_FRAMES, 1 << (filled - 1).bit_length()))
            done = self._log_mel(fft_in[:rows], constants, power[:rows], mel[:rows])
            for utterance, first, count, row in pending:
                log_mel[utterance, first : first + count] = done[row : row + count]
            pending.clear()

        filled = 0
        for utterance, count in enumerate(counts):
            first = 0
            while first < count:
                take = min(count - first, tile - filled)
                windowed = fft_in[filled : filled + take, 1 : self.FRAME_LENGTH]
                torch.mul(frames[utterance, first : first + take, 1:], window, out=windowed)
                windowed.addcmul_(offsets[utterance, first : first + take], window, value=-1.0)
                pending.append((utterance, first, take, filled))
                first += take
                filled += take
                if filled == tile:
                    transform(filled)
                    filled = 0
        if filled:
            transform(filled)

    @torch.no_grad()
    def _compute(
        self, wavs: torch.Tensor, num_samples: List[int], dtype: torch.dtype, spectral_dtype: torch.dtype
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Features of a validated batch (see :meth:`forward`)."""
        batch, length = wavs.shape
        device = wavs.device
        all_frames = (length - self.FRAME_LENGTH) // self.HOP_LENGTH + 1  # N: every 10 ms frame
        out_frames = all_frames // self.stride  # T'
        counts = [(n - self.FRAME_LENGTH) // self.HOP_LENGTH + 1 for n in num_samples]  # valid 10 ms frames
        padded = min(counts) < all_frames

        log_mel = torch.empty(batch, all_frames, self.n_mels, dtype=dtype, device=device)  # [B, N, 80]
        tile = self._tile_rows(device)
        with _full_fp32_matmul(device):
            if tile:
                self._spectra_packed(wavs, counts, log_mel, spectral_dtype, tile)
            else:
                self._spectra_batched(wavs, log_mel, spectral_dtype)

        # Per-utterance, per-bin normalisation over the utterance's own frames,
        # unbiased (ddof=1) as the reference, in two passes. The values are
        # shifted by the first frame first: that keeps fp32 precise and makes
        # a bin that is constant over the utterance (digital silence) come out
        # exactly 0. Padded frames of log_mel may never have been written:
        # they are masked.
        valid = torch.tensor(counts, device=device)
        shifted = log_mel.sub_(log_mel[:, :1].clone())  # [B, N, 80], in place
        if padded:
            invalid = ~valid_mask(valid, all_frames).unsqueeze(-1)
            shifted.masked_fill_(invalid, 0.0)
        count = valid.to(dtype)[:, None, None]
        centered = shifted.sub_(shifted.sum(dim=1, keepdim=True) / count)
        if padded:
            centered.masked_fill_(invalid, 0.0)
        var = centered.square().sum(dim=1, keepdim=True) / (count - 1).clamp(min=1)  # one frame gives 0
        normed = centered.div_(torch.sqrt(var + self.eps))

        # Stack frame pairs: [B, N, 80] -> [B, T', 80 * stride]; frame 2k then
        # 2k + 1. A trailing odd frame counted in the statistics but is dropped.
        feats = normed[:, : out_frames * self.stride].reshape(batch, out_frames, self.n_mels * self.stride)
        feat_frames = torch.div(valid, self.stride, rounding_mode="floor")
        if min(counts) // self.stride < out_frames:
            feats.masked_fill_(~valid_mask(feat_frames, out_frames).unsqueeze(-1), 0.0)
        return feats.float(), relative_lengths(feat_frames, out_frames)
