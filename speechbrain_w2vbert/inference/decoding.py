"""Decoding CTC log-probabilities to text: the one place that decides
between greedy decoding and beam search with a model folder's word LM, and
the ``decoding_function`` of exported ``EncoderASR`` folders.

:func:`select_decoder` needs no torch (the ONNX runtime decides with it too).

Authors: speechbrain-w2vbert contributors
"""

from typing import List, Optional

__all__ = ["select_decoder", "encoder_asr_decode"]


def select_decoder(lm_decoder=None, use_lm: Optional[bool] = None, **options):
    """The beam-search decoder to decode with, or None for greedy decoding.

    Arguments
    ---------
    lm_decoder : speechbrain_w2vbert.lm.beam.LMBeamDecoder, optional
        The model folder's decoder (None, or one without an LM file: the
        folder has no LM).
    use_lm : bool, optional
        None: the LM when the folder has one, else greedy; True: the LM
        (an error without one); False: greedy.
    **options
        Beam-search options (``beam_size``, ``lm_weight``, ``word_bonus``,
        ``hotwords``, ``hotword_weight``); None keeps the folder's value.

    Returns
    -------
    LMBeamDecoder or None

    Raises
    ------
    ValueError
        ``use_lm`` True without an LM, hotwords without the LM, or a
        beam-search option out of range.

    Example
    -------
    >>> select_decoder(None) is None
    True
    >>> select_decoder(None, use_lm=True)
    Traceback (most recent call last):
    ...
    ValueError: has no language model (lm.ckpt): decode greedily, or train the recipe with lm_decoding: True
    """
    available = lm_decoder is not None and lm_decoder.uses_lm
    if not (available if use_lm is None else use_lm):
        if options.get("hotwords"):
            raise ValueError("hotwords need the LM: decoding greedily cannot favour words")
        return None
    if not available:
        raise ValueError("has no language model (lm.ckpt): decode greedily, or train the recipe with lm_decoding: True")
    chosen = {name: value for name, value in options.items() if value is not None and value != ()}
    return lm_decoder.with_options(**chosen) if chosen else lm_decoder


def encoder_asr_decode(log_probs, wav_lens=None, decoder=None,
                       tokenizer=None, use_lm: Optional[bool] = None, blank_index: int = 0) -> List[List[int]]:
    """The exported folder's ``decoding_function``: label ids per utterance
    of blank-masked log-probabilities [B, T, V], by beam search with the
    folder's LM or greedily, as :func:`select_decoder` decides (``EncoderASR``
    turns the ids into text with the tokenizer).

    Padding frames are blanks (``EncoderCTC``), so every frame is decoded
    and ``wav_lens`` is not needed.

    Example
    -------
    >>> import torch
    >>> frames = torch.tensor([[1, 1, 0, 2]])
    >>> encoder_asr_decode(torch.nn.functional.one_hot(frames, 3).float().log())
    [[1, 2]]
    """
    from speechbrain_w2vbert.models.ctc import greedy_decode

    del wav_lens
    beam = select_decoder(decoder, use_lm)
    if beam is None:
        return greedy_decode(log_probs, blank_index=blank_index)
    return [tokenizer.encode(text) for text in beam.decode(list(log_probs))]
