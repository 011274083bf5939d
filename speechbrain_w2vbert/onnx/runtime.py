"""Transcription without PyTorch: :class:`OnnxTranscriber` runs a folder
written by ``w2vbert-asr export-onnx`` (:mod:`speechbrain_w2vbert.onnx.export`)
with onnxruntime and numpy: the SeamlessM4T features in numpy
(:mod:`speechbrain_w2vbert.onnx.frontend`), the graph, greedy decoding or
beam search with the folder's word LM (pyctcdecode with kenlm), word
timestamps and confidences, long files cut at pauses by silero-vad's ONNX
model (:mod:`speechbrain_w2vbert.onnx.vad`) and in overlapping chunks. The
batching, segmentation, chunking and decoding are those of the PyTorch path
(:class:`~speechbrain_w2vbert.inference.pipeline.TranscriptionPipeline`), and
the results its types (:mod:`speechbrain_w2vbert.inference.results`): one
JSON form for both backends.

Opening a folder (:func:`open_onnx_folder`) verifies its ``manifest.json``
(every file's size and SHA-256, :mod:`speechbrain_w2vbert.inference.manifest`)
before anything is loaded, and the vocabulary against the graph's output.
Nothing in the folder is executed but the ONNX graphs: the vocabulary, the
LM and the manifest are data.

Installation without torch: docs/onnx.md (``pip install
'speechbrain-w2vbert[onnx]' --no-deps`` and the extra's dependencies).

Nothing here needs torch.

Example
-------
>>> transcriber = OnnxTranscriber("exported/onnx")  # doctest: +SKIP
>>> wav = transcriber.read("utterance.flac")  # doctest: +SKIP
>>> transcriber.transcribe_waveforms([wav], timestamps=True)[0].to_json()  # doctest: +SKIP
{'text': '...', 'duration': 3.2, 'words': [...], 'segments': [...]}

Authors: speechbrain-w2vbert contributors
"""

import os
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from speechbrain_w2vbert.audio import AudioError, read_audio
from speechbrain_w2vbert.inference.decoding import select_decoder
from speechbrain_w2vbert.inference.manifest import MANIFEST, ManifestError, verify_manifest
from speechbrain_w2vbert.inference.pipeline import NoSpeechError, TranscriptionPipeline
from speechbrain_w2vbert.inference.results import Transcript
from speechbrain_w2vbert.lm.ngram import LMError, quiet_native_stderr
from speechbrain_w2vbert.onnx.frontend import batch_features, resample
from speechbrain_w2vbert.text.tokenizer import CharTokenizer

__all__ = ["MANIFEST_KIND", "FORMAT_VERSION", "OnnxFolderError", "open_onnx_folder", "PyctcdecodeDecoder",
           "OnnxTranscriber", "forced_path", "NoSpeechError", "ManifestError"]

#: ``kind`` of the manifest of an ONNX folder.
MANIFEST_KIND = "onnx"
#: Version of the folder's layout (the manifest's ``format_version``).
FORMAT_VERSION = 1
#: The SentencePiece model's file in a folder of a SentencePiece tokenizer.
SENTENCEPIECE_FILE = "tokenizer.model"


class OnnxFolderError(ValueError):
    """A folder that is not a usable ONNX export (the message names the file
    and the problem)."""


def open_onnx_folder(folder: str) -> Dict:
    """The verified manifest of an ONNX folder.

    Raises
    ------
    OnnxFolderError
        No folder, no manifest (not an ONNX export), or a manifest of
        another kind or layout version.
    ManifestError
        A file missing, truncated or replaced since the export.
    """
    if not os.path.isdir(folder):
        raise OnnxFolderError(f"{folder}: no such folder")
    if not os.path.isfile(os.path.join(folder, MANIFEST)):
        raise OnnxFolderError(f"{folder}: no {MANIFEST}: not a folder written by w2vbert-asr export-onnx "
                              "(export one from an EncoderASR folder)")
    manifest = verify_manifest(folder)
    if manifest.get("kind") != MANIFEST_KIND:
        raise OnnxFolderError(f"{os.path.join(folder, MANIFEST)}: a {manifest.get('kind')!r} folder, not an ONNX "
                              "export (w2vbert-asr export-onnx writes one; transcribe an EncoderASR folder with "
                              "--backend torch)")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise OnnxFolderError(f"{os.path.join(folder, MANIFEST)}: layout version {manifest.get('format_version')}, "
                              f"this runtime reads {FORMAT_VERSION}: re-export the folder with this version")
    if manifest.get("graph_format") != "onnx":
        raise OnnxFolderError(f"{folder}: a {manifest.get('graph_format')!r} export (for sherpa-onnx), which takes "
                              "fbank frames: run it with sherpa-onnx, or export --format onnx for this runtime")
    return manifest


def _load_tokenizer(folder: str, manifest: Dict):
    """The folder's tokenizer, checked against the manifest's tokens."""
    entry = manifest["tokenizer"]
    path = os.path.join(folder, entry["file"])
    if entry["type"] == "char":
        tokenizer = CharTokenizer.load(path)
    else:
        try:
            import sentencepiece
        except ImportError as error:
            raise ImportError(f"{path}: a SentencePiece vocabulary needs sentencepiece: pip install sentencepiece "
                              f"({error})") from None
        from speechbrain_w2vbert.text.tokenizer import SentencePieceCTCTokenizer

        tokenizer = SentencePieceCTCTokenizer(sentencepiece.SentencePieceProcessor(model_file=path))
    if list(tokenizer.tokens) != list(manifest["tokens"]):
        raise OnnxFolderError(f"{path}: its {tokenizer.vocab_size} tokens are not the {len(manifest['tokens'])} "
                              "the export wrote in the manifest: re-export the folder")
    return tokenizer


class PyctcdecodeDecoder:
    """Beam search with a folder's word n-gram LM through pyctcdecode (and
    kenlm), with the interface the pipeline and
    :func:`~speechbrain_w2vbert.inference.decoding.select_decoder` use
    (``uses_lm``, ``with_options``, ``decode``, ``decode_with_words``).

    pyctcdecode is the search SpeechBrain's ``CTCBeamSearcher`` was ported
    from: with the same LM, weight, word bonus, beam and pruning, the two
    give the same transcripts (tests/test_onnx.py). Hotwords use
    pyctcdecode's own scoring, which differs from the PyTorch path's.

    Arguments
    ---------
    tokens : list of str
        The token of each id (``|`` the word delimiter).
    lm_path : str
        ARPA (``.arpa``) or KenLM binary (``.bin``) file.
    unigrams : list of str
        The LM's words.
    beam_size, lm_weight, word_bonus, beam_prune_logp, token_prune_min_logp
        As :class:`speechbrain_w2vbert.lm.beam.LMBeamDecoder`.
    hotwords : sequence of str
        Words or phrases to favour.
    hotword_weight : float
        Their weight (pyctcdecode's, default 10).
    blank_index : int
        Id of the CTC blank (default 0).
    """

    def __init__(self, tokens: Sequence[str], lm_path: str, unigrams: Sequence[str], beam_size: int = 50,
                 lm_weight: float = 0.5, word_bonus: float = 1.0, beam_prune_logp: float = -10.0,
                 token_prune_min_logp: float = -5.0, hotwords: Sequence[str] = (), hotword_weight: float = 10.0,
                 blank_index: int = 0, _decoder=None):
        if beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {beam_size}")
        if lm_weight < 0:
            raise ValueError(f"lm_weight must be >= 0, got {lm_weight}")
        self.tokens, self.lm_path, self.unigrams = list(tokens), lm_path, list(unigrams)
        self.beam_size, self.lm_weight, self.word_bonus = beam_size, lm_weight, word_bonus
        self.beam_prune_logp, self.token_prune_min_logp = beam_prune_logp, token_prune_min_logp
        self.hotwords = [h for h in hotwords if h.strip()]
        self.hotword_weight = hotword_weight
        self.blank_index = blank_index
        self._decoder = _decoder

    uses_lm = True

    @property
    def decoder(self):
        """pyctcdecode's ``BeamSearchDecoderCTC`` (the LM loaded on first use)."""
        if self._decoder is None:
            try:
                from pyctcdecode import build_ctcdecoder
            except ImportError as error:
                raise ImportError(f"LM decoding needs pyctcdecode and kenlm: pip install pyctcdecode ufal.kenlm "
                                  f"({error})") from None
            try:
                with quiet_native_stderr():  # kenlm's loading progress
                    self._decoder = build_ctcdecoder(["" if i == self.blank_index else t for i, t in enumerate(self.tokens)],
                                                     kenlm_model_path=self.lm_path, unigrams=self.unigrams,
                                                     alpha=self.lm_weight, beta=self.word_bonus)
            except (OSError, RuntimeError, ValueError) as error:
                lines = str(error).strip().splitlines()
                raise LMError(f"{self.lm_path}: kenlm cannot read this language model "
                              f"({lines[0] if lines else error})") from None
        return self._decoder

    def with_options(self, **options) -> "PyctcdecodeDecoder":
        """A decoder with some arguments changed (those given and not None);
        the loaded LM is shared."""
        names = ("beam_size", "lm_weight", "word_bonus", "beam_prune_logp", "token_prune_min_logp", "hotwords",
                 "hotword_weight")
        kwargs = {name: getattr(self, name) for name in names}
        kwargs.update({k: v for k, v in options.items() if v is not None})
        shared = self._decoder if (kwargs["lm_weight"], kwargs["word_bonus"]) == (self.lm_weight,
                                                                                   self.word_bonus) else None
        return PyctcdecodeDecoder(self.tokens, self.lm_path, self.unigrams, blank_index=self.blank_index,
                                  _decoder=shared, **kwargs)

    def decode_with_words(self, log_probs: Sequence[np.ndarray]) -> List[tuple]:
        """``(text, [(word, first frame, last frame), ...])`` of each
        utterance's log-probabilities [T, V]."""
        decoder = self.decoder
        results = []
        for lp in log_probs:
            beams = decoder.decode_beams(np.asarray(lp, dtype=np.float32), beam_width=self.beam_size,
                                         beam_prune_logp=self.beam_prune_logp,
                                         token_min_logp=self.token_prune_min_logp,
                                         hotwords=self.hotwords or None, hotword_weight=self.hotword_weight)
            if not beams:
                results.append(("", []))
                continue
            text, _, frames = beams[0][:3]
            results.append((text, [(word, int(s), int(e)) for word, (s, e) in frames]))
        return results

    def decode(self, log_probs: Sequence[np.ndarray]) -> List[str]:
        """Transcripts of utterances' log-probabilities [T, V]."""
        return [text for text, _ in self.decode_with_words(log_probs)]


def forced_path(log_probs: np.ndarray, targets: Sequence[int], blank_index: int = 0) -> Optional[List[int]]:
    """The most likely CTC frame path of ``targets`` through ``log_probs``
    [T, V] (Viterbi; the path ``torchaudio.functional.forced_align`` finds),
    or None when the frames are too few.

    Example
    -------
    >>> lp = np.log(np.array([[0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.7, 0.1, 0.2]]))
    >>> forced_path(lp, [1, 2])
    [1, 0, 2, 0]
    >>> forced_path(lp[:1], [1, 2]) is None
    True
    """
    lp = np.asarray(log_probs, dtype=np.float64)
    targets = list(targets)
    frames, states = lp.shape[0], 2 * len(targets) + 1
    extended = np.full(states, blank_index, dtype=np.int64)
    extended[1::2] = targets
    skip = np.zeros(states, dtype=bool)  # s may come from s - 2: a label unlike the one two states back
    skip[3::2] = extended[3::2] != extended[1:-2:2]
    score = np.full(states, -np.inf)
    score[0] = lp[0, extended[0]]
    if states > 1:
        score[1] = lp[0, extended[1]]
    back = np.zeros((frames, states), dtype=np.int8)  # 0: stay, 1: from s - 1, 2: from s - 2
    for t in range(1, frames):
        stay, one = score, np.concatenate([[-np.inf], score[:-1]])
        two = np.where(skip, np.concatenate([[-np.inf, -np.inf], score[:-2]]), -np.inf)
        candidates = np.stack([stay, one, two])
        back[t] = candidates.argmax(axis=0)
        score = candidates.max(axis=0) + lp[t, extended]
    ends = [states - 1] + ([states - 2] if states > 1 else [])
    state = max(ends, key=lambda s: score[s])
    if not np.isfinite(score[state]):
        return None
    path = []
    for t in range(frames - 1, -1, -1):
        path.append(int(extended[state]))
        state -= int(back[t, state])
    return path[::-1]


class OnnxTranscriber(TranscriptionPipeline):
    """Transcribes waveforms and files with an ONNX folder, without torch:
    the ``onnx`` backend of ``w2vbert-asr transcribe`` and of the service,
    with the methods the PyTorch :class:`~speechbrain_w2vbert.inference.transcriber.Transcriber`
    offers for transcription: :meth:`read`, :meth:`transcribe_waveforms`
    (and :attr:`sample_rate`).

    Public interface (stable): ``read(path) -> numpy.ndarray``,
    ``transcribe_waveforms(wavs, timestamps=False, sample_rate=None) ->
    list of Transcript or AudioError``, ``sample_rate``, ``folder``,
    ``precision``, ``manifest``, ``decoder`` (None: greedy). One instance
    must not run in several threads at once (its onnxruntime session may:
    make one transcriber per thread, or serialise the calls).

    Arguments
    ---------
    folder : str
        A folder written by ``w2vbert-asr export-onnx``.
    precision : str, optional
        ``"fp32"`` or ``"int8"`` (the graph of that precision, which the
        folder must have); None: fp32 when the folder has it, else int8.
    chunk_length, stride_length, batch_size, progress
        As :class:`~speechbrain_w2vbert.inference.pipeline.TranscriptionPipeline`.
    use_lm : bool, optional
        None: beam search with the folder's LM when it has one; True: the LM
        (an error without one); False: greedy.
    beam_size, lm_weight, word_bonus, hotwords, hotword_weight
        Beam-search options; None keeps the folder's value.
    segmenter : "vad", None or a segmenter
        Cuts files longer than a chunk at pauses (default "vad": an
        :class:`~speechbrain_w2vbert.onnx.vad.OnnxVoiceActivitySegmenter`
        with its defaults); None cuts them in fixed overlapping chunks only.
    num_threads : int, optional
        onnxruntime's intra-op threads (None: its default, one per core).
    spinning : bool
        Whether onnxruntime's worker threads busy-wait for work after a
        call (its default: the lowest latency for back-to-back calls);
        False leaves the cores idle between calls, for a process that
        does other compute between transcriptions.

    Raises
    ------
    OnnxFolderError, ManifestError
        The folder is not a complete, unchanged ONNX export (the file named).
    ValueError
        Options out of range (chunk lengths, beam options, hotwords
        without an LM, ``use_lm`` without one).
    """

    def __init__(self, folder: str, precision: Optional[str] = None, chunk_length: float = 20.0,
                 stride_length: float = 4.0, batch_size: int = 8, progress: Optional[bool] = None,
                 use_lm: Optional[bool] = None, beam_size: Optional[int] = None, lm_weight: Optional[float] = None,
                 word_bonus: Optional[float] = None, hotwords: Sequence[str] = (),
                 hotword_weight: Optional[float] = None, segmenter="vad", num_threads: Optional[int] = None,
                 spinning: bool = True):
        manifest = open_onnx_folder(folder)
        self.folder, self.manifest = folder, manifest
        models = manifest["models"]
        if precision is None:
            precision = "fp32" if "fp32" in models else "int8"
        if precision not in models:
            raise OnnxFolderError(f"{folder}: has no {precision} graph (it has {', '.join(sorted(models))}; "
                                  f"export-onnx{' --int8' if precision == 'int8' else ''} writes one)")
        self.precision = precision
        tokenizer = _load_tokenizer(folder, manifest)
        sample_rate = int(manifest["sample_rate"])
        if segmenter == "vad":
            from speechbrain_w2vbert.onnx.vad import OnnxVoiceActivitySegmenter

            segmenter = OnnxVoiceActivitySegmenter(sample_rate)
        elif isinstance(segmenter, str):
            raise ValueError(f"segmenter must be 'vad', None or a segmenter, got {segmenter!r}")
        lm = self._lm_decoder(folder, manifest)
        try:
            decoder = select_decoder(lm, use_lm, beam_size=beam_size, lm_weight=lm_weight, word_bonus=word_bonus,
                                     hotwords=tuple(hotwords), hotword_weight=hotword_weight)
        except ValueError as error:
            raise ValueError(f"{folder}: {error}") from None
        super().__init__(tokenizer, sample_rate, manifest["min_samples"], manifest["samples_per_frame"],
                         chunk_length, stride_length, batch_size, progress, decoder, segmenter)
        self.session = self._session(os.path.join(folder, models[precision]), num_threads, spinning)

    @staticmethod
    def _lm_decoder(folder: str, manifest: Dict) -> Optional[PyctcdecodeDecoder]:
        """The folder's LM as a decoder (None without one; loaded on first use)."""
        entry = manifest.get("lm")
        if not entry:
            return None
        with open(os.path.join(folder, entry["unigrams"]), encoding="utf-8") as f:
            unigrams = [line.strip() for line in f if line.strip()]
        return PyctcdecodeDecoder(manifest["tokens"], os.path.join(folder, entry["file"]), unigrams,
                                  entry["beam_size"], entry["lm_weight"], entry["word_bonus"],
                                  entry.get("beam_prune_logp", -10.0), entry.get("token_prune_min_logp", -5.0),
                                  blank_index=manifest["blank_index"])

    def _session(self, path: str, num_threads: Optional[int], spinning: bool = True):
        """onnxruntime's session of the graph, its vocabulary checked."""
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
            options.inter_op_num_threads = 1
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime's errors on a damaged graph or external data
            lines = str(error).strip().splitlines()
            raise OnnxFolderError(f"{path}: onnxruntime cannot load this graph "
                                  f"({lines[0] if lines else type(error).__name__}): re-export the folder") from None
        names = [i.name for i in session.get_inputs()]
        if names != ["input_features", "attention_mask"]:
            raise OnnxFolderError(f"{path}: inputs {names}, not the export's input_features and attention_mask")
        vocabulary = session.get_outputs()[0].shape[-1]
        if vocabulary != self.tokenizer.vocab_size:
            raise OnnxFolderError(f"{path}: the graph outputs {vocabulary} labels but the folder's vocabulary has "
                                  f"{self.tokenizer.vocab_size} tokens (a graph of another model): re-export the folder")
        return session

    # ------------------------------------------------------ backend hooks
    def read(self, path: str) -> np.ndarray:
        """A file's waveform (any format soundfile reads), down-mixed and
        resampled to the model's rate, float32 [T].

        Raises
        ------
        AudioError
            Unreadable, empty, or shorter than the model's shortest input.
        """
        return read_audio(path, self.sample_rate, self.min_samples, resampler=resample)

    def at_model_rate(self, wav, sample_rate: Optional[int]) -> np.ndarray:
        """``wav`` (1-D, at ``sample_rate`` Hz; None: the model's rate) as
        float32 at the model's rate."""
        wav = np.asarray(wav, dtype=np.float32)
        if wav.ndim != 1:
            raise ValueError(f"expected a 1-D waveform (mono), got shape {tuple(wav.shape)}")
        if sample_rate is None or sample_rate == self.sample_rate:
            return wav
        return resample(wav, sample_rate, self.sample_rate)

    def _log_probs(self, wavs: List[np.ndarray]) -> List[np.ndarray]:
        """Log-probabilities [T, V] of each waveform's valid frames, one batch."""
        feats, mask = batch_features(wavs)
        log_probs, lengths = self.session.run(None, {"input_features": feats, "attention_mask": mask})
        return [log_probs[i, :n] for i, n in enumerate(lengths.tolist())]

    def _align(self, log_probs: np.ndarray, text: str) -> Optional[List[int]]:
        targets = self.tokenizer.encode(text)
        if self.tokenizer.unk_index in targets:
            return None
        return forced_path(log_probs, targets, self.tokenizer.blank_index)

    def transcribe_waveforms(self, wavs: Sequence, timestamps: bool = False,
                             sample_rate: Optional[int] = None) -> List[Union[Transcript, AudioError]]:
        """Transcribe 1-D waveforms (numpy arrays or anything ``numpy.asarray``
        takes) at ``sample_rate`` Hz (default: the model's rate; others are
        resampled).

        Returns
        -------
        list of Transcript or AudioError
            One per waveform, in order: its Transcript (words with times and
            confidences in each segment with ``timestamps``), or the
            :class:`NoSpeechError` of a waveform in which the segmenter finds
            no speech, or the :class:`AudioError` of one shorter than the
            model's shortest input.
        """
        results: List = [None] * len(wavs)
        ready, indices = [], []
        for i, wav in enumerate(wavs):
            wav = self.at_model_rate(wav, sample_rate)
            if wav.shape[0] < self.min_samples:
                results[i] = AudioError(f"too short: {wav.shape[0] / self.sample_rate:.3f} s ({wav.shape[0]} samples "
                                        f"at {self.sample_rate} Hz; at least {self.min_samples} needed)")
                continue
            ready.append(wav)
            indices.append(i)
        for i, result in zip(indices, super().transcribe_waveforms(ready, timestamps)):
            results[i] = result
        return results
