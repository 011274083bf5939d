"""``w2vbert-asr``: transcribe recordings and export models from the shell.

::

    w2vbert-asr transcribe MODEL FILE... [--format text|json|tsv|srt|vtt] [--output PATH]
        [--segment vad|fixed] [--min-pause 0.5] [--vad-threshold 0.5]
        [--batch-size 8] [--chunk-length 20] [--stride-length 4] [--timestamps word] [--device cpu]
        [--int8] [--lm | --no-lm] [--beam-size N] [--lm-weight A] [--word-bonus B]
        [--hotwords WORD...] [--hotword-weight W] [--mark-confidence C]
        [--max-line-chars 42] [--max-cue-seconds 7]
    w2vbert-asr align MODEL AUDIO TRANSCRIPT [AUDIO TRANSCRIPT...] [--format json|srt|vtt|textgrid]
        [--output PATH] [--segment vad|fixed] [--int8] [--device cpu]
    w2vbert-asr export-hf MODEL OUT_DIR

``MODEL`` is an ``EncoderASR`` folder written by the recipe (``inference/``)
or a hub repository with the same files; it is loaded with SpeechBrain's
``EncoderASR.from_hparams``, so the command and the Python API agree.
Files of any format soundfile reads, at any rate and channel count, are
down-mixed and resampled; short files are batched; files longer than
``--chunk-length`` are cut at pauses by a voice-activity detector
(``--segment vad``, the default; :mod:`speechbrain_w2vbert.segmentation`)
and segments longer than a chunk, or whole files with ``--segment fixed``,
are transcribed in overlapping chunks (:mod:`speechbrain_w2vbert.transcribe`).
A file that cannot be read, is empty, too short or holds no speech is
reported on stderr with its name, the others are still transcribed, and the
exit status is 1 if any file failed.

Formats: ``text`` one transcript per line (input order; failed files are
left out); ``tsv`` ``file``, ``duration`` (s), ``text`` columns with a header;
``json`` a list of ``{"file", "text", "duration", "segments"[, "words"]}``
(segments: ``{"start", "end", "text"[, "words"]}``; words: ``{"word",
"start", "end", "confidence"}``; ``"error"`` instead for failed files);
``srt`` and ``vtt`` subtitles: cues of at most two lines of
``--max-line-chars`` and ``--max-cue-seconds``, split at word boundaries
within speech segments (:mod:`speechbrain_w2vbert.subtitles`); words whose
confidence is below ``--mark-confidence`` are in italics. ``--output`` must be
a folder for subtitles of several files: ``<folder>/<name>.srt``.

``align`` aligns known transcripts (UTF-8 text files, ``-`` for stdin;
normalised as training normalises them) to their audio with CTC forced
alignment (:meth:`speechbrain_w2vbert.transcribe.Transcriber.align_waveform`):
word and character times with scores as ``json``, one cue per segment's
words as ``srt``/``vtt``, or a Praat ``textgrid`` (tiers ``words`` and
``chars``). ``--int8`` runs the encoder's linear layers in int8 (dynamic
quantisation, :mod:`speechbrain_w2vbert.quantization`; CPU only).

Decoding: a model folder with a word n-gram LM (``lm.ckpt``, written by the
recipe) is decoded by beam search with it, with the beam size, LM weight and
word bonus tuned by the recipe; ``--beam-size``, ``--lm-weight`` and
``--word-bonus`` change them, ``--no-lm`` decodes greedily, and
``--hotwords`` favours words or phrases (``--hotword-weight`` per word,
natural-log units; they need the LM). ``export-hf`` writes the folder's LM
in pyctcdecode's layout beside the model.

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

__all__ = ["build_parser", "load_model", "transcribe_files", "align_files", "format_results", "main"]

FORMATS = ("text", "json", "tsv", "srt", "vtt")
ALIGN_FORMATS = ("json", "srt", "vtt", "textgrid")
SUFFIXES = {"srt": ".srt", "vtt": ".vtt", "textgrid": ".TextGrid", "json": ".json"}


def build_parser() -> argparse.ArgumentParser:
    """The ``w2vbert-asr`` argument parser (subcommands ``transcribe`` and ``export-hf``)."""
    parser = argparse.ArgumentParser(prog="w2vbert-asr", description="w2v-BERT 2.0 CTC speech recognition.")
    commands = parser.add_subparsers(dest="command", required=True)

    def model_options(sub):
        """The model options every subcommand takes."""
        sub.add_argument("model", help="EncoderASR folder (the recipe's inference/) or hub repository")
        sub.add_argument("--savedir",
                         help="where SpeechBrain links/fetches the model files (default: a temporary folder)")
        sub.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0 (default: cpu)")

    def audio_options(sub):
        """How audio is cut and run (transcribe, align)."""
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
                         help="int8 dynamic quantisation of the encoder's linear layers (CPU; faster, see README)")
        sub.add_argument("--no-progress", action="store_true", help="no progress bar for chunked files")
        sub.add_argument("--output", help="output file (or folder for subtitles/TextGrids of several files); "
                                          "default stdout")

    sub = commands.add_parser("transcribe", help="transcribe audio files")
    model_options(sub)
    sub.add_argument("files", nargs="+", help="audio files (any format soundfile reads)")
    sub.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    audio_options(sub)
    sub.add_argument("--timestamps", choices=("word",), help="add word times and confidences (json)")
    sub.add_argument("--mark-confidence", type=float, metavar="C",
                     help="srt/vtt: words of confidence below C (0-1) in italics")
    sub.add_argument("--max-line-chars", type=int, default=42, help="srt/vtt: characters per line (default: 42)")
    sub.add_argument("--max-cue-seconds", type=float, default=7.0, help="srt/vtt: seconds per cue (default: 7)")
    sub.add_argument("--lm", action=argparse.BooleanOptionalAction, default=None,
                     help="beam search with the folder's word LM (default: when the folder has one)")
    sub.add_argument("--beam-size", type=int, help="beams per frame (default: the folder's)")
    sub.add_argument("--lm-weight", type=float, help="LM weight, alpha >= 0 (default: the folder's, tuned on dev)")
    sub.add_argument("--word-bonus", type=float, help="score added per word, beta (default: the folder's)")
    sub.add_argument("--hotwords", nargs="+", default=(), metavar="WORD", help="words or phrases to favour")
    sub.add_argument("--hotword-weight", type=float, help="bonus per hotword, natural-log units (default: 10)")

    sub = commands.add_parser("align", help="align known transcripts to their audio (forced alignment)")
    model_options(sub)
    sub.add_argument("pairs", nargs="+", metavar="AUDIO TRANSCRIPT",
                     help="audio files, each followed by its transcript (a UTF-8 text file, - for stdin)")
    sub.add_argument("--format", choices=ALIGN_FORMATS, default="json", help="output format (default: json)")
    audio_options(sub)

    sub = commands.add_parser("export-hf", help="write a transformers Wav2Vec2BertForCTC folder + processor")
    model_options(sub)
    sub.add_argument("out_dir", help="output folder")
    return parser


def load_model(source: str, savedir: Optional[str] = None, device: str = "cpu"):
    """The ``EncoderASR`` of a model folder or hub repository, loaded with
    ``EncoderASR.from_hparams`` on ``device``."""
    from speechbrain.inference.ASR import EncoderASR

    return EncoderASR.from_hparams(source=source, savedir=savedir, run_opts={"device": device})


def transcribe_files(transcriber, paths: Sequence[str], timestamps: bool = False) -> List[Dict]:
    """Transcribe files; one dict per path, in order, with ``file`` and
    either the transcription or ``error`` (the message of a file that could
    not be transcribed)."""
    from speechbrain_w2vbert.audio import AudioError

    wavs, readable, results = [], [], []
    for path in paths:
        try:
            wavs.append(transcriber.read(path))
            readable.append(len(results))
            results.append({"file": path})
        except AudioError as error:
            results.append({"file": path, "error": str(error)})
    for i, result in zip(readable, transcriber.transcribe_waveforms(wavs, timestamps)):
        results[i].update(result)
    return results


def align_files(transcriber, pairs: Sequence[Tuple[str, str]]) -> List[Dict]:
    """Align ``(audio, transcript file)`` pairs; one dict per pair, in order,
    with ``file`` and ``transcript`` and either the alignment
    (:meth:`~speechbrain_w2vbert.transcribe.Transcriber.align_waveform`) or
    ``error`` (the message of a pair that could not be aligned)."""
    from speechbrain_w2vbert.alignment import AlignmentError
    from speechbrain_w2vbert.audio import AudioError

    results = []
    for audio, transcript in pairs:
        result = {"file": audio, "transcript": transcript}
        try:
            if transcript == "-":
                text = sys.stdin.read()
            else:
                with open(transcript, encoding="utf-8") as f:
                    text = f.read()
        except (OSError, UnicodeDecodeError) as error:
            results.append({**result, "error": f"transcript {transcript}: {error}"})
            continue
        try:
            result.update(transcriber.align_waveform(transcriber.read(audio), text))
        except AlignmentError as error:
            result["error"] = f"transcript {transcript}: {error}"
        except AudioError as error:
            result["error"] = str(error)
        results.append(result)
    return results


def format_results(results: Sequence[Dict], fmt: str, **cue_options) -> str:
    """The successful results as ``text``, ``tsv``, ``json`` (all results),
    ``srt``, ``vtt`` (cues of their segments' words,
    :func:`speechbrain_w2vbert.subtitles.subtitle_cues` with ``cue_options``)
    or ``textgrid`` (one alignment)."""
    from speechbrain_w2vbert.subtitles import subtitle_cues, to_srt, to_vtt

    ok = [r for r in results if "error" not in r]
    if fmt == "json":
        return json.dumps(list(results), ensure_ascii=False, indent=1) + "\n"
    if fmt == "tsv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
        writer.writerow(["file", "duration", "text"])
        writer.writerows([r["file"], r["duration"], r["text"]] for r in ok)
        return buffer.getvalue()
    if fmt in ("srt", "vtt"):
        cues = [cue for r in ok for cue in subtitle_cues(r["segments"], **cue_options)]
        return to_srt(cues) if fmt == "srt" else to_vtt(cues)
    if fmt == "textgrid":
        from speechbrain_w2vbert.alignment import to_textgrid

        return "".join(to_textgrid(r["words"], r["duration"]) for r in ok)
    return "".join(r["text"] + "\n" for r in ok)


def _write(text: str, path: Optional[str]) -> None:
    if path is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)


def _write_results(results: Sequence[Dict], fmt: str, output: Optional[str], **cue_options) -> None:
    """One output for all results, except subtitles and TextGrids of several
    files: one file each in the folder ``output`` (``<name>.srt``...)."""
    if fmt not in ("srt", "vtt", "textgrid") or len(results) == 1 or output is None:
        _write(format_results(results, fmt, **cue_options), output)
        return
    os.makedirs(output, exist_ok=True)
    for result in results:
        if "error" not in result:
            name = os.path.splitext(os.path.basename(result["file"]))[0] + SUFFIXES[fmt]
            _write(format_results([result], fmt, **cue_options), os.path.join(output, name))


def _report(results: Sequence[Dict]) -> int:
    """Prints each failure on stderr with its file; the exit status."""
    for result in results:
        if "error" in result:
            print(f"w2vbert-asr: {result['file']}: {result['error']}", file=sys.stderr)
    return 1 if any("error" in r for r in results) else 0


def folder_decoder(asr):
    """The ``LMBeamDecoder`` of a loaded model folder, or None when it has no LM."""
    decoder = getattr(asr.hparams, "lm_decoder", None)
    return decoder if decoder is not None and decoder.uses_lm else None


def _decoder(args, asr):
    """The beam-search decoder the options ask for (None: greedy)."""
    decoder = folder_decoder(asr)
    wants_lm = args.lm if args.lm is not None else decoder is not None
    if not wants_lm:
        if args.hotwords:
            raise SystemExit("w2vbert-asr: --hotwords need the LM (drop --no-lm)")
        return None
    if decoder is None:
        raise SystemExit(f"w2vbert-asr: {args.model} has no language model (lm.ckpt): drop --lm, or train the "
                         "recipe with lm_decoding: True")
    try:
        return decoder.with_options(beam_size=args.beam_size, lm_weight=args.lm_weight, word_bonus=args.word_bonus,
                                    hotwords=args.hotwords or None, hotword_weight=args.hotword_weight)
    except ValueError as error:
        raise SystemExit(f"w2vbert-asr: {error}") from None


def _transcriber(args, asr, decoder=None):
    """The Transcriber the audio options ask for (exits on bad options)."""
    from speechbrain_w2vbert.segmentation import VoiceActivitySegmenter
    from speechbrain_w2vbert.transcribe import Transcriber

    if args.int8:
        from speechbrain_w2vbert.quantization import quantize_asr_int8

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


def _run_transcribe(args, asr) -> int:
    _needs_folder(args, len(args.files))
    if args.mark_confidence is not None and not 0 <= args.mark_confidence <= 1:
        raise SystemExit("w2vbert-asr: --mark-confidence must be in [0, 1]")
    transcriber = _transcriber(args, asr, _decoder(args, asr))
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
    from speechbrain_w2vbert.export import save_hf_folder

    model = asr.mods.encoder
    save_hf_folder(args.out_dir, model.encoder, model.head, asr.tokenizer, folder_decoder(asr))
    print(args.out_dir)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``w2vbert-asr``; returns the exit status."""
    args = build_parser().parse_args(argv)
    with contextlib.ExitStack() as stack:
        savedir = args.savedir or stack.enter_context(tempfile.TemporaryDirectory(prefix="w2vbert-asr-"))
        asr = load_model(args.model, savedir, args.device)
        if args.command == "transcribe":
            return _run_transcribe(args, asr)
        if args.command == "align":
            return _run_align(args, asr)
        return _run_export(args, asr)


if __name__ == "__main__":
    sys.exit(main())
