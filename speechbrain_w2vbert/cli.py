"""``w2vbert-asr``: transcribe recordings and export models from the shell.

::

    w2vbert-asr transcribe MODEL FILE... [--format text|json|tsv|srt] [--output PATH]
        [--batch-size 8] [--chunk-length 20] [--stride-length 4] [--timestamps word] [--device cpu]
        [--lm | --no-lm] [--beam-size N] [--lm-weight A] [--word-bonus B]
        [--hotwords WORD...] [--hotword-weight W]
    w2vbert-asr export-hf MODEL OUT_DIR

``MODEL`` is an ``EncoderASR`` folder written by the recipe (``inference/``)
or a hub repository with the same files; it is loaded with SpeechBrain's
``EncoderASR.from_hparams``, so the command and the Python API agree.
Files of any format soundfile reads, at any rate and channel count, are
down-mixed and resampled; short files are batched, files longer than
``--chunk-length`` are transcribed in overlapping chunks
(:mod:`speechbrain_w2vbert.transcribe`). A file that cannot be read, is
empty or too short is reported on stderr with its name, the others are
still transcribed, and the exit status is 1 if any file failed.

Formats: ``text`` one transcript per line (input order; failed files are
left out); ``tsv`` ``file``, ``duration`` (s), ``text`` columns with a header;
``json`` a list of ``{"file", "text", "duration"[, "words"]}`` (``"error"``
instead for failed files); ``srt`` subtitles, one cue per word (``--output``
must be a folder when there are several files: ``<folder>/<name>.srt``).

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
from typing import Dict, List, Optional, Sequence

__all__ = ["build_parser", "load_model", "transcribe_files", "format_results", "main"]

FORMATS = ("text", "json", "tsv", "srt")


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

    sub = commands.add_parser("transcribe", help="transcribe audio files")
    model_options(sub)
    sub.add_argument("files", nargs="+", help="audio files (any format soundfile reads)")
    sub.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    sub.add_argument("--output", help="output file (or folder for srt with several files); default stdout")
    sub.add_argument("--batch-size", type=int, default=8, help="files or chunks per forward pass (default: 8)")
    sub.add_argument("--chunk-length", type=float, default=20.0,
                     help="seconds per chunk; longer files are chunked (default: 20)")
    sub.add_argument("--stride-length", type=float, default=4.0,
                     help="seconds of context on each side of a chunk, dropped from its output (default: 4)")
    sub.add_argument("--timestamps", choices=("word",), help="add word start/end times (json, srt)")
    sub.add_argument("--no-progress", action="store_true", help="no progress bar for chunked files")
    sub.add_argument("--lm", action=argparse.BooleanOptionalAction, default=None,
                     help="beam search with the folder's word LM (default: when the folder has one)")
    sub.add_argument("--beam-size", type=int, help="beams per frame (default: the folder's)")
    sub.add_argument("--lm-weight", type=float, help="LM weight, alpha >= 0 (default: the folder's, tuned on dev)")
    sub.add_argument("--word-bonus", type=float, help="score added per word, beta (default: the folder's)")
    sub.add_argument("--hotwords", nargs="+", default=(), metavar="WORD", help="words or phrases to favour")
    sub.add_argument("--hotword-weight", type=float, help="bonus per hotword, natural-log units (default: 10)")

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


def format_results(results: Sequence[Dict], fmt: str) -> str:
    """The successful results as ``text``, ``tsv``, ``json`` or ``srt`` (one file's words)."""
    from speechbrain_w2vbert.timestamps import to_srt

    ok = [r for r in results if "error" not in r]
    if fmt == "json":
        return json.dumps(list(results), ensure_ascii=False, indent=1) + "\n"
    if fmt == "tsv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
        writer.writerow(["file", "duration", "text"])
        writer.writerows([r["file"], r["duration"], r["text"]] for r in ok)
        return buffer.getvalue()
    if fmt == "srt":
        return "".join(to_srt(r["words"]) for r in ok)
    return "".join(r["text"] + "\n" for r in ok)


def _write(text: str, path: Optional[str]) -> None:
    if path is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)


def _write_srt(results: Sequence[Dict], output: Optional[str]) -> None:
    ok = [r for r in results if "error" not in r]
    if len(results) == 1 or output is None:
        _write(format_results(ok, "srt"), output)
        return
    os.makedirs(output, exist_ok=True)
    for result in ok:
        name = os.path.splitext(os.path.basename(result["file"]))[0] + ".srt"
        _write(format_results([result], "srt"), os.path.join(output, name))


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


def _run_transcribe(args, asr) -> int:
    from speechbrain_w2vbert.transcribe import Transcriber

    if args.format == "srt" and len(args.files) > 1 and args.output is None:
        raise SystemExit("w2vbert-asr: --format srt with several files needs --output FOLDER")
    try:
        transcriber = Transcriber(asr, args.chunk_length, args.stride_length, args.batch_size,
                                  progress=False if args.no_progress else None, decoder=_decoder(args, asr))
    except ValueError as error:  # chunk/stride lengths that cannot tile a file
        raise SystemExit(f"w2vbert-asr: --chunk-length/--stride-length: {error}") from None
    results = transcribe_files(transcriber, args.files, timestamps=args.timestamps == "word" or args.format == "srt")
    for result in results:
        if "error" in result:
            print(f"w2vbert-asr: {result['file']}: {result['error']}", file=sys.stderr)
    if args.format == "srt":
        _write_srt(results, args.output)
    else:
        _write(format_results(results, args.format), args.output)
    return 1 if any("error" in r for r in results) else 0


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
        return _run_export(args, asr)


if __name__ == "__main__":
    sys.exit(main())
