"""Evaluation on standard test sets: the scoring rule and the overlap report
(speechbrain_w2vbert.text.scoring / .overlap), recipes/OpenSLR54/evaluate.py
on the committed tiny model with each fixture layout (the table's figures
against SpeechBrain's EncoderASR transcripts and ErrorRateStats), the
Hugging Face folder of the same model against its EncoderASR folder (greedy
and with the LM: pyctcdecode against SpeechBrain's beam search), the MMS
baseline (eval_mms_zero_shot.py) and bad input. The recipe's
extra_test_sets path is in tests/test_recipe.py."""

import csv
import json
import os
import random

import numpy as np
import pytest
import torch
from speechbrain.utils.metric_stats import ErrorRateStats

import eval_mms_zero_shot
import evaluate
from evaluation import RECIPE_TEST_NAME, prepare_extra_test_sets
from prepare_test_sets import TEST_SETS_DIR
from speechbrain_w2vbert.text.normalize import normalize_nepali
from speechbrain_w2vbert.text.overlap import text_overlap
from speechbrain_w2vbert.text.scoring import ScoringRule, error_counts, stats_figures
from tests.helpers import MODEL

#: One spec per fixture layout (tests/data/test_sets), and how many each keeps.
FIXTURE_SPECS = {
    "fleurs": "fleurs:" + os.path.join(TEST_SETS_DIR, "fleurs"),
    "fleurs_hf_disk": "fleurs_hf:" + os.path.join(TEST_SETS_DIR, "fleurs_hf", "save_to_disk"),
    "fleurs_hf_parquet": "fleurs_hf:" + os.path.join(TEST_SETS_DIR, "fleurs_hf", "parquet"),
    "cv": "cv:" + os.path.join(TEST_SETS_DIR, "cv", "cv-corpus-17.0-2024-03-15"),
    "openslr43": "openslr43:" + os.path.join(TEST_SETS_DIR, "openslr43"),
    "generic": "tsv:" + os.path.join(TEST_SETS_DIR, "generic", "test.csv") + "?id_column=utt&audio_column=file",
}


def run_evaluate(model, specs, output, *options):
    """evaluate.main with ``--test_set name: spec`` per entry; (exit status, results JSON)."""
    args = [str(model), "--output_folder", str(output)]
    for name, spec in specs.items():
        args += ["--test_set", f"{name}: {spec}"]
    status = evaluate.main([*args, *map(str, options)])
    with open(os.path.join(output, "test_results.json"), encoding="utf-8") as f:
        return status, json.load(f)


def read_rows(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def reference_stats(pairs):
    """SpeechBrain's ErrorRateStats (words, characters) of (id, hyp, ref)
    triples after the stated rule, written out here on its own:
    normalize_nepali with ASCII digits mapped to Devanagari, both sides."""
    wer, cer = ErrorRateStats(), ErrorRateStats(split_tokens=True)
    ids = [i for i, _, _ in pairs]
    hyps = [normalize_nepali(h, ascii_digits_to_devanagari=True).split() for _, h, _ in pairs]
    refs = [normalize_nepali(r, ascii_digits_to_devanagari=True).split() for _, _, r in pairs]
    for stats in (wer, cer):
        stats.append(ids, hyps, refs)
    return wer.summarize("error_rate"), cer.summarize("error_rate")


# --------------------------------------------------------------------------
# The scoring rule and the overlap report
# --------------------------------------------------------------------------
def test_the_rule_normalises_both_sides_and_maps_digits_one_way():
    rule, distinct = ScoringRule(), ScoringRule("distinct")
    hyps, refs = ["राम, २ वटा  किताब।", "म 5 बजे"], ["राम २ वटा किताब", "म ५ बजे।"]
    wer, cer = rule.score(["a", "b"], hyps, refs)
    assert (wer.summarize("error_rate"), cer.summarize("error_rate")) == (0.0, 0.0)
    wer, _ = distinct.score(["a", "b"], hyps, refs)
    assert wer.summarize("num_edits") == 1  # 5 and ५ differ when kept apart
    assert rule.normalize("ROAD 7") == "road ७" and distinct.normalize("ROAD 7") == "road 7"
    assert rule.normalize(rule.normalize("“हो” ।")) == rule.normalize("“हो” ।") == "हो"
    with pytest.raises(ValueError, match="digits must be one of"):
        ScoringRule("arabic")
    assert "2 = २" in rule.describe() and "distinct" in distinct.describe()


def test_figures_equal_errorratestats_and_error_counts():
    """On random pairs with insertions, deletions and substitutions."""
    rng = random.Random(0)
    words = ["राम", "घर", "जान्छ", "२", "2", "सीता", "बजार"]
    ids, hyps, refs = [], [], []
    for i in range(40):
        ref = [rng.choice(words) for _ in range(rng.randint(0, 6))]
        hyp = [w for w in ref if rng.random() > 0.2] + [rng.choice(words) for _ in range(rng.randint(0, 2))]
        ids.append(f"u{i}"), hyps.append(" ".join(hyp)), refs.append(" ".join(ref) or "क")
    figures = stats_figures(*ScoringRule().score(ids, hyps, refs))
    assert (figures["WER"], figures["CER"]) == pytest.approx(reference_stats(list(zip(ids, hyps, refs))))
    rule = ScoringRule()
    counts = error_counts([rule.normalize(h) for h in hyps], [rule.normalize(r) for r in refs])
    assert {k: figures[k] for k in counts} == counts
    assert stats_figures(*ScoringRule().score([], [], [])) == {
        "WER": 0.0, "CER": 0.0, "word_errors": 0, "words": 0, "char_errors": 0, "chars": 0}


def test_overlap_counts_verbatim_sentences_and_oov_words_as_scored():
    rule = ScoringRule()
    report = text_overlap(["राम 2 वटा किताब किन्छ।", "सीता घर", "सीता घर"], ["राम २ वटा किताब किन्छ", "सीता बजार"],
                          ["राम", "2", "वटा", "किताब", "घर"], rule.normalize)
    # the digit rule applies to the training text and the LM's words too
    assert report == {"sentences": 3, "in_training_text": 1, "words": 9, "oov_words": 3, "oov_rate": 3 / 9}
    assert text_overlap(["क"], None, None)["oov_rate"] is None


# --------------------------------------------------------------------------
# evaluate.py on the committed tiny model
# --------------------------------------------------------------------------
def test_each_fixture_layout_is_scored_like_speechbrain(asr, tmp_path):
    """Every layout's fixture: the row counts what the preparation kept and
    dropped, and its figures are SpeechBrain's ErrorRateStats of EncoderASR's
    own transcripts (``transcribe_file``, one file at a time) against the
    prepared references."""
    status, results = run_evaluate(MODEL, FIXTURE_SPECS, tmp_path / "out", "--prepared-folder", tmp_path / "sets")
    assert status == 0 and results["failed"] == {} and results["kind"] == "encoder_asr"
    rows = {row["set"]: row for row in results["rows"]}
    assert list(rows) == list(FIXTURE_SPECS)
    with open(tmp_path / "out" / "test_results.md", encoding="utf-8") as f:
        markdown = f.read()
    for name, row in rows.items():
        with open(tmp_path / "sets" / name / "prep_report.json", encoding="utf-8") as f:
            report = json.load(f)
        prepared = read_rows(tmp_path / "sets" / name / "test.csv")
        assert row["utterances"] == report["kept"]["utterances"] == len(prepared) == 2, name
        assert row["preparation"]["dropped"] == {r: n for r, n in report["drops"].items() if n}
        assert sum(row["preparation"]["dropped"].values()) == report["entries"] - 2
        assert row["hours"] == pytest.approx(sum(float(r["duration"]) for r in prepared) / 3600, abs=1e-6)
        pairs = [(r["ID"], asr.transcribe_file(r["wav"]), r["wrd"]) for r in prepared]
        assert (row["greedy"]["WER"], row["greedy"]["CER"]) == pytest.approx(reference_stats(pairs)), name
        assert row["words"] == sum(len(normalize_nepali(r["wrd"], True).split()) for r in prepared)
        assert row["lm"] is None and row["overlap"]["in_training_text"] is None  # no LM, no --train-text
        assert f"| {name} | 2 |" in markdown
        with open(tmp_path / "out" / f"wer_{name}.txt", encoding="utf-8") as f:
            assert f.read().count("%WER") == 2 * (2 + 1)  # summary + one per utterance, CER and WER
    assert "audio_absent 1" in markdown and "2 = २" in markdown
    # a second run finds the sets prepared
    status, again = run_evaluate(MODEL, {"openslr43": FIXTURE_SPECS["openslr43"]}, tmp_path / "out2",
                                 "--prepared-folder", tmp_path / "sets")
    assert status == 0 and again["rows"][0]["greedy"] == rows["openslr43"]["greedy"]


@pytest.fixture(scope="module")
def tiny_folders(asr, sample_corpus, tmp_path_factory):
    """The tiny model with the sample corpus' 3-gram LM (beam 10, weight
    0.8, word bonus 1.0) exported both ways: (EncoderASR folder, Hugging
    Face folder with the LM in pyctcdecode's layout, train.csv)."""
    from speechbrain_w2vbert.hf import save_hf_folder
    from speechbrain_w2vbert.inference.folder import asr_model, export_inference_folder
    from speechbrain_w2vbert.lm.beam import LMBeamDecoder
    from speechbrain_w2vbert.lm.ngram import NgramLM

    tmp = tmp_path_factory.mktemp("folders")
    train = os.path.join(sample_corpus.save_folder, "train.csv")
    lm = NgramLM.build(train, str(tmp / "lm"), asr.tokenizer, order=3, estimator="kaldingram")
    decoder = LMBeamDecoder(asr.tokenizer.tokens, asr.tokenizer.blank_index, lm.path, beam_size=10,
                            lm_weight=0.8, word_bonus=1.0)
    model = asr_model(asr)
    export_inference_folder(str(tmp / "asr"), model.encoder, model.head, asr.tokenizer, decoder)
    save_hf_folder(str(tmp / "hf"), model.encoder, model.head, asr.tokenizer, decoder)
    return str(tmp / "asr"), str(tmp / "hf"), train


@pytest.mark.slow
def test_hf_folder_gives_the_figures_of_the_encoder_asr_folder(tiny_folders, sample_corpus, tmp_path):
    """The sample's unseen test speaker (19 utterances): transformers +
    pyctcdecode on the Hugging Face folder give the EncoderASR folder's
    greedy and LM transcripts, so the same table; the overlap report is
    the sample's (84 of 85 test words are in the training text)."""
    encoder_asr, hf, train = tiny_folders
    specs = {"sample_test": "tsv:" + os.path.join(sample_corpus.save_folder, "test.csv")}
    options = ("--prepared-folder", tmp_path / "sets", "--beam-size", 10, "--train-text", train)
    _, ours = run_evaluate(encoder_asr, specs, tmp_path / "asr", *options)
    _, theirs = run_evaluate(hf, specs, tmp_path / "hf", *options)
    assert (ours["kind"], theirs["kind"]) == ("encoder_asr", "hf")
    row, other = ours["rows"][0], theirs["rows"][0]
    assert row["utterances"] == 19 and 0 < row["greedy"]["WER"] < 100 and row["lm"]["WER"] < row["greedy"]["WER"]
    for key in ("utterances", "hours", "words", "greedy", "lm", "overlap"):
        assert row[key] == other[key], key
    assert row["overlap"] == {"sentences": 19, "in_training_text": 1, "words": 85, "oov_words": 1,
                              "oov_rate": 1 / 85}
    for kind in ("greedy", "lm"):  # the same hypotheses, utterance by utterance
        with open(row["alignments"][kind], encoding="utf-8") as a, open(other["alignments"][kind],
                                                                        encoding="utf-8") as b:
            assert a.read().split("\n", 1)[1] == b.read().split("\n", 1)[1]
    # --no-lm: greedy only, the same greedy figures
    _, greedy = run_evaluate(hf, specs, tmp_path / "hf_greedy", *options, "--no-lm")
    assert greedy["rows"][0]["lm"] is None and greedy["rows"][0]["greedy"] == row["greedy"]


# --------------------------------------------------------------------------
# The MMS baseline
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_mms(tmp_path_factory):
    """A folder laid out like facebook/mms-1b-all, tiny and random: a
    Wav2Vec2ForCTC with adapter layers, a per-language adapter file
    (adapter.npi.safetensors: adapter layers + output layer over the Nepali
    vocabulary) and a processor whose vocab.json holds several languages.
    Returns (folder, the Nepali model whose adapter was saved)."""
    from safetensors.torch import save_file
    from transformers import (Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC,
                              Wav2Vec2Processor)

    from speechbrain_w2vbert.models.wav2vec2 import TINY_CONFIG_DIRS

    folder = str(tmp_path_factory.mktemp("mms"))
    special = ["<pad>", "<s>", "</s>", "<unk>", "|"]
    vocab = {"npi": special + list("कखगघचछजटडतदनपबमयरलवसहािीुूेैोौंँ्"), "eng": special + list("abcde")}
    vocab = {lang: {c: i for i, c in enumerate(chars)} for lang, chars in vocab.items()}
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    tokenizer = Wav2Vec2CTCTokenizer(os.path.join(folder, "vocab.json"), target_lang="eng")
    extractor = Wav2Vec2FeatureExtractor.from_pretrained(TINY_CONFIG_DIRS["wav2vec2_tiny_layer"])
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)

    def model(lang):
        config = Wav2Vec2Config.from_pretrained(TINY_CONFIG_DIRS["wav2vec2_tiny_layer"], adapter_attn_dim=8,
                                                vocab_size=len(vocab[lang]))
        return Wav2Vec2ForCTC(config)

    torch.manual_seed(0)
    model("eng").save_pretrained(folder)
    nepali = model("npi")
    save_file({k: v.contiguous() for k, v in nepali._get_adapters().items()},
              os.path.join(folder, "adapter.npi.safetensors"))
    return folder, nepali


def test_mms_baseline_is_one_case_of_evaluate(tiny_mms, tmp_path):
    """The Nepali adapter and vocabulary are the ones in use; padded batches
    give each utterance its own log-probabilities; eval_mms_zero_shot.py is evaluate.py
    with --kind mms and its --test_csv as the openslr54_test set."""
    folder, nepali = tiny_mms
    model = evaluate.HFCTCModel(folder, target_lang="npi")
    assert model.processor.tokenizer.target_lang == "npi"
    assert model.processor.tokenizer.vocab_size == nepali.config.vocab_size
    torch.testing.assert_close(model.model.lm_head.weight, nepali.lm_head.weight, atol=0, rtol=0)
    specs = {"generic": FIXTURE_SPECS["generic"], "openslr43": FIXTURE_SPECS["openslr43"]}
    status, many = run_evaluate(folder, specs, tmp_path / "many", "--target_lang", "npi",
                                "--prepared-folder", tmp_path / "sets")
    assert status == 0 and many["kind"] == "mms"
    assert all(r["lm"] is None and r["utterances"] == 2 for r in many["rows"])
    rows = [r for name in specs for r in read_rows(tmp_path / "sets" / name / "test.csv")]
    alone, _ = evaluate.kept_log_probs(model, rows, max_seconds=0.01)
    batched, _ = evaluate.kept_log_probs(model, rows, max_seconds=100)
    assert list(alone) == list(batched) == [r["ID"] for r in rows]
    for uid, (log_probs, _) in alone.items():  # the padded batch's valid frames are the utterance's own
        np.testing.assert_allclose(batched[uid][0], log_probs, atol=2e-4, rtol=0)

    test_csv = tmp_path / "sets" / "generic" / "test.csv"
    out = tmp_path / "wrapper"
    assert eval_mms_zero_shot.main([f"--test_csv={test_csv}", f"--output_folder={out}", f"--model={folder}",
                                    "--device=cpu", "--test_set", f"slr43: {FIXTURE_SPECS['openslr43']}",
                                    "--prepared-folder", str(tmp_path / "sets")]) == 0
    with open(out / "test_results.json", encoding="utf-8") as f:
        wrapped = json.load(f)
    assert [r["set"] for r in wrapped["rows"]] == ["openslr54_test", "slr43"] and wrapped["kind"] == "mms"
    assert wrapped["rows"][0]["greedy"] == many["rows"][0]["greedy"]
    with open(out / "wer_openslr54_test.txt", encoding="utf-8") as f:
        assert f.read().count("%WER") == 2 * (2 + 1)


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------
def test_a_set_that_cannot_be_prepared_is_reported_and_the_others_scored(tmp_path, capsys):
    specs = {"missing": "openslr43:" + str(tmp_path / "nowhere"), "openslr43": FIXTURE_SPECS["openslr43"]}
    status, results = run_evaluate(MODEL, specs, tmp_path / "out")
    assert status == 1 and [r["set"] for r in results["rows"]] == ["openslr43"]
    assert "no line_index.tsv" in results["failed"]["missing"]
    assert "evaluate: missing: " in capsys.readouterr().err
    with open(tmp_path / "out" / "test_results.md", encoding="utf-8") as f:
        assert "Not evaluated: missing:" in f.read()


def test_bad_model_folders_and_arguments_are_one_line_errors(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    spec = ["--test_set", FIXTURE_SPECS["openslr43"], "--output_folder", str(tmp_path / "out")]
    with pytest.raises(SystemExit, match="name its kind with --kind"):
        evaluate.main([str(folder), *spec])
    with pytest.raises(SystemExit, match="not a model folder"):
        evaluate.main([str(folder), "--kind", "encoder_asr", *spec])
    with pytest.raises(SystemExit, match="test set names must be unique"):
        evaluate.main([MODEL, *spec, "--test_set", FIXTURE_SPECS["openslr43"]])
    with pytest.raises(SystemExit, match="no such training text file"):
        evaluate.main([MODEL, *spec, "--train-text", str(tmp_path / "none.txt")])
    with pytest.raises(SystemExit, match="has no language model"):
        evaluate.main([MODEL, *spec, "--lm"])


def test_audio_unreadable_at_decoding_is_counted_not_scored(asr, tmp_path):
    model = evaluate.EncoderASRModel(asr)
    good = os.path.join(TEST_SETS_DIR, "generic", "audio", "g1.flac")
    rows = [{"ID": "a", "duration": "1.0", "wav": good, "wrd": "नमस्ते"},
            {"ID": "b", "duration": "1.0", "wav": str(tmp_path / "gone.flac"), "wrd": "घर"}]
    kept, unreadable = evaluate.kept_log_probs(model, rows)
    assert list(kept) == ["a"] and list(unreadable) == ["b"] and "gone.flac" in unreadable["b"]
    log_probs, ref = kept["a"]
    assert ref == "नमस्ते" and np.allclose(np.exp(log_probs).sum(-1), 1.0, atol=1e-4)


def test_recipe_extra_sets_are_checked_before_training(tmp_path):
    for name in (RECIPE_TEST_NAME, "dev"):
        with pytest.raises(ValueError, match="name the recipe's own splits"):
            prepare_extra_test_sets([f"{name}: {FIXTURE_SPECS['openslr43']}"], str(tmp_path), 0.035)
    with pytest.raises(FileNotFoundError, match="no line_index.tsv"):
        prepare_extra_test_sets(["slr43: openslr43:" + str(tmp_path / "nowhere")], str(tmp_path), 0.035)
    reports = prepare_extra_test_sets([{"slr43": FIXTURE_SPECS["openslr43"]}], str(tmp_path), 0.035)
    assert reports["slr43"]["kept"]["utterances"] == 2 and os.path.isfile(reports["slr43"]["csv"])
    assert prepare_extra_test_sets([], str(tmp_path), 0.035) == {}
