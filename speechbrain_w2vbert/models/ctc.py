"""CTC pieces: fp32 log-probabilities, a loss that reports infeasible
utterances instead of zeroing them silently, greedy decoding, and
:class:`EncoderCTC`, a speech encoder lobe with dropout and a linear head:
the one model the recipe trains and ``EncoderASR`` runs.

The CTC head is a single ``torch.nn.Linear`` over the encoder's output, as
``transformers.Wav2Vec2BertForCTC.lm_head`` is, so a trained model maps 1:1
onto that class (see :func:`speechbrain_w2vbert.hf.to_hf_ctc`).

Authors: speechbrain-w2vbert contributors
"""

import contextlib
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from speechbrain.decoders.ctc import ctc_greedy_decode

from speechbrain_w2vbert.models.lengths import absolute_lengths, valid_mask

__all__ = [
    "ctc_log_probs",
    "ctc_min_frames",
    "texts_min_frames",
    "ctc_loss",
    "mask_padding_to_blank",
    "greedy_decode",
    "EncoderCTC",
]


def ctc_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """Log-softmax over the last dimension, always computed in fp32.

    Under bf16/fp16 autocast a low-precision log-softmax loses the small
    probabilities that CTC's forward-backward sums; this runs outside autocast.

    Arguments
    ---------
    logits : torch.Tensor
        Head output [B, T, V] in any floating dtype.

    Returns
    -------
    torch.Tensor
        Log-probabilities [B, T, V] in fp32.

    Example
    -------
    >>> ctc_log_probs(torch.zeros(1, 2, 4, dtype=torch.bfloat16)).dtype
    torch.float32
    """
    with torch.autocast(device_type=logits.device.type, enabled=False):
        return F.log_softmax(logits.float(), dim=-1)


def ctc_min_frames(targets: torch.Tensor, target_lens: torch.Tensor) -> torch.Tensor:
    """Fewest input frames CTC needs for each target: its length plus one
    blank between every pair of equal adjacent labels.

    Arguments
    ---------
    targets : torch.Tensor
        Padded label ids [B, L].
    target_lens : torch.Tensor
        Integer label counts [B].

    Returns
    -------
    torch.Tensor
        Integer frame counts [B].

    Example
    -------
    >>> ctc_min_frames(torch.tensor([[3, 3, 4, 0], [5, 5, 5, 5]]), torch.tensor([3, 2]))
    tensor([4, 3])
    """
    if targets.shape[1] < 2:
        return target_lens.clone()
    valid = valid_mask(target_lens - 1, targets.shape[1] - 1)  # pairs (i, i + 1) inside the target
    repeats = ((targets[:, 1:] == targets[:, :-1]) & valid).sum(dim=1)
    return target_lens + repeats


def texts_min_frames(texts: Sequence[str], tokenizer=None, batch_size: int = 1024) -> List[int]:
    """:func:`ctc_min_frames` of transcripts: the frames CTC needs for each.

    Arguments
    ---------
    texts : sequence of str
        Normalised transcripts.
    tokenizer : CTCTokenizer, optional
        Counts the labels its ``encode`` gives (exact for that tokenizer);
        None: one label per character, a space included, the characters'
        code points standing for label ids (exact for the character
        tokenizer; an upper bound for SentencePiece ones, whose pieces never
        outnumber the characters).
    batch_size : int
        Texts per call of :func:`ctc_min_frames` (a padded [batch, longest] tensor).

    Returns
    -------
    list of int
        One frame count per text.

    Example
    -------
    >>> texts_min_frames(["कक ख", ""])
    [5, 0]
    """
    needs: List[int] = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start:start + batch_size]
        if tokenizer is None:  # one UTF-32 code unit per character: code points line up with len()
            lens = np.fromiter(map(len, batch), dtype=np.int64, count=len(batch))
            codes = np.frombuffer("".join(batch).encode("utf-32-le"), dtype="<u4").astype(np.int64)
        else:
            labels = [tokenizer.encode(text) for text in batch]
            lens = np.fromiter(map(len, labels), dtype=np.int64, count=len(labels))
            codes = np.fromiter((i for ids in labels for i in ids), dtype=np.int64, count=int(lens.sum()))
        rows = np.repeat(np.arange(len(batch)), lens)
        cols = np.arange(len(codes)) - np.repeat(np.cumsum(lens) - lens, lens)
        padded = np.zeros((len(batch), max(1, int(lens.max(initial=0)))), dtype=np.int64)
        padded[rows, cols] = codes
        needs += ctc_min_frames(torch.from_numpy(padded), torch.from_numpy(lens)).tolist()
    return needs


def ctc_loss(
    log_probs: torch.Tensor,
    out_lens: torch.Tensor,
    targets: torch.Tensor,
    target_lens: torch.Tensor,
    blank_index: int = 0,
    weights: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """CTC loss in fp32, normalised per target token, with the infeasible
    utterances reported.

    An utterance is infeasible when it has fewer output frames than
    :func:`ctc_min_frames`; its loss would be infinite. It is left out of the
    loss (with zero gradient) and flagged in the returned mask, so that the
    caller counts and logs it instead of it vanishing silently.

    Arguments
    ---------
    log_probs : torch.Tensor
        Log-probabilities [B, T, V] (see :func:`ctc_log_probs`).
    out_lens : torch.Tensor
        Relative lengths [B] of the valid frames (the encoder's exact output
        lengths, ``W2VBert(..., return_lengths=True)``).
    targets : torch.Tensor
        Padded label ids [B, L].
    target_lens : torch.Tensor
        Relative lengths [B] of the labels (SpeechBrain's ``PaddedBatch``).
    blank_index : int
        Id of the CTC blank (default 0).
    weights : torch.Tensor, optional
        Per-utterance weights [B] (0 leaves an utterance out, e.g. an
        unreadable file replaced by silence); default all ones.

    Returns
    -------
    loss : torch.Tensor
        Scalar: sum of the kept utterances' losses over their label count
        (0, still attached to the graph, when nothing is kept).
    infeasible : torch.Tensor
        Bool mask [B] of the infeasible utterances.

    Example
    -------
    >>> log_probs = ctc_log_probs(torch.randn(2, 6, 5))
    >>> targets = torch.tensor([[1, 2, 2], [3, 3, 3]])
    >>> loss, infeasible = ctc_loss(log_probs, torch.tensor([1.0, 0.5]), targets, torch.tensor([1.0, 1.0]))
    >>> infeasible.tolist(), bool(loss > 0)
    ([False, True], True)
    """
    frames = absolute_lengths(out_lens, log_probs.shape[1])
    labels = absolute_lengths(target_lens, targets.shape[1])
    infeasible = frames < ctc_min_frames(targets, labels)
    keep = (~infeasible).float()
    if weights is not None:
        keep = keep * weights.float()
    with torch.autocast(device_type=log_probs.device.type, enabled=False):
        losses = F.ctc_loss(
            log_probs.float().transpose(0, 1),  # [T, B, V]
            targets.long(),
            frames,
            labels,
            blank=blank_index,
            reduction="none",
            zero_infinity=True,  # only the infeasible ones, already counted
        )
    tokens = (labels.float() * keep).sum().clamp(min=1.0)
    return (losses * keep).sum() / tokens, infeasible


def mask_padding_to_blank(log_probs: torch.Tensor, out_lens: torch.Tensor, blank_index: int = 0) -> torch.Tensor:
    """Make every frame past an utterance's end a certain blank.

    The encoder's outputs on padding frames are meaningless; after this, any
    CTC decoding (greedy or beam) over the padded length gives the same
    result as over the exact length, so a batch decodes exactly like its
    utterances one by one.

    Arguments
    ---------
    log_probs : torch.Tensor
        Log-probabilities [B, T, V].
    out_lens : torch.Tensor
        Relative lengths [B] of the valid frames.
    blank_index : int
        Id of the CTC blank (default 0).

    Returns
    -------
    torch.Tensor
        A copy with padding frames at log-probability 0 for the blank and
        the dtype's lowest value elsewhere.

    Example
    -------
    >>> out = mask_padding_to_blank(torch.zeros(1, 3, 2), torch.tensor([1 / 3]), blank_index=0)
    >>> out[0, 1:, 0].tolist(), bool((out[0, 1:, 1] < -1e30).all())
    ([0.0, 0.0], True)
    """
    padding = ~valid_mask(absolute_lengths(out_lens, log_probs.shape[1]), log_probs.shape[1])  # [B, T]
    blank_row = torch.full_like(log_probs[:1, :1], torch.finfo(log_probs.dtype).min)
    blank_row[..., blank_index] = 0.0
    return torch.where(padding.unsqueeze(-1), blank_row, log_probs)


def greedy_decode(
    log_probs: torch.Tensor, lengths: Optional[torch.Tensor] = None, blank_index: int = 0
) -> List[List[int]]:
    """Greedy CTC decoding over all frames of blank-masked log-probabilities.

    ``EncoderASR`` calls its decoding function with the *waveforms'*
    relative lengths, which round to the output frame count give or take
    one frame. :class:`EncoderCTC` already turns padding frames into blanks
    (:func:`mask_padding_to_blank`), so decoding every frame is exact;
    ``lengths`` is accepted for that interface and not needed.

    Arguments
    ---------
    log_probs : torch.Tensor
        Blank-masked log-probabilities [B, T, V].
    lengths : torch.Tensor, optional
        Ignored (see above).
    blank_index : int
        Id of the CTC blank (default 0).

    Returns
    -------
    list of list of int
        Label ids per utterance (repeats merged, blanks removed).

    Example
    -------
    >>> frames = torch.tensor([[1, 1, 0, 1, 2, 2, 0, 0]])
    >>> greedy_decode(F.one_hot(frames, 3).float().log())
    [[1, 1, 2]]
    """
    del lengths
    full = torch.ones(log_probs.shape[0], device=log_probs.device)
    return ctc_greedy_decode(log_probs, full, blank_id=blank_index)


class EncoderCTC(torch.nn.Module):
    """A speech encoder lobe, dropout and a linear CTC head, returning
    blank-masked fp32 log-probabilities: the model the recipe trains (around
    its DDP-wrapped encoder and head) and the ``encoder`` module of the
    exported ``EncoderASR`` folder, so training and inference run one forward.

    The layout is ``transformers.Wav2Vec2BertForCTC``'s (dropout, then
    ``lm_head``), so a trained model maps 1:1 onto that class.

    Arguments
    ---------
    encoder : torch.nn.Module
        A :class:`~speechbrain_w2vbert.models.encoder.SpeechEncoder` (``W2VBert``,
        ``Wav2Vec2Encoder``): raw 16 kHz waveforms in, [B, T'', H] out.
    head : torch.nn.Linear
        The CTC head, H -> vocabulary size (blank included).
    blank_index : int
        Id of the CTC blank (default 0).
    dropout : float
        Dropout probability in [0, 1) between the encoder and the head, in
        training mode only (default 0.0).

    Example
    -------
    >>> from speechbrain_w2vbert import TINY_CONFIG_DIR
    >>> from speechbrain_w2vbert.models.w2vbert import W2VBert
    >>> model = EncoderCTC(W2VBert(TINY_CONFIG_DIR, pretrained=False), torch.nn.Linear(144, 10)).eval()
    >>> log_probs = model(torch.randn(2, 16000) * 0.1, torch.tensor([1.0, 0.5]))
    >>> log_probs.shape, log_probs.dtype
    (torch.Size([2, 49, 10]), torch.float32)
    >>> int(log_probs[1, 24:].argmax(-1).max())  # padding frames are blanks
    0
    """

    def __init__(self, encoder: torch.nn.Module, head: torch.nn.Linear, blank_index: int = 0, dropout: float = 0.0):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.encoder = encoder
        self.head = head
        self.blank_index = blank_index
        self.dropout = dropout

    def forward(
        self,
        wavs: torch.Tensor,
        wav_lens: Optional[torch.Tensor] = None,
        return_lengths: bool = False,
        freeze_encoder: bool = False,
    ):
        """Log-probabilities [B, T'', V] of a padded batch of waveforms.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms [B, T] at 16 kHz.
        wav_lens : torch.Tensor, optional
            Relative lengths [B]; None means no padding.
        return_lengths : bool
            Also return the relative lengths of the output frames.
        freeze_encoder : bool
            Run the encoder without gradients (the recipe's head-only warm-up).

        Returns
        -------
        log_probs : torch.Tensor
            fp32 log-probabilities, padding frames set to the blank.
        lengths : torch.Tensor
            Relative output lengths [B], with ``return_lengths`` only.
        """
        with torch.no_grad() if freeze_encoder else contextlib.nullcontext():
            hidden, out_lens = self.encoder(wavs, wav_lens, return_lengths=True)
        hidden = F.dropout(hidden, self.dropout, training=self.training)
        log_probs = mask_padding_to_blank(ctc_log_probs(self.head(hidden)), out_lens, self.blank_index)
        return (log_probs, out_lens) if return_lengths else log_probs
