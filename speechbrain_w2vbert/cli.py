"""``w2vbert-asr``: transcribe recordings and export models from the shell.

::

    w2vbert-asr transcribe MODEL [FILE...] [--manifest FILES.txt] [--format text|json|tsv|srt|vtt] [--output PATH]
        [--segment vad|fixed] [--min-pause 0.5] [--vad-threshold 0.5]
        [--batch-size 8] [--chunk-length 20] [--stride-length 4] [--timestamps word] [--device cpu]
        [--int8] [--lm | --no-lm] [--beam-size N] [--lm-weight A] [--word-bonus B]
        [--hotwords WORD...] [--hotword-weight W] [--mark-confidence C]
        [--max-line-chars 42] [--max-cue-seconds 7]
    w2vbert-asr transcribe MODEL --manifest FILES.txt --output-dir DIR [--timestamps word] [--device cuda]
    w2vbert-asr align MODEL AUDIO TRANSCRIPT [AUDIO TRANSCRIPT...] [--format json|srt|vtt|textgrid]
        [--output PATH] [--segment vad|fixed] [--int8] [--device cpu]
    w2vbert-asr serve MODEL [--host 127.0.0.1] [--port 8000] [--backend torch|onnx] [--api-key KEY]
        [--max-batch 16] [--max-wait-ms 5] [--max-queue 64] [--max-upload-mb 25] [--max-audio-seconds 1800]
        [--timeout 300] [--device cpu]
    w2vbert-asr export-hf MODEL OUT_DIR
    w2vbert-asr export-onnx MODEL OUT_DIR [--int8] [--int8-method dynamic] [--format onnx|sherpa]
    w2vbert-asr transcribe ONNX_FOLDER FILE... --backend onnx [--int8] [--threads N] [...]

``MODEL`` is an ``EncoderASR`` folder written by the recipe (``inference/``)
or a hub repository with the same files (``--revision``: pin a commit); it
is opened by :func:`speechbrain_w2vbert.inference.folder.load_asr`, which
refuses a ``hyperparams.yaml`` naming code this package's exports never name
(``--trust-remote-code`` opens it anyway) and files that differ from the
export's manifest, then loads it with SpeechBrain's ``EncoderASR.from_hparams``,
so the command and the Python API agree.
Files of any format soundfile reads, at any rate and channel count, are
down-mixed and resampled; short files are batched; files longer than
``--chunk-length`` are cut at pauses by a voice-activity detector
(``--segment vad``, the default; :mod:`speechbrain_w2vbert.inference.segmentation`)
and segments longer than a chunk, or whole files with ``--segment fixed``,
are transcribed in overlapping chunks (:mod:`speechbrain_w2vbert.inference.transcriber`).
A file that cannot be read, is empty, too short or holds no speech is
reported on stderr with its name, the others are still transcribed, and the
exit status is 1 if any file failed.

Formats: ``text`` one transcript per line (input order; failed files are
left out); ``tsv`` ``file``, ``duration`` (s), ``text`` columns with a header;
``json`` a list of ``{"file", "text", "duration"[, "words"], "segments"}``
(the JSON form of :class:`~speechbrain_w2vbert.inference.results.Transcript`:
segments ``{"start", "end", "text"[, "words"]}``, words ``{"word", "start",
"end", "confidence"}``; ``{"file", "error"}`` for failed files);
``srt`` and ``vtt`` subtitles: cues of at most two lines of
``--max-line-chars`` and ``--max-cue-seconds``, split at word boundaries
within speech segments (:mod:`speechbrain_w2vbert.inference.subtitles`); words whose
confidence is below ``--mark-confidence`` are in italics. ``--output`` must be
a folder for subtitles of several files: ``<folder>/<name>.srt``.

``align`` aligns known transcripts (UTF-8 text files, ``-`` for stdin;
normalised as training normalises them) to their audio with CTC forced
alignment (:meth:`speechbrain_w2vbert.inference.transcriber.Transcriber.align_waveform`):
word and character times with confidences as ``json`` (the JSON form of
:class:`~speechbrain_w2vbert.inference.results.Alignment`), one cue per segment's
words as ``srt``/``vtt``, or a Praat ``textgrid`` (tiers ``words`` and
``chars``). ``--int8`` runs the encoder's linear layers in int8 (dynamic
quantisation, :mod:`speechbrain_w2vbert.inference.quantization`; CPU only).

Decoding: a model folder with a word n-gram LM (``lm.ckpt``, written by the
recipe) is decoded by beam search with it, with the beam size, LM weight and
word bonus tuned by the recipe; ``--beam-size``, ``--lm-weight`` and
``--word-bonus`` change them, ``--no-lm`` decodes greedily, and
``--hotwords`` favours words or phrases (``--hotword-weight`` per word,
natural-log units; they need the LM). ``export-hf`` writes the folder's LM
in pyctcdecode's layout beside the model.

``export-onnx`` writes the model as ONNX with its vocabulary and LM
(:mod:`speechbrain_w2vbert.onnx.export`; ``--int8`` adds the int8 graph,
``--format sherpa`` a folder for sherpa-onnx); ``transcribe --backend onnx``
runs such a folder with onnxruntime and numpy, without torch
(:class:`speechbrain_w2vbert.onnx.runtime.OnnxTranscriber`), with the same
options and output (docs/onnx.md).

``--output-dir`` makes ``transcribe`` a resumable batch job
(:mod:`speechbrain_w2vbert.inference.jobs`): one JSON per file written
atomically, a ``summary.jsonl``, files already done skipped; under
``torchrun`` each rank takes every n-th file on a device of its own.

``serve`` serves the model over HTTP (:mod:`speechbrain_w2vbert.serve`):
OpenAI's ``POST /v1/audio/transcriptions``, an alignment route, a web page
at ``/``; requests are batched across clients; see docs/service.md.

Example
-------
>>> parser = build_parser()
>>> args = parser.parse_args(["transcribe", "model", "a.wav", "b.flac", "--format", "json"])
>>> args.files, args.format, args.chunk_length, args.stride_length
(['a.wav', 'b.flac'], 'json', 20.0, 4.0)

Authors: speechbrain-w2vbert contributors
"""

import argparse
import contextlib
import csv
import io
import json
import os
import sys
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

# What the torch path needs is imported where it is used: ``transcribe
# --backend onnx`` runs where torch is not installed.
from speechbrain_w2vbert.audio import AudioError
from speechbrain_w2vbert.inference.jobs import (TranscriptionJob, distributed_rank, rank_device, read_manifest,
                                               transcribe_paths)
from speechbrain_w2vbert.inference.manifest import ManifestError
from speechbrain_w2vbert.inference.safety import UnsafeFolderError
from speechbrain_w2vbert.inference.segmentation import VoiceActivitySegmenter
from speechbrain_w2vbert.inference.subtitles import subtitle_cues, to_srt, to_vtt

__all__ = ["build_parser", "transcribe_files", "align_files", "format_results", "main"]

FORMATS = ("text", "json", "tsv", "srt", "vtt")
ALIGN_FORMATS = ("json", "srt", "vtt", "textgrid")
SUFFIXES = {"srt": ".srt", "vtt": ".vtt", "textgrid": ".TextGrid", "json": ".json"}

#: One result per input file: ``(file, Transcript or Alignment)``, or ``(file, error message)``.
FileResult = Tuple[str, object]


def build_parser() -> argparse.ArgumentParser:
    """The ``w2vbert-asr`` argument parser (subcommands ``transcribe``, ``align``, ``serve``, ``export-hf``)."""
    parser = argparse.ArgumentParser(prog="w2vbert-asr", description="w2v-BERT 2.0 CTC speech recognition.")
    commands = parser.add_subparsers(dest="command", required=True)

    def model_options(sub):
        """The model options every subcommand takes."""
        sub.add_argument("model", help="EncoderASR folder (the recipe's inference/) or hub repository")
        sub.add_argument("--savedir",
                         help="where SpeechBrain links/fetches the model files (default: a temporary folder)")
        sub.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0 (default: cpu)")
        sub.add_argument("--revision", help="hub repository revision; pin a commit hash for a repository you "
                                            "do not control")
        sub.add_argument("--trust-remote-code", action="store_true",
                         help="open a model folder whose hyperparams.yaml names code this package's exports never "
                              "name (it runs that code: only for authors you trust)")

    def audio_options(sub, files=True):
        """How audio is cut and run (transcribe, align; serve without the file options)."""
        sub.add_argument("--segment", choices=("vad", "fixed"), default="vad",
                         help="files longer than a chunk: cut at pauses (vad) or in fixed chunks (default: vad)")
        sub.add_argument("--min-pause", type=float, default=0.5,
                         help="seconds of non-speech that end a VAD segment (default: 0.5)")
        sub.add_argument("--vad-threshold", type=float, default=0.5,
                         help="speech probability of the voice-activity detector, in (0, 1) (default: 0.5)")
        sub.add_argument("--batch-size", type=int, default=8,
                         help="files, segments or chunks per forward pass (default: 8)")
        sub.add_argument("--chunk-length", type=float, default=20.0,
                         help="seconds per chunk; longer files are segmented, longer segments chunked (default: 20)")
        sub.add_argument("--stride-length", type=float, default=4.0,
                         help="seconds of context on each side of a chunk, dropped from its output (default: 4)")
        sub.add_argument("--int8", action="store_true",
                         help="int8 dynamic quantisation of the encoder's linear layers (CPU; faster: docs/benchmarks.md)")
        if not files:
            sub.set_defaults(no_progress=True, output=None)
            return
        sub.add_argument("--no-progress", action="store_true", help="no progress bar for chunked files")
        sub.add_argument("--output", help="output file (or folder for subtitles/TextGrids of several files); "
                                          "default stdout")

    def lm_options(sub, hotwords=True):
        """Beam search with the folder's LM (transcribe; serve takes hotwords per request)."""
        sub.add_argument("--lm", action=argparse.BooleanOptionalAction, default=None,
                         help="beam search with the folder's word LM (default: when the folder has one)")
        sub.add_argument("--beam-size", type=int, help="beams per frame (default: the folder's)")
        sub.add_argument("--lm-weight", type=float, help="LM weight, alpha >= 0 (default: the folder's, tuned on dev)")
        sub.add_argument("--word-bonus", type=float, help="score added per word, beta (default: the folder's)")
        if hotwords:
            sub.add_argument("--hotwords", nargs="+", default=(), metavar="WORD", help="words or phrases to favour")
        else:
            sub.set_defaults(hotwords=())
        sub.add_argument("--hotword-weight", type=float, help="bonus per hotword, natural-log units (default: 10)")

    sub = commands.add_parser("transcribe", help="transcribe audio files")
    model_options(sub)
    sub.add_argument("files", nargs="*", help="audio files (any format soundfile reads)")
    sub.add_argument("--manifest", help="a text file of audio paths, one per line (with or instead of FILES)")
    sub.add_argument("--output-dir", help="a batch job: one JSON per file in DIR/transcripts/, a summary.jsonl; "
                                          "files already done are skipped; under torchrun each rank takes its "
                                          "share of the files (docs/service.md#batch-jobs)")
    sub.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    audio_options(sub)
    sub.add_argument("--timestamps", choices=("word",), help="add word times and confidences (json)")
    sub.add_argument("--mark-confidence", type=float, metavar="C",
                     help="srt/vtt: words of confidence below C (0-1) in italics")
    sub.add_argument("--max-line-chars", type=int, default=42, help="srt/vtt: characters per line (default: 42)")
    sub.add_argument("--max-cue-seconds", type=float, default=7.0, help="srt/vtt: seconds per cue (default: 7)")
    lm_options(sub)

    sub = commands.add_parser("align", help="align known transcripts to their audio (forced alignment)")
    model_options(sub)
    sub.add_argument("pairs", nargs="+", metavar="AUDIO TRANSCRIPT",
                     help="audio files, each followed by its transcript (a UTF-8 text file, - for stdin)")
    sub.add_argument("--format", choices=ALIGN_FORMATS, default="json", help="output format (default: json)")
    audio_options(sub)

    _serve_parser(commands, model_options, audio_options, lm_options)

    sub = commands.add_parser("export-hf", help="write a transformers Wav2Vec2BertForCTC folder + processor")
    model_options(sub)
    sub.add_argument("out_dir", help="output folder")

    _add_onnx_options(commands, model_options)
    return parser


def _threads_option(sub) -> None:
    """``--threads``, as ``transcribe`` and ``serve`` take it (checked in :func:`main`)."""
    sub.add_argument("--threads", type=int, help="threads the model runs on: torch's, or onnxruntime's with "
                                                 "--backend onnx (default: one per core)")


def _add_onnx_options(commands, model_options) -> None:
    """``export-onnx``, and ``transcribe``'s ``--backend`` and ``--threads``."""
    transcribe = commands.choices["transcribe"]
    transcribe.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                            help="torch: MODEL is an EncoderASR folder; onnx: MODEL is a folder written by "
                                 "export-onnx, run by onnxruntime without torch (--int8: its int8 graph)")
    _threads_option(transcribe)
    sub = commands.add_parser("export-onnx", help="write an ONNX folder (onnxruntime without torch, or sherpa-onnx)")
    model_options(sub)
    sub.add_argument("out_dir", help="output folder")
    sub.add_argument("--int8", action="store_true", help="also write the int8 graph (one file, model.int8.onnx)")
    sub.add_argument("--int8-method", choices=("dynamic", "dynamic_tensor", "nbits8", "nbits4"),
                     help="how the int8 graph is quantised (default: dynamic; docs/onnx.md)")
    sub.add_argument("--format", dest="onnx_format", choices=("onnx", "sherpa"), default="onnx",
                     help="onnx: for onnxruntime (w2vbert-asr --backend onnx); sherpa: for sherpa-onnx's "
                          "fire_red_asr_ctc model type (default: onnx)")


def _serve_parser(commands, model_options, audio_options, lm_options) -> None:
    """The ``serve`` subcommand's options."""
    sub = commands.add_parser("serve", help="serve the model over HTTP: OpenAI's audio transcription API and a "
                                            "web page (docs/service.md)")
    model_options(sub)
    sub.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0: every interface)")
    sub.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0: any free port)")
    sub.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                     help="torch: MODEL is an EncoderASR folder; onnx: a folder written by export-onnx, run by "
                          "onnxruntime without torch (--int8: its int8 graph; no alignment route) (default: torch)")
    _threads_option(sub)
    sub.add_argument("--api-key", default=os.environ.get("W2VBERT_ASR_API_KEY"),
                     help="Bearer key the /v1 routes need (default: $W2VBERT_ASR_API_KEY; none: no key)")
    sub.add_argument("--model-name", help="the model's id in /v1/models (default: the folder's name)")
    sub.add_argument("--language", default="nepali", help="the model's language as verbose_json names it")
    sub.add_argument("--max-batch", type=int, default=16, help="requests per model call at most (default: 16)")
    sub.add_argument("--max-wait-ms", type=float, default=5.0,
                     help="milliseconds to wait for more requests to batch (default: 5)")
    sub.add_argument("--max-queue", type=int, default=64,
                     help="requests waiting for the model at most; more get 503 (default: 64)")
    sub.add_argument("--max-upload-mb", type=float, default=25.0, help="megabytes per upload at most (default: 25)")
    sub.add_argument("--max-audio-seconds", type=float, default=1800.0,
                     help="seconds per recording at most (default: 1800)")
    sub.add_argument("--timeout", type=float, default=300.0,
                     help="seconds per request at most, upload to answer; then 504 (default: 300)")
    sub.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"),
                     help="uvicorn's log level (default: info)")
    audio_options(sub, files=False)
    lm_options(sub, hotwords=False)


def transcribe_files(transcriber, paths: Sequence[str], timestamps: bool = False) -> List[FileResult]:
    """Transcribe files: one ``(path, Transcript)`` per path, in order, or
    ``(path, message)`` for a file that could not be transcribed
    (:func:`speechbrain_w2vbert.inference.jobs.transcribe_paths`)."""
    return transcribe_paths(transcriber, paths, timestamps)


def align_files(transcriber, pairs: Sequence[Tuple[str, str]]) -> List[FileResult]:
    """Align ``(audio, transcript file)`` pairs: one ``(audio, Alignment)``
    per pair, in order, or ``(audio, message)`` for a pair that could not
    be aligned (the message names the transcript file where it is at fault)."""
    from speechbrain_w2vbert.inference.alignment import AlignmentError

    results = []
    for audio, transcript in pairs:
        try:
            if transcript == "-":
                text = sys.stdin.read()
            else:
                with open(transcript, encoding="utf-8") as f:
                    text = f.read()
        except (OSError, UnicodeDecodeError) as error:
            results.append((audio, f"transcript {transcript}: {error}"))
            continue
        try:
            results.append((audio, transcriber.align_waveform(transcriber.read(audio), text)))
        except AlignmentError as error:
            results.append((audio, f"transcript {transcript}: {error}"))
        except AudioError as error:
            results.append((audio, str(error)))
    return results


def _as_json(path: str, result) -> Dict:
    """The JSON form of one file's result: ``{"file", **result.to_json()}`` or ``{"file", "error"}``."""
    return {"file": path, "error": result} if isinstance(result, str) else {"file": path, **result.to_json()}


def format_results(results: Sequence[FileResult], fmt: str, **cue_options) -> str:
    """The successful results as ``text``, ``tsv``, ``json`` (all results),
    ``srt``, ``vtt`` (cues of their segments' words,
    :func:`speechbrain_w2vbert.inference.subtitles.subtitle_cues` with
    ``cue_options``) or ``textgrid`` (alignments)."""
    ok = [(path, r) for path, r in results if not isinstance(r, str)]
    if fmt == "json":
        return json.dumps([_as_json(path, r) for path, r in results], ensure_ascii=False, indent=1) + "\n"
    if fmt == "tsv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
        writer.writerow(["file", "duration", "text"])
        writer.writerows([path, r.duration, r.text] for path, r in ok)
        return buffer.getvalue()
    if fmt in ("srt", "vtt"):
        cues = [cue for _, r in ok for cue in subtitle_cues(r.segments, **cue_options)]
        return to_srt(cues) if fmt == "srt" else to_vtt(cues)
    if fmt == "textgrid":
        from speechbrain_w2vbert.inference.alignment import to_textgrid

        return "".join(to_textgrid(r.words, r.duration) for _, r in ok)
    return "".join(r.text + "\n" for _, r in ok)


def _write(text: str, path: Optional[str]) -> None:
    if path is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)


def _write_results(results: Sequence[FileResult], fmt: str, output: Optional[str], **cue_options) -> None:
    """One output for all results, except subtitles and TextGrids of several
    files: one file each in the folder ``output`` (``<name>.srt``...)."""
    if fmt not in ("srt", "vtt", "textgrid") or len(results) == 1 or output is None:
        _write(format_results(results, fmt, **cue_options), output)
        return
    os.makedirs(output, exist_ok=True)
    for path, result in results:
        if not isinstance(result, str):
            name = os.path.splitext(os.path.basename(path))[0] + SUFFIXES[fmt]
            _write(format_results([(path, result)], fmt, **cue_options), os.path.join(output, name))


def _report(results: Sequence[FileResult]) -> int:
    """Prints each failure on stderr with its file; the exit status."""
    failed = [(path, r) for path, r in results if isinstance(r, str)]
    for path, message in failed:
        print(f"w2vbert-asr: {path}: {message}", file=sys.stderr)
    return 1 if failed else 0


def _decoder(args, asr):
    """The beam-search decoder the options ask for (None: greedy); exits on bad options."""
    from speechbrain_w2vbert.inference.decoding import select_decoder
    from speechbrain_w2vbert.inference.folder import folder_lm_decoder

    try:
        return select_decoder(folder_lm_decoder(asr), args.lm, beam_size=args.beam_size, lm_weight=args.lm_weight,
                              word_bonus=args.word_bonus, hotwords=tuple(args.hotwords),
                              hotword_weight=args.hotword_weight)
    except ValueError as error:
        raise SystemExit(f"w2vbert-asr: {args.model}: {error}") from None


def _transcriber(args, asr, decoder=None):
    """The Transcriber the audio options ask for (exits on bad options)."""
    from speechbrain_w2vbert.inference.quantization import quantize_asr_int8
    from speechbrain_w2vbert.inference.transcriber import Transcriber

    if args.int8:
        try:
            quantize_asr_int8(asr)
        except ValueError as error:
            raise SystemExit(f"w2vbert-asr: {error}") from None
    segmenter = None
    if args.segment == "vad":
        try:
            segmenter = VoiceActivitySegmenter(int(getattr(asr.hparams, "sample_rate", 16000)),
                                               threshold=args.vad_threshold, min_pause=args.min_pause)
        except ValueError as error:
            raise SystemExit(f"w2vbert-asr: --vad-threshold/--min-pause: {error}") from None
    try:
        return Transcriber(asr, args.chunk_length, args.stride_length, args.batch_size,
                           progress=False if args.no_progress else None, decoder=decoder, segmenter=segmenter)
    except ValueError as error:  # chunk/stride lengths that cannot tile a file
        raise SystemExit(f"w2vbert-asr: --chunk-length/--stride-length: {error}") from None


def _needs_folder(args, count: int) -> None:
    if args.format in ("srt", "vtt", "textgrid") and count > 1 and args.output is None:
        raise SystemExit(f"w2vbert-asr: --format {args.format} with several files needs --output FOLDER")


def _input_files(args) -> List[str]:
    """FILES and the manifest's paths; exits when there are none."""
    files = list(args.files)
    if args.manifest:
        try:
            files += read_manifest(args.manifest)
        except (OSError, UnicodeDecodeError) as error:
            raise SystemExit(f"w2vbert-asr: --manifest {args.manifest}: {error}") from None
    if not files:
        raise SystemExit("w2vbert-asr transcribe: no files: give FILE... or --manifest FILES.txt")
    return files


def _run_job(args, transcriber) -> int:
    """``--output-dir``: this rank's share of a resumable batch job."""
    if args.output is not None or args.format != "text":
        raise SystemExit("w2vbert-asr transcribe: --output-dir writes JSON per file; leave out --output and --format")
    rank, world, _ = distributed_rank()
    try:
        job = TranscriptionJob(args.output_dir, _input_files(args))
    except ValueError as error:
        raise SystemExit(f"w2vbert-asr transcribe: {error}") from None
    counts = job.run(transcriber, rank, world, timestamps=args.timestamps == "word")
    where = f"rank {rank} of {world}: " if world > 1 else ""
    print(f"w2vbert-asr: {where}{counts['transcribed']} transcribed, {counts['failed']} failed (see "
          f"{os.path.join(args.output_dir, 'errors')}), {counts['already_done']} already done", file=sys.stderr)
    return 1 if counts["failed"] else 0


def _check_transcribe_options(args) -> None:
    args.files = _input_files(args)
    _needs_folder(args, len(args.files))
    if args.mark_confidence is not None and not 0 <= args.mark_confidence <= 1:
        raise SystemExit("w2vbert-asr: --mark-confidence must be in [0, 1]")


def _run_transcribe(args, open_transcriber) -> int:
    """``transcribe`` with the transcriber ``open_transcriber()`` gives
    (either backend's), opened after the options are checked."""
    if args.output_dir:
        return _run_job(args, open_transcriber())
    _check_transcribe_options(args)
    return _transcribe_and_write(args, open_transcriber())


def _transcribe_and_write(args, transcriber) -> int:
    """Transcribes ``args.files`` with either backend's transcriber, writes the output; the exit status."""
    subtitles = args.format in ("srt", "vtt")
    results = transcribe_files(transcriber, args.files, timestamps=args.timestamps == "word" or subtitles)
    cue_options = {"max_chars": args.max_line_chars, "max_duration": args.max_cue_seconds,
                   "mark_below": args.mark_confidence} if subtitles else {}
    _write_results(results, args.format, args.output, **cue_options)
    return _report(results)


def _run_align(args, asr) -> int:
    if len(args.pairs) % 2:
        raise SystemExit("w2vbert-asr align: give each audio file with its transcript: AUDIO TRANSCRIPT [AUDIO "
                         f"TRANSCRIPT...] (got {len(args.pairs)} paths)")
    pairs = list(zip(args.pairs[::2], args.pairs[1::2]))
    _needs_folder(args, len(pairs))
    results = align_files(_transcriber(args, asr), pairs)
    _write_results(results, args.format, args.output)
    return _report(results)


def _run_export(args, asr) -> int:
    from speechbrain_w2vbert.hf import save_hf_folder  # transformers' processors load only here
    from speechbrain_w2vbert.inference.folder import asr_model, folder_lm_decoder

    model = asr_model(asr)
    save_hf_folder(args.out_dir, model.encoder, model.head, asr.tokenizer, folder_lm_decoder(asr))
    print(args.out_dir)
    return 0


def _run_export_onnx(args, asr) -> int:
    from speechbrain_w2vbert.onnx.export import OnnxExportError, export_asr_onnx

    try:
        export_asr_onnx(asr, args.out_dir, int8=args.int8, format=args.onnx_format, int8_method=args.int8_method)
    except (OnnxExportError, ValueError) as error:
        raise SystemExit(f"w2vbert-asr: {args.model}: {error}") from None
    print(args.out_dir)
    return 0


def _onnx_transcriber(args):
    """The :class:`~speechbrain_w2vbert.onnx.runtime.OnnxTranscriber` of a
    folder written by export-onnx, with the audio and LM options (exits on
    a bad folder or options)."""
    from speechbrain_w2vbert.onnx.runtime import OnnxFolderError, OnnxTranscriber
    from speechbrain_w2vbert.onnx.vad import OnnxVoiceActivitySegmenter

    if args.revision or args.trust_remote_code:
        raise SystemExit("w2vbert-asr: --backend onnx reads a local folder written by export-onnx "
                         "(--revision and --trust-remote-code are for EncoderASR folders)")
    if args.device != "cpu":
        raise SystemExit(f"w2vbert-asr: --backend onnx runs on the CPU (onnxruntime's CPU provider): leave out "
                         f"--device {args.device}, or use --backend torch")
    segmenter = None
    try:
        if args.segment == "vad":
            segmenter = OnnxVoiceActivitySegmenter(threshold=args.vad_threshold, min_pause=args.min_pause)
        return OnnxTranscriber(
            args.model, "int8" if args.int8 else None, args.chunk_length, args.stride_length, args.batch_size,
            progress=False if args.no_progress else None, use_lm=args.lm, beam_size=args.beam_size,
            lm_weight=args.lm_weight, word_bonus=args.word_bonus, hotwords=tuple(args.hotwords),
            hotword_weight=args.hotword_weight, segmenter=segmenter, num_threads=args.threads)
    except (OnnxFolderError, ManifestError, ValueError, ImportError) as error:
        raise SystemExit(f"w2vbert-asr: {error}") from None


def _run_serve(args, asr) -> int:
    try:
        from speechbrain_w2vbert.serve.app import ServiceSettings, create_app, run_server
        from speechbrain_w2vbert.serve.backends import TranscriberBackend
    except ImportError as error:
        raise SystemExit(f"w2vbert-asr serve needs the serve extra ({error.name} is missing): "
                         "pip install 'speechbrain-w2vbert[serve]'") from None
    if args.backend == "onnx":
        backend = TranscriberBackend(_onnx_transcriber(args), "onnx")
    else:
        backend = TranscriberBackend(_transcriber(args, asr, _decoder(args, asr)))
    settings = ServiceSettings(
        model_id=args.model_name or os.path.basename(os.path.normpath(args.model)), language=args.language,
        api_key=args.api_key or None, max_upload_mb=args.max_upload_mb, max_audio_seconds=args.max_audio_seconds,
        max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue, timeout=args.timeout)
    if args.host not in ("127.0.0.1", "localhost", "::1") and settings.api_key is None:
        print(f"w2vbert-asr serve: listening on {args.host} without --api-key: anyone who reaches this port can use "
              "the model", file=sys.stderr)
    try:
        app = create_app(backend, settings)
    except ValueError as error:
        raise SystemExit(f"w2vbert-asr serve: {error}") from None

    def announce(url):
        """Prints where the service listens, once bound."""
        print(f"w2vbert-asr serve: {settings.model_id} on {url} (web page {url}/, API {url}/v1, ready when "
              f"{url}/ready answers 200)", file=sys.stderr, flush=True)

    try:
        run_server(app, args.host, args.port, args.log_level, announce)
    except OSError as error:  # the address is taken, or not this machine's
        raise SystemExit(f"w2vbert-asr serve: cannot listen on {args.host}:{args.port}: {error.strerror}") from None
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``w2vbert-asr``; returns the exit status."""
    args = build_parser().parse_args(argv)
    threads = getattr(args, "threads", None)
    if threads is not None and threads < 1:
        raise SystemExit(f"w2vbert-asr: --threads must be at least 1 (got {threads})")
    if args.command == "transcribe" and args.backend == "onnx":
        return _run_transcribe(args, lambda: _onnx_transcriber(args))  # export-onnx's folder, without torch
    if args.command == "serve" and args.backend == "onnx":  # a folder written by export-onnx, without torch
        return _run_serve(args, None)
    from speechbrain_w2vbert.inference.folder import ModelFolderError, load_asr

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    with contextlib.ExitStack() as stack:
        savedir = args.savedir or stack.enter_context(tempfile.TemporaryDirectory(prefix="w2vbert-asr-"))
        if getattr(args, "output_dir", None):  # a batch job's rank: one device each
            _, world, local_rank = distributed_rank()
            args.device = rank_device(args.device, local_rank, world)
        try:
            asr = load_asr(args.model, savedir, args.device, trust_remote_code=args.trust_remote_code,
                           revision=args.revision)
        except (UnsafeFolderError, ManifestError, ModelFolderError) as error:
            raise SystemExit(f"w2vbert-asr: {error}") from None
        if args.command == "transcribe":
            return _run_transcribe(args, lambda: _transcriber(args, asr, _decoder(args, asr)))
        if args.command == "align":
            return _run_align(args, asr)
        if args.command == "export-onnx":
            return _run_export_onnx(args, asr)
        if args.command == "serve":
            return _run_serve(args, asr)
        return _run_export(args, asr)


if __name__ == "__main__":
    sys.exit(main())
