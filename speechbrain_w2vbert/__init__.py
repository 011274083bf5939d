"""speechbrain-w2vbert: fine-tune w2v-BERT 2.0 with CTC in SpeechBrain.

The package keeps its import light: the modules are imported on use.

- :mod:`speechbrain_w2vbert.features`: ``SeamlessFbank``, the batched torch
  twin of ``transformers.SeamlessM4TFeatureExtractor``.
- :mod:`speechbrain_w2vbert.encoder`: ``SpeechEncoder``, the base of the
  lobes (sources, overrides, freezing, lengths, the encoder's facts).
- :mod:`speechbrain_w2vbert.lobe`: ``W2VBert``, the lobe around
  ``transformers.Wav2Vec2BertModel``.
- :mod:`speechbrain_w2vbert.wav2vec2`: ``Wav2Vec2Encoder``, the lobe of the
  wav2vec 2.0 family (wav2vec 2.0, XLSR, XLS-R, MMS, HuBERT).
- :mod:`speechbrain_w2vbert.attention`: relative-key attention without the
  (L, L, head_size) tensor; :mod:`speechbrain_w2vbert.convolution`: the
  Conformer convolution module, computed time-major;
  :mod:`speechbrain_w2vbert.swap`: the in-place class swaps, guarded.
- :mod:`speechbrain_w2vbert.text`: ``normalize_nepali``.
- :mod:`speechbrain_w2vbert.tokenizer`: the CTC character tokenizer (and
  SentencePiece).
- :mod:`speechbrain_w2vbert.ctc`: fp32 CTC loss, greedy decoding, and
  ``EncoderCTC``, the model training and inference both run.
- :mod:`speechbrain_w2vbert.ngram`: word n-gram LMs (ARPA by lmplz or
  kaldingram) of the training transcripts, with their report and cache;
  :mod:`speechbrain_w2vbert.decoding`: ``LMBeamDecoder`` (SpeechBrain's CTC
  beam search with KenLM and hotwords) and the tuning of its weights.
- :mod:`speechbrain_w2vbert.training`, :mod:`speechbrain_w2vbert.schedulers`:
  recipe helpers (exact resumption, counters, learning-rate schedules).
- :mod:`speechbrain_w2vbert.export`: ``EncoderASR`` and Hugging Face folders.
- :mod:`speechbrain_w2vbert.plot`: training curves.
- :mod:`speechbrain_w2vbert.audio`: reading audio files;
  :mod:`speechbrain_w2vbert.segmentation`: long recordings cut at pauses
  (silero-vad); :mod:`speechbrain_w2vbert.chunking`: long files or segments
  in overlapping chunks; :mod:`speechbrain_w2vbert.timestamps`: word times
  and confidences; :mod:`speechbrain_w2vbert.subtitles`: SRT and WebVTT;
  :mod:`speechbrain_w2vbert.alignment`: forced alignment of known
  transcripts, TextGrids; :mod:`speechbrain_w2vbert.quantization`: int8 CPU
  inference; :mod:`speechbrain_w2vbert.transcribe`: ``Transcriber``;
  :mod:`speechbrain_w2vbert.cli`: the ``w2vbert-asr`` command.
- :mod:`speechbrain_w2vbert.environment`: do torch, torchaudio, SpeechBrain
  and transformers import together, are the private names this package
  uses there, and is this the tested environment (``requirements/lock.txt``)?
"""

import os

__version__ = "0.1.0"

#: Folder of the tiny random-initialisation config used by tests and the demo.
TINY_CONFIG_DIR = os.path.join(os.path.dirname(__file__), "configs", "w2vbert_tiny")
