"""Decoding and scoring test sets, and the results table of a model: what
``train.py`` (after training, with the best checkpoint) and ``evaluate.py``
(on any model folder) share.

A test set's utterances are kept as CTC log-probabilities ``{id: (log-probs
[T, V] of the valid frames, reference)}``, computed once and decoded
greedily and, when there is one, with the LM; both are scored by the
:class:`~speechbrain_w2vbert.text.scoring.ScoringRule` and written with their
per-utterance alignments (``wer_<set>.txt``, ``wer_<set>_lm.txt``). Each set
becomes one row of the results table (``test_results.md`` and
``test_results.json``): utterances, hours, reference words, greedy WER/CER,
LM WER/CER, then the overlap report beside the LM figures (sentences found
verbatim in the training text, words outside the LM's vocabulary) and what
the preparation dropped.

Authors: speechbrain-w2vbert contributors
"""

import csv
import json
import logging
import os
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from speechbrain.utils.distributed import run_on_main

from speechbrain_w2vbert.lm.ngram import NgramLM
from speechbrain_w2vbert.text.corpus import read_csv_texts
from speechbrain_w2vbert.text.overlap import text_overlap
from speechbrain_w2vbert.text.scoring import ScoringRule, stats_figures, write_alignments

from prepare_test_sets import SPLIT, parse_test_set, prepare_test_sets  # the recipe folder is on sys.path

logger = logging.getLogger(__name__)

__all__ = [
    "RESULTS_NAME",
    "Kept",
    "alignment_paths",
    "decode_and_score",
    "score_set",
    "read_texts",
    "csv_durations",
    "preparation_summary",
    "results_row",
    "results_markdown",
    "write_results",
    "lm_note",
    "OVERLAP_NOTE",
    "RECIPE_TEST_NAME",
    "prepare_extra_test_sets",
    "recipe_test_results",
]

#: The results table's files: ``<folder>/test_results.md`` and ``.json``.
RESULTS_NAME = "test_results"
#: The recipe's own test split, as its row is named.
RECIPE_TEST_NAME = "openslr54_test"
#: Names an extra test set cannot take in the recipe: its splits' and files'.
RESERVED_NAMES = ("train", "dev", "test", "lm_tune", RECIPE_TEST_NAME)

#: Utterance id -> (log-probabilities [T, V] of its valid frames, reference transcript).
Kept = Dict[str, Tuple[object, str]]
#: Log-probabilities of utterances -> their transcripts.
Decode = Callable[[Sequence], List[str]]


def alignment_paths(folder: str, name: str) -> Dict[str, str]:
    """Where a set's alignments go: ``wer_<name>.txt`` (greedy) and
    ``wer_<name>_lm.txt`` (LM), as the recipe names its test set's.

    Example
    -------
    >>> alignment_paths("out", "fleurs")["lm"]
    'out/wer_fleurs_lm.txt'
    """
    return {"greedy": os.path.join(folder, f"wer_{name}.txt"), "lm": os.path.join(folder, f"wer_{name}_lm.txt")}


def decode_and_score(kept: Kept, decode: Decode, rule: ScoringRule):
    """Decode kept log-probabilities and score the transcripts by ``rule``.

    Arguments
    ---------
    kept : dict
        Id -> (log-probabilities [T, V], reference).
    decode : callable
        A list of log-probabilities -> their transcripts (greedy, or beam
        search with an LM).
    rule : ScoringRule
        The scoring.

    Returns
    -------
    wer, cer : speechbrain.utils.metric_stats.ErrorRateStats

    Example
    -------
    >>> import numpy as np
    >>> kept = {"u1": (np.log([[0.1, 0.9], [0.9, 0.1]]), "क")}
    >>> wer, _ = decode_and_score(kept, lambda lps: ["क" for _ in lps], ScoringRule())
    >>> wer.summarize("error_rate")
    0.0
    """
    ids = list(kept)
    hyps = decode([kept[i][0] for i in ids]) if ids else []
    return rule.score(ids, hyps, [kept[i][1] for i in ids])


def score_set(kept: Kept, greedy: Decode, lm: Optional[Decode], rule: ScoringRule, paths: Dict[str, str],
              lm_title: str = "") -> Tuple[Dict, Optional[Dict]]:
    """A set decoded greedily and (``lm`` given) with the LM from the same
    log-probabilities, scored, its alignments written to ``paths``.

    Arguments
    ---------
    kept : dict
        Id -> (log-probabilities [T, V], reference).
    greedy, lm : callable
        Log-probabilities -> transcripts, greedily and with the LM (``lm``
        None: no LM).
    rule : ScoringRule
        The scoring.
    paths : dict
        ``greedy`` and ``lm`` alignment files (:func:`alignment_paths`).
    lm_title : str
        The LM alignments' first line (how the LM decoded).

    Returns
    -------
    greedy, lm : dict
        :func:`~speechbrain_w2vbert.text.scoring.stats_figures` of each
        decoding (``lm`` None without an LM).
    """
    wer, cer = decode_and_score(kept, greedy, rule)
    write_alignments(paths["greedy"], cer, wer, "Greedy decoding")
    figures = stats_figures(wer, cer)
    if lm is None:
        return figures, None
    wer, cer = decode_and_score(kept, lm, rule)
    write_alignments(paths["lm"], cer, wer, lm_title or "Beam search with the LM")
    return figures, stats_figures(wer, cer)


def read_texts(paths: Iterable[str]) -> List[str]:
    """Sentences of training text files: the ``wrd`` column of a ``.csv``
    (the recipe's CSVs), else one sentence a line (UTF-8).

    Raises
    ------
    FileNotFoundError
        A file is missing (the message names it).
    ValueError
        A CSV without a ``wrd`` column.
    """
    sentences: List[str] = []
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such training text file")
        if path.lower().endswith(".csv"):
            try:
                sentences += read_csv_texts(path)
            except KeyError:
                raise ValueError(f"{path}: no 'wrd' column (the recipe's CSVs have one)") from None
        else:
            with open(path, encoding="utf-8", errors="replace") as f:
                sentences += [line.strip() for line in f if line.strip()]
    return sentences


def csv_durations(path: str) -> Dict[str, float]:
    """Id -> duration (s) of a recipe CSV (``ID``, ``duration`` columns)."""
    with open(path, encoding="utf-8", newline="") as f:
        return {row["ID"]: float(row["duration"]) for row in csv.DictReader(f)}


def preparation_summary(report: Optional[Dict]) -> Optional[Dict]:
    """What a set's preparation report says of its input: ``layout``,
    ``source``, ``entries`` read, ``kept`` and ``dropped`` (reason -> count,
    the reasons that occurred), or None for a set not prepared here."""
    if not report:
        return None
    return {"layout": report.get("layout"), "source": report.get("source"), "entries": report.get("entries"),
            "kept": report["kept"]["utterances"],
            "dropped": {reason: n for reason, n in report.get("drops", {}).items() if n}}


def results_row(name: str, durations: Dict[str, float], greedy: Dict, lm: Optional[Dict], overlap: Dict,
                preparation: Optional[Dict] = None, **extra) -> Dict:
    """One row of the results table.

    Arguments
    ---------
    name : str
        The set's name.
    durations : dict
        Id -> seconds of the utterances scored.
    greedy, lm : dict
        :func:`~speechbrain_w2vbert.text.scoring.stats_figures` (``lm`` None: no LM).
    overlap : dict
        :func:`~speechbrain_w2vbert.text.overlap.text_overlap` of its references.
    preparation : dict, optional
        :func:`preparation_summary` of its report.
    **extra
        More fields (e.g. ``alignments``).

    Returns
    -------
    dict
        ``set``, ``utterances``, ``hours``, ``words`` (reference words as
        scored), ``greedy``, ``lm``, ``overlap``, ``preparation`` and ``extra``.
    """
    return {"set": name, "utterances": len(durations), "hours": round(sum(durations.values()) / 3600, 6),
            "words": greedy["words"], "greedy": greedy, "lm": lm, "overlap": overlap,
            "preparation": preparation, **extra}


def _hours(hours: float) -> str:
    return f"{hours:.2f}" if hours >= 1 else f"{hours:.3g}"


def _percent(figures: Optional[Dict], key: str) -> str:
    return "—" if figures is None else f"{figures[key]:.2f}"


def _overlap_cells(overlap: Dict) -> List[str]:
    seen = overlap.get("in_training_text")
    oov = overlap.get("oov_words")
    return ["n/a" if seen is None else f"{seen} of {overlap['sentences']}",
            "n/a" if oov is None else f"{100.0 * overlap['oov_rate']:.1f}% ({oov} of {overlap['words']})"]


def _dropped_cell(row: Dict) -> str:
    preparation, unreadable = row["preparation"], row.get("unreadable_at_decoding")
    later = f"; {len(unreadable)} unreadable when decoded" if unreadable else ""
    if preparation is None:
        return "(the recipe's data preparation: prep_report.json)" + later
    dropped = preparation["dropped"]
    if not dropped:
        return f"none of {preparation['entries']}" + later
    reasons = ", ".join(f"{reason} {n}" for reason, n in dropped.items())
    return f"{sum(dropped.values())} of {preparation['entries']} ({reasons})" + later


def results_markdown(rows: Sequence[Dict], notes: Sequence[str] = ()) -> str:
    """The results as a markdown table, one row per set, and ``notes``
    (the scoring rule, the LM, the sources) as lines below it.

    Example
    -------
    >>> figures = {"WER": 12.5, "CER": 4.0, "words": 8}
    >>> row = results_row("fleurs", {"a": 1800.0}, figures, None, {"sentences": 1, "in_training_text": 0,
    ...                   "words": 8, "oov_words": None, "oov_rate": None})
    >>> print(results_markdown([row]))  # doctest: +NORMALIZE_WHITESPACE
    | Set | Utterances | Hours | Words | Greedy WER % | Greedy CER % | LM WER % | LM CER % | Sentences in training text | LM OOV words | Dropped in preparation |
    | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |
    | fleurs | 1 | 0.5 | 8 | 12.50 | 4.00 | — | — | 0 of 1 | n/a | (the recipe's data preparation: prep_report.json) |
    """
    lines = ["| Set | Utterances | Hours | Words | Greedy WER % | Greedy CER % | LM WER % | LM CER % "
             "| Sentences in training text | LM OOV words | Dropped in preparation |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for row in rows:
        cells = [row["set"], str(row["utterances"]), _hours(row["hours"]), str(row["words"]),
                 _percent(row["greedy"], "WER"), _percent(row["greedy"], "CER"),
                 _percent(row["lm"], "WER"), _percent(row["lm"], "CER"),
                 *_overlap_cells(row["overlap"]), _dropped_cell(row)]
        lines.append("| " + " | ".join(cells) + " |")
    if notes:
        lines.append("")
        lines += [f"- {note}" for note in notes]
    return "\n".join(lines)


def write_results(folder: str, rows: Sequence[Dict], notes: Sequence[str] = (), **info) -> str:
    """Write ``test_results.json`` (``rows``, ``notes`` and ``info``) and
    ``test_results.md`` (the table and notes) into ``folder``, atomically;
    returns the markdown."""
    os.makedirs(folder, exist_ok=True)
    markdown = results_markdown(rows, notes)
    base = os.path.join(folder, RESULTS_NAME)
    with open(base + ".json.tmp", "w", encoding="utf-8") as f:
        json.dump({**info, "notes": list(notes), "rows": list(rows)}, f, indent=2, ensure_ascii=False)
    os.replace(base + ".json.tmp", base + ".json")
    with open(base + ".md.tmp", "w", encoding="utf-8") as f:
        f.write(markdown + "\n")
    os.replace(base + ".md.tmp", base + ".md")
    return markdown


def lm_note(decoder, order: Optional[int] = None) -> str:
    """One line on how the LM decoded (beam, weight, word bonus)."""
    gram = f"{order}-gram " if order else ""
    return (f"LM: beam search ({decoder.beam_size} beams) with the {gram}word LM, weight {decoder.lm_weight}, "
            f"word bonus {decoder.word_bonus}.")


OVERLAP_NOTE = ("Sentences in training text: the set's sentences found verbatim (as scored) in the training and "
                "LM text; LM OOV words: its running words outside the LM's vocabulary.")


# --------------------------------------------------------------------------
# The recipe's side
# --------------------------------------------------------------------------
def prepare_extra_test_sets(specs: Optional[Sequence], folder: str, min_duration: float) -> Dict[str, Dict]:
    """Prepare the recipe's ``extra_test_sets`` into ``test_sets_folder``
    (on the main process; the others then read the reports). The recipe
    calls it before training, so that a wrong path stops the run at once.

    Arguments
    ---------
    specs : sequence of str or dict
        ``name: layout:path`` entries (see ``prepare_test_sets.parse_test_set``).
    folder : str
        Where the sets are prepared (one subfolder each).
    min_duration : float
        Shortest utterance kept, seconds (the encoder's shortest input).

    Returns
    -------
    dict
        Name -> preparation report, with ``csv``: its ``test.csv``.

    Raises
    ------
    ValueError, FileNotFoundError
        A malformed entry, a name used twice or one of :data:`RESERVED_NAMES`,
        or a set that is not where its entry says.
    """
    specs = list(specs or [])
    if not specs:
        return {}
    taken = sorted({parse_test_set(s).name for s in specs} & set(RESERVED_NAMES))
    if taken:
        raise ValueError(f"extra_test_sets: {taken} name the recipe's own splits; choose other names "
                         f"(taken: {', '.join(RESERVED_NAMES)})")
    run_on_main(prepare_test_sets, args=[specs, folder], kwargs={"min_duration": min_duration})
    reports = prepare_test_sets(specs, folder, min_duration=min_duration)  # up to date: reads the reports
    return {name: dict(report, csv=os.path.join(folder, name, f"{SPLIT}.csv")) for name, report in reports.items()}


def recipe_test_results(hparams: Dict, tokenizer, test_greedy: Dict, test_lm: Optional[Dict], lm_decoder,
                        extra_reports: Dict[str, Dict], extra_kept: Dict[str, Kept]) -> str:
    """The recipe's results table: its own test split (figures already
    computed) and each extra test set (decoded here, greedily and with the
    LM, alignments beside ``wer_test.txt``); written to the output folder.

    Arguments
    ---------
    hparams : dict
        The recipe's hyperparameters.
    tokenizer : CharTokenizer or SentencePieceCTCTokenizer
        Greedy decoding's labels.
    test_greedy, test_lm : dict
        ``stats_figures`` of the test split (``test_lm`` None: no LM).
    lm_decoder : LMBeamDecoder, optional
        The tuned LM decoder (None: greedy only).
    extra_reports : dict
        Name -> preparation report (:func:`prepare_extra_test_sets`).
    extra_kept : dict
        Name -> kept log-probabilities of its utterances.

    Returns
    -------
    str
        The markdown (table and notes).
    """
    rule, folder = hparams["scoring"], hparams["output_folder"]
    texts = [hparams["train_csv"], *hparams["lm_extra_texts"]]
    training = read_texts([p for p in texts if os.path.isfile(p)])  # a missing one failed the LM step already
    lm_words = NgramLM(lm_decoder.lm_path).words() if lm_decoder is not None else None

    def overlap(refs):
        """The overlap report of a set's references."""
        return text_overlap(refs, training, lm_words, rule.normalize)

    def greedy(log_probs):
        """Greedy transcripts (the labels of each frame's best token)."""
        return [tokenizer.decode_ctc(lp.argmax(-1).tolist()) for lp in log_probs]

    rows = [results_row(RECIPE_TEST_NAME, csv_durations(hparams["test_csv"]), test_greedy, test_lm,
                        overlap(read_csv_texts(hparams["test_csv"])),
                        alignments={"greedy": hparams["test_wer_file"],
                                    "lm": hparams["test_lm_wer_file"] if test_lm else None})]
    title = "" if lm_decoder is None else lm_note(lm_decoder, (test_lm or {}).get("order"))
    for name, kept in extra_kept.items():
        paths = alignment_paths(folder, name)
        greedy_figures, lm_figures = score_set(kept, greedy, lm_decoder.decode if lm_decoder else None, rule,
                                               paths, title)
        durations = csv_durations(extra_reports[name]["csv"])
        rows.append(results_row(name, {i: durations[i] for i in kept}, greedy_figures, lm_figures,
                                overlap([ref for _, ref in kept.values()]),
                                preparation_summary(extra_reports[name]),
                                alignments={"greedy": paths["greedy"], "lm": paths["lm"] if lm_figures else None}))
    notes = [f"Scoring: {rule.describe()}", OVERLAP_NOTE,
             "Training text: " + ", ".join(os.path.basename(p) + ("" if os.path.isfile(p) else " (missing)")
                                           for p in texts)]
    if lm_decoder is not None:
        notes.append(title)
    markdown = write_results(folder, rows, notes, model=hparams["inference_folder"])
    logger.info("Test sets (best dev checkpoint):\n%s", markdown)
    return markdown
