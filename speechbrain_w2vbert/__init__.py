"""speechbrain-w2vbert: fine-tune w2v-BERT 2.0 with CTC in SpeechBrain.

The package is in wings; each imports only the wings below it (checked by
tests/test_layout.py), and importing the package imports none of them.

- :mod:`speechbrain_w2vbert.models`: the acoustic model.
  :mod:`speechbrain_w2vbert.models.features` (``SeamlessFbank``, the
  batched torch twin of ``SeamlessM4TFeatureExtractor``),
  :mod:`speechbrain_w2vbert.models.encoder` (``SpeechEncoder``, the base of
  the lobes), :mod:`speechbrain_w2vbert.models.w2vbert` (``W2VBert``),
  :mod:`speechbrain_w2vbert.models.wav2vec2` (``Wav2Vec2Encoder``, the
  wav2vec 2.0 family), :mod:`speechbrain_w2vbert.models.attention` and
  :mod:`speechbrain_w2vbert.models.convolution` (faster drop-in modules),
  :mod:`speechbrain_w2vbert.models.swap` (their guarded class swaps),
  :mod:`speechbrain_w2vbert.models.ctc` (``EncoderCTC``, fp32 CTC loss,
  greedy decoding) and :mod:`speechbrain_w2vbert.models.lengths` (relative
  and absolute lengths, padding masks).
- :mod:`speechbrain_w2vbert.text`: :mod:`speechbrain_w2vbert.text.normalize`
  (``normalize_nepali``), :mod:`speechbrain_w2vbert.text.tokenizer` (the CTC
  tokenizers), :mod:`speechbrain_w2vbert.text.corpus` (transcript files),
  :mod:`speechbrain_w2vbert.text.scoring` (``ScoringRule``: the one WER/CER
  rule), :mod:`speechbrain_w2vbert.text.overlap` (test text already in the
  training text or outside the LM's words).
- :mod:`speechbrain_w2vbert.lm`: :mod:`speechbrain_w2vbert.lm.ngram`
  (``NgramLM``: word n-gram LMs of the training transcripts) and
  :mod:`speechbrain_w2vbert.lm.beam` (``LMBeamDecoder``: CTC beam search with
  the LM and hotwords, and the tuning of its weights).
- :mod:`speechbrain_w2vbert.training`: what the recipe's loop uses:
  :mod:`speechbrain_w2vbert.training.steps` (per-step seeding, finite
  gradients), :mod:`speechbrain_w2vbert.training.counters`,
  :mod:`speechbrain_w2vbert.training.data` (``AudioReader``),
  :mod:`speechbrain_w2vbert.training.schedulers`,
  :mod:`speechbrain_w2vbert.training.plot`, and what lets a run survive
  being killed: :mod:`speechbrain_w2vbert.training.checkpoints`
  (``AtomicCheckpointer``), :mod:`speechbrain_w2vbert.training.preemption`
  (``PreemptibleBrain``: SIGTERM/SIGUSR1), :mod:`speechbrain_w2vbert.training.collapse`
  (the collapse-to-blanks watch), :mod:`speechbrain_w2vbert.training.stops`
  (exit statuses) and :mod:`speechbrain_w2vbert.training.distributed` (what
  DDP processes agree on).
- :mod:`speechbrain_w2vbert.inference`: using a trained model.
  :mod:`speechbrain_w2vbert.inference.folder` (the ``EncoderASR`` folder:
  writing and opening it), :mod:`speechbrain_w2vbert.inference.safety` (what
  a folder's YAML may run), :mod:`speechbrain_w2vbert.inference.manifest`
  (its files' sizes and SHA-256), :mod:`speechbrain_w2vbert.inference.decoding`
  (greedy or LM: the one decision), :mod:`speechbrain_w2vbert.inference.results`
  (``Word``, ``Segment``, ``Transcript``, ``Alignment``),
  :mod:`speechbrain_w2vbert.inference.transcriber` (``Transcriber``),
  :mod:`speechbrain_w2vbert.inference.segmentation` (silero-vad),
  :mod:`speechbrain_w2vbert.inference.chunking`,
  :mod:`speechbrain_w2vbert.inference.timestamps`,
  :mod:`speechbrain_w2vbert.inference.alignment` (forced alignment),
  :mod:`speechbrain_w2vbert.inference.subtitles` (SRT, WebVTT),
  :mod:`speechbrain_w2vbert.inference.quantization` (int8),
  :mod:`speechbrain_w2vbert.inference.pipeline` (``TranscriptionPipeline``:
  batching, segments, chunks and decoding, whatever runs the network),
  :mod:`speechbrain_w2vbert.inference.jobs` (resumable, sharded batch jobs).
- :mod:`speechbrain_w2vbert.onnx`: deploying without PyTorch.
  :mod:`speechbrain_w2vbert.onnx.export` (the ONNX folder; needs torch),
  :mod:`speechbrain_w2vbert.onnx.runtime` (``OnnxTranscriber``: onnxruntime
  and numpy, no torch), :mod:`speechbrain_w2vbert.onnx.frontend` (the
  SeamlessM4T features and resampling in numpy),
  :mod:`speechbrain_w2vbert.onnx.vad` (silero-vad's ONNX model),
  :mod:`speechbrain_w2vbert.onnx.quantize` (int8 graphs).
- :mod:`speechbrain_w2vbert.serve`: the transcription service (``w2vbert-asr
  serve``). :mod:`speechbrain_w2vbert.serve.app` (OpenAI's audio API, the
  alignment route, the web page, the safeguards),
  :mod:`speechbrain_w2vbert.serve.batching` (the model's worker thread:
  requests batched across clients), :mod:`speechbrain_w2vbert.serve.backends`
  (what runs the model), :mod:`speechbrain_w2vbert.serve.forms` (streamed
  uploads), :mod:`speechbrain_w2vbert.serve.responses` (response formats),
  :mod:`speechbrain_w2vbert.serve.errors` (OpenAI's error shape).
- :mod:`speechbrain_w2vbert.audio`: reading audio files, resampling.
- :mod:`speechbrain_w2vbert.hf`: to and from Hugging Face ``*ForCTC`` folders.
- :mod:`speechbrain_w2vbert.cli`: the ``w2vbert-asr`` command, on top.
- :mod:`speechbrain_w2vbert.environment`: do the libraries import together,
  with the private names this package uses?
- :mod:`speechbrain_w2vbert.compat`: the dotted paths of 0.1.x, for model
  folders and code written against them.
"""

import os

from speechbrain_w2vbert import compat

__version__ = "0.2.0"

#: Folder of the tiny random-initialisation config used by tests and the demo.
TINY_CONFIG_DIR = os.path.join(os.path.dirname(__file__), "configs", "w2vbert_tiny")

compat.install()
