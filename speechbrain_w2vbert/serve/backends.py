"""What the service runs a model with: the :class:`Backend` protocol, and
:class:`TranscriberBackend`, which serves either transcriber: the torch
:class:`~speechbrain_w2vbert.inference.transcriber.Transcriber` of an
``EncoderASR`` folder, or the :class:`~speechbrain_w2vbert.onnx.runtime.OnnxTranscriber`
of an ONNX folder (``--backend onnx``).

A backend reads uploaded files, transcribes waveforms in batches and, if it
can, aligns known transcripts; the service calls nothing else, from one
worker thread. Backends that decode with a word LM may also favour a
request's hotwords (:meth:`TranscriberBackend.with_hotwords`).

Authors: speechbrain-w2vbert contributors
"""

import copy
from collections import OrderedDict
from typing import Any, List, Optional, Protocol, Sequence, Tuple, Union, runtime_checkable

from speechbrain_w2vbert.audio import AudioError
from speechbrain_w2vbert.inference.decoding import select_decoder
from speechbrain_w2vbert.inference.results import Alignment, Transcript

__all__ = ["Backend", "BACKEND_MEMBERS", "BackendError", "TranscriberBackend", "MAX_HOTWORDS"]

#: Hotwords of one request at most.
MAX_HOTWORDS = 100


class BackendError(RuntimeError):
    """A backend that cannot be opened (what is missing, what to do)."""


@runtime_checkable
class Backend(Protocol):
    """What the service needs of a model.

    ``sample_rate`` (Hz) is the model's; ``name`` names the backend
    (``torch``, ``onnx``) in messages; ``aligns`` says whether
    :meth:`align_waveform` works, ``uses_lm`` whether it decodes with a word
    LM (and so whether :meth:`with_hotwords` can favour words).
    """

    name: str
    sample_rate: int
    aligns: bool
    uses_lm: bool

    def read(self, path: str) -> Any:
        """The file's waveform at :attr:`sample_rate` (mono); raises
        ``AudioError`` for a file that cannot be transcribed."""

    def transcribe_waveforms(self, wavs: Sequence[Any], timestamps: bool = False,
                             sample_rate: Optional[int] = None) -> List[Union[Transcript, AudioError]]:
        """One :class:`Transcript` (or the ``AudioError`` of a waveform
        without speech) per waveform, in order; all of them batched."""

    def align_waveform(self, wav: Any, transcript: str, sample_rate: Optional[int] = None) -> Alignment:
        """The word and character times of ``transcript`` in ``wav``
        (called only when :attr:`aligns`)."""

    def with_hotwords(self, hotwords: Sequence[str]) -> "Backend":
        """This backend favouring ``hotwords`` (called only when
        :attr:`uses_lm`); raises ``ValueError`` for too many."""


#: The names a backend must have (what ``isinstance(obj, Backend)`` checks).
BACKEND_MEMBERS = tuple(Backend.__annotations__) + tuple(
    name for name, value in vars(Backend).items() if callable(value) and not name.startswith("_"))


class TranscriberBackend:
    """A backend of a transcriber (with the decoder
    :func:`~speechbrain_w2vbert.inference.decoding.select_decoder` chose for
    its folder), plus hotwords per request.

    Arguments
    ---------
    transcriber : Transcriber or OnnxTranscriber
        Reads and transcribes (a
        :class:`~speechbrain_w2vbert.inference.pipeline.TranscriptionPipeline`);
        the torch one also aligns.
    name : str
        ``torch`` or ``onnx``, as messages name the backend.
    cached_hotword_sets : int
        Decoders with hotwords kept for reuse (each loads the LM once).

    Example
    -------
    >>> import os, tempfile, torch
    >>> from speechbrain_w2vbert import TINY_CONFIG_DIR
    >>> from speechbrain_w2vbert.inference.folder import export_inference_folder, load_asr
    >>> from speechbrain_w2vbert.inference.transcriber import Transcriber
    >>> from speechbrain_w2vbert.models.w2vbert import W2VBert
    >>> from speechbrain_w2vbert.text.tokenizer import CharTokenizer
    >>> tok, tmp = CharTokenizer.build(["राम घर"]), tempfile.mkdtemp()
    >>> _ = export_inference_folder(os.path.join(tmp, "m"), W2VBert(TINY_CONFIG_DIR, pretrained=False),
    ...                             torch.nn.Linear(144, tok.vocab_size), tok)
    >>> backend = TranscriberBackend(Transcriber(load_asr(os.path.join(tmp, "m"), os.path.join(tmp, "c"))))
    >>> isinstance(backend, Backend), backend.sample_rate, backend.uses_lm
    (True, 16000, False)
    >>> [type(result).__name__ for result in backend.transcribe_waveforms([torch.zeros(16000)], True)]
    ['Transcript']
    """

    def __init__(self, transcriber, name: str = "torch", cached_hotword_sets: int = 8):
        self.transcriber, self.name = transcriber, name
        self.sample_rate = transcriber.sample_rate
        self.min_samples = transcriber.min_samples
        self._variants: "OrderedDict[Tuple[str, ...], Any]" = OrderedDict()
        self._cached = cached_hotword_sets

    def read(self, path: str):
        """:meth:`Transcriber.read`."""
        return self.transcriber.read(path)

    def transcribe_waveforms(self, wavs, timestamps: bool = False, sample_rate: Optional[int] = None):
        """:meth:`Transcriber.transcribe_waveforms`."""
        return self.transcriber.transcribe_waveforms(wavs, timestamps, sample_rate)

    def align_waveform(self, wav, transcript: str, sample_rate: Optional[int] = None) -> Alignment:
        """:meth:`Transcriber.align_waveform`.

        Raises
        ------
        NotImplementedError
            The transcriber cannot align (the ONNX runtime's).
        """
        if not hasattr(self.transcriber, "align_waveform"):
            raise NotImplementedError(f"the {self.name} backend cannot align transcripts")
        return self.transcriber.align_waveform(wav, transcript, sample_rate)

    @property
    def aligns(self) -> bool:
        """Whether :meth:`align_waveform` works (the torch transcriber's)."""
        return hasattr(self.transcriber, "align_waveform")

    @property
    def uses_lm(self) -> bool:
        """Whether it decodes by beam search with the folder's word LM."""
        return self.transcriber.decoder is not None

    def with_hotwords(self, hotwords: Sequence[str]) -> "TranscriberBackend":
        """This backend favouring ``hotwords`` (words or phrases) in its
        beam search; the same backend for none.

        Raises
        ------
        ValueError
            Without a word LM (greedy decoding cannot favour words), or
            more than :data:`MAX_HOTWORDS`.
        """
        key = tuple(sorted(set(h.strip() for h in hotwords if h.strip())))
        if not key:
            return self
        if len(key) > MAX_HOTWORDS:
            raise ValueError(f"{len(key)} hotwords, at most {MAX_HOTWORDS}")
        if key not in self._variants:
            decoder = select_decoder(self.transcriber.decoder, None, hotwords=key)
            variant = copy.copy(self)
            variant.transcriber = copy.copy(self.transcriber)
            variant.transcriber.decoder = decoder
            variant._variants = OrderedDict()
            self._variants[key] = variant
            while len(self._variants) > self._cached:
                self._variants.popitem(last=False)
        self._variants.move_to_end(key)
        return self._variants[key]
