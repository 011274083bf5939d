"""Word n-gram LM decoding: the LM build (kaldingram, and lmplz where it is
on PATH), its validity under kenlm, the weight tuning, beam search + LM
against greedy with the committed test model, the EncoderASR / CLI / Hugging
Face (pyctcdecode) round trips, hotwords and the errors on bad input."""

import json
import os
import shutil

import numpy as np
import pytest
import torch

from speechbrain_w2vbert.lm.beam import LMBeamDecoder, tune_lm_weights
from speechbrain_w2vbert.lm.ngram import LMError, NgramLM, load_kenlm, perplexity
from speechbrain_w2vbert.models.ctc import greedy_decode
from speechbrain_w2vbert.text.scoring import error_counts
from speechbrain_w2vbert.text.tokenizer import CharTokenizer
from tests.helpers import MODEL


@pytest.fixture(scope="module")
def tokenizer():
    return CharTokenizer.load(MODEL)


@pytest.fixture(scope="module")
def lm(sample_corpus, tokenizer, tmp_path_factory):
    """The 3-gram LM of the sample corpus' training transcripts (kaldingram)."""
    folder = str(tmp_path_factory.mktemp("lm"))
    train, dev = (os.path.join(sample_corpus.save_folder, f"{s}.csv") for s in ("train", "dev"))
    return NgramLM.build(train, folder, tokenizer, order=3, dev_csv=dev, estimator="kaldingram")


@pytest.fixture(scope="module")
def test_log_probs(asr, sample_test_rows):
    """The test model's log-probabilities [T, V] of the sample test speaker's utterances, and the references."""
    out = []
    for row in sample_test_rows:
        wav = asr.load_audio(row["wav"])
        with torch.no_grad():
            out.append(asr.encode_batch(wav[None], torch.tensor([1.0]))[0])
    return out, [row["wrd"] for row in sample_test_rows]


def _section(arpa, n):
    """The entries of an ARPA file's n-grams section, as lists of fields."""
    rows, inside = [], False
    with open(arpa, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line == f"\\{n}-grams:":
                inside = True
            elif inside and line.startswith("\\"):
                break
            elif inside and line:
                rows.append(line.split())
    return rows


def _context_sums(model, arpa, contexts=25):
    """Sum over the vocabulary (and </s>) of p(w | h) for histories h taken
    from the ARPA's 2-grams: each should be 1."""
    import kenlm

    words = [row[1] for row in _section(arpa, 1) if row[1] != "<s>"]
    histories = [row[1:3] for row in _section(arpa, 2)]
    sums = []
    for history in histories[:: max(1, len(histories) // contexts)][:contexts]:
        state, out = kenlm.State(), kenlm.State()
        model.NullContextWrite(state) if history[0] != "<s>" else model.BeginSentenceWrite(state)
        for word in history[1:] if history[0] == "<s>" else history:
            model.BaseScore(state, word, out)
            state, out = out, kenlm.State()
        sums.append(sum(10.0 ** model.BaseScore(state, w, kenlm.State()) for w in words))
    return sums


@pytest.mark.parametrize("order", [3, 4, 5])
@pytest.mark.parametrize("estimator", ["kaldingram", "lmplz"])
def test_lm_is_valid_arpa_whose_contexts_sum_to_one(sample_corpus, tokenizer, tmp_path, order, estimator):
    if estimator == "lmplz" and shutil.which("lmplz") is None:
        pytest.skip("lmplz is not on PATH (make lmplz builds it)")
    train = os.path.join(sample_corpus.save_folder, "train.csv")
    report = NgramLM.build(train, str(tmp_path), tokenizer, order=order, estimator=estimator).report
    assert report["estimator"] == estimator and report["order"] == order
    assert sorted(int(n) for n in report["ngram_counts"]) == list(range(1, order + 1))
    model = load_kenlm(report["arpa"])
    assert model.order == order
    sums = _context_sums(model, report["arpa"])
    assert len(sums) >= 10 and max(abs(s - 1.0) for s in sums) < 1e-3, sums


def test_lm_build_report_and_cache(lm, sample_corpus, tokenizer):
    with open(lm.report["report"], encoding="utf-8") as f:
        assert json.load(f)["fingerprint"] == lm.report["fingerprint"]
    assert lm.report["sentences"] == len(sample_corpus.rows("train")) and lm.report["dropped_words"] == 0
    assert 1 < lm.report["dev_perplexity"] < lm.report["vocabulary"] and 0 < lm.report["dev_oov_rate"] < 0.2  # OOVs left out of the ppl
    model = load_kenlm(lm.path)
    sentence = sample_corpus.rows("train")[0]["wrd"]  # no OOV: kenlm's own perplexity
    assert perplexity(model, [sentence]) == (pytest.approx(model.perplexity(sentence), rel=1e-6), 0.0)
    with open(lm.report["unigrams"], encoding="utf-8") as f:
        words = f.read().split()
    assert len(words) == lm.report["vocabulary"] == lm.report["ngram_counts"]["1"] - 3  # <s>, </s>, <unk>
    dev_words = {w for row in sample_corpus.rows("dev") for w in row["wrd"].split()}
    train_words = {w for row in sample_corpus.rows("train") for w in row["wrd"].split()}
    assert set(words) == train_words and set(words) != train_words | dev_words  # train text only
    mtime = os.path.getmtime(lm.path)
    train = os.path.join(sample_corpus.save_folder, "train.csv")
    again = NgramLM.build(train, os.path.dirname(lm.path), tokenizer, order=3, estimator="kaldingram").report
    assert again["fingerprint"] == lm.report["fingerprint"] and os.path.getmtime(lm.path) == mtime  # skipped


def test_lm_extra_text_is_normalised_and_filtered(sample_corpus, tokenizer, tmp_path):
    extra = tmp_path / "extra.txt"
    extra.write_text("नयाँ  शब्द।\nEnglish words here\nअर्को ☃ वाक्य\n", encoding="utf-8")
    train = os.path.join(sample_corpus.save_folder, "train.csv")
    report = NgramLM.build(train, str(tmp_path / "lm"), tokenizer, order=3, extra_texts=[str(extra)],
                            estimator="kaldingram").report
    with open(report["corpus"], encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert lines[-2:] == ["नयाँ शब्द", "अर्को वाक्य"]  # danda and extra space gone, Latin line and ☃ dropped
    assert report["dropped_examples"] == ["☃"]


def test_bad_input_gives_an_error_naming_the_file(sample_corpus, tokenizer, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("ID,duration,wav,spk_id,wrd\nu1,1.0,x.flac,s,ABC\n", encoding="utf-8")
    with pytest.raises(LMError, match="empty.csv"):
        NgramLM.build(str(empty), str(tmp_path / "lm"), tokenizer, order=3, estimator="kaldingram")
    train = os.path.join(sample_corpus.save_folder, "train.csv")
    with pytest.raises(LMError, match="missing.txt"):
        NgramLM.build(train, str(tmp_path / "lm"), tokenizer, extra_texts=[str(tmp_path / "missing.txt")])
    corrupt = tmp_path / "corrupt.arpa"
    corrupt.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0 क\nrubbish\n", encoding="utf-8")
    for path, pattern in ((tmp_path / "none.arpa", "none.arpa: no such"), (corrupt, "corrupt.arpa: kenlm cannot")):
        with pytest.raises(LMError, match=pattern):
            LMBeamDecoder(tokenizer.tokens, lm_path=str(path)).decode([torch.zeros(3, len(tokenizer.tokens))])
    foreign = tmp_path / "foreign.arpa"
    foreign.write_text("\\data\\\nngram 1=4\nngram 2=1\n\n\\1-grams:\n-1.0\t<s>\t-0.3\n-1.0\t</s>\n-0.5\tfoo\t-0.3\n"
                       "-0.5\tbar\t-0.3\n\n\\2-grams:\n-0.2\tfoo bar\n\n\\end\\\n", encoding="utf-8")
    with pytest.raises(LMError, match="foreign.arpa: none of its 2 words"):
        LMBeamDecoder(tokenizer.tokens, lm_path=str(foreign)).searcher


def test_lm_decoding_beats_greedy_and_beam_without_lm(lm, tokenizer, test_log_probs):
    log_probs, refs = test_log_probs
    greedy = [tokenizer.decode_ids(ids) for ids in greedy_decode(torch.nn.utils.rnn.pad_sequence(log_probs, True))]
    beam = LMBeamDecoder(tokenizer.tokens, beam_size=20).decode(log_probs)
    with_lm = LMBeamDecoder(tokenizer.tokens, lm_path=lm.path, beam_size=20, lm_weight=0.5,
                            word_bonus=1.0).decode(log_probs)
    g, b, m = (error_counts(h, refs) for h in (greedy, beam, with_lm))
    assert abs(b["word_errors"] - g["word_errors"]) <= 2  # beam search alone is about greedy
    assert m["word_errors"] < 0.8 * g["word_errors"] and m["char_errors"] < g["char_errors"], (g, m)


def test_tuning_picks_the_best_grid_point(lm, tokenizer, test_log_probs):
    log_probs, refs = test_log_probs
    arrays = [lp.numpy() for lp in log_probs[:10]]
    weights, bonuses = [0.0, 0.5, 2.0], [0.0, 2.0]
    decoder = LMBeamDecoder(tokenizer.tokens, lm_path=lm.path, beam_size=10)
    result = tune_lm_weights(decoder, arrays, refs[:10], weights, bonuses, workers=2)
    # the answer, by decoding every grid point here, one by one
    known = {}
    for a in weights:
        for b in bonuses:
            hyps = LMBeamDecoder(tokenizer.tokens, lm_path=lm.path, beam_size=10, lm_weight=a,
                                 word_bonus=b).decode(arrays)
            known[a, b] = error_counts(hyps, refs[:10])
    assert {(g["lm_weight"], g["word_bonus"]): {k: g[k] for k in known[0.0, 0.0]} for g in result["grid"]} == known
    best = min(known, key=lambda p: (known[p]["word_errors"], known[p]["char_errors"], *p))
    assert (result["lm_weight"], result["word_bonus"]) == best
    assert (decoder.lm_weight, decoder.word_bonus) == best
    assert len({c["word_errors"] for c in known.values()}) > 1  # the grid matters on this data


def test_tuning_is_cached(lm, tokenizer, test_log_probs, tmp_path):
    log_probs, refs = test_log_probs
    arrays = [lp.numpy() for lp in log_probs[:4]]
    cache = str(tmp_path / "tuning.json")
    decoder = LMBeamDecoder(tokenizer.tokens, lm_path=lm.path, beam_size=5)
    threads = torch.get_num_threads()
    first = tune_lm_weights(decoder, arrays, refs[:4], [0.5, 1.0], [1.0], cache_file=cache, cache_key="lm1")
    assert os.path.isfile(cache) and first["workers"] == 1
    assert torch.get_num_threads() == threads  # tuning in this process leaves its thread count alone
    with open(cache, "r+", encoding="utf-8") as f:  # mark the file: a reuse returns the mark
        data = json.load(f)
        data["marked"] = True
        f.seek(0)
        json.dump(data, f)
        f.truncate()
    assert tune_lm_weights(decoder, arrays, refs[:4], [0.5, 1.0], [1.0], cache_file=cache, cache_key="lm1")["marked"]
    redone = tune_lm_weights(decoder, arrays, refs[:4], [0.5, 1.0], [1.0], cache_file=cache, cache_key="lm2")
    assert "marked" not in redone and redone["fingerprint"] != first["fingerprint"]


def test_hotwords_change_the_transcript(tmp_path):
    tokens = ["[PAD]", "[UNK]", "|", "a", "b", "c"]
    tok = CharTokenizer({t: i for i, t in enumerate(tokens)})
    train = tmp_path / "train.csv"
    train.write_text("ID,duration,wav,spk_id,wrd\n" + "".join(f"u{i},1,x,s,ab ab ba\n" for i in range(5)),
                     encoding="utf-8")
    report = NgramLM.build(str(train), str(tmp_path / "lm"), tok, order=2, estimator="kaldingram").report
    # frames: a or c (c slightly more likely acoustically), then b
    probs = torch.full((4, 6), 1e-4)
    probs[0, 3], probs[0, 5] = 0.45, 0.55
    probs[1, 0] = probs[2, 4] = probs[3, 0] = 1.0
    log_probs = (probs / probs.sum(-1, keepdim=True)).log()
    plain = LMBeamDecoder(tokens, lm_path=report["arpa"], beam_size=10, lm_weight=1.0)
    assert plain.decode([log_probs]) == ["ab"]  # the LM knows "ab", not "cb"
    assert plain.with_options(hotwords=["cb"]).decode([log_probs]) == ["cb"]
    with pytest.raises(ValueError, match="hotwords need a language model"):
        LMBeamDecoder(tokens, hotwords=["cb"]).decode([log_probs])


@pytest.fixture(scope="module")
def lm_folder(asr, lm, tmp_path_factory):
    """The test model exported again with the LM (weight 0.5, bonus 1.0)."""
    from speechbrain_w2vbert.inference.folder import asr_model, export_inference_folder

    folder = str(tmp_path_factory.mktemp("lm_model") / "model")
    decoder = LMBeamDecoder(asr.tokenizer.tokens, lm_path=lm.path, beam_size=20, lm_weight=0.5, word_bonus=1.0)
    model = asr_model(asr)
    export_inference_folder(folder, model.encoder, model.head, asr.tokenizer, decoder)
    return folder, decoder


def test_encoder_asr_decodes_with_the_folder_lm(lm_folder, test_log_probs, sample_test_rows, tmp_path):
    from speechbrain.inference.ASR import EncoderASR

    folder, decoder = lm_folder
    assert {"lm.ckpt", "unigrams.txt"} <= set(os.listdir(folder))
    with_lm = EncoderASR.from_hparams(source=folder, savedir=str(tmp_path / "a"))
    greedy = EncoderASR.from_hparams(source=folder, savedir=str(tmp_path / "b"), overrides={"use_lm": False})
    log_probs, _ = test_log_probs
    expected = decoder.decode(log_probs[:6])
    got = [with_lm.transcribe_file(row["wav"]) for row in sample_test_rows[:6]]
    assert got == expected
    greedy_expected = [with_lm.tokenizer.decode_ctc(lp.argmax(-1)) for lp in log_probs[:6]]
    assert [greedy.transcribe_file(row["wav"]) for row in sample_test_rows[:6]] == greedy_expected
    assert got != greedy_expected


def test_cli_lm_options(lm_folder, test_log_probs, sample_test_rows, capsys):
    from speechbrain_w2vbert.cli import main

    folder, decoder = lm_folder
    log_probs, _ = test_log_probs
    files = [row["wav"] for row in sample_test_rows[:4]]
    assert main(["transcribe", folder, *files]) == 0
    assert capsys.readouterr().out.splitlines() == decoder.decode(log_probs[:4])
    assert main(["transcribe", folder, *files, "--no-lm"]) == 0
    assert capsys.readouterr().out.splitlines() == [CharTokenizer.load(MODEL).decode_ctc(lp.argmax(-1))
                                                    for lp in log_probs[:4]]
    assert main(["transcribe", folder, *files, "--lm-weight", "0", "--word-bonus", "0", "--beam-size", "5"]) == 0
    assert capsys.readouterr().out.splitlines() == decoder.with_options(
        lm_weight=0.0, word_bonus=0.0, beam_size=5).decode(log_probs[:4])
    with pytest.raises(SystemExit, match="has no language model"):
        main(["transcribe", MODEL, files[0], "--lm"])
    with pytest.raises(SystemExit, match="hotwords need the LM"):
        main(["transcribe", folder, files[0], "--no-lm", "--hotwords", "घर"])


@pytest.fixture(scope="module")
def hf_lm_folder(lm_folder, tmp_path_factory):
    """``w2vbert-asr export-hf`` of the folder with the LM."""
    from speechbrain_w2vbert.cli import main

    out = str(tmp_path_factory.mktemp("hf_lm") / "hf")
    assert main(["export-hf", lm_folder[0], out]) == 0
    return out


def _hf_logits(folder, rows):
    """The exported transformers model's logits of the rows' files, through its own processor."""
    import soundfile as sf
    from transformers import AutoModelForCTC, AutoProcessor

    processor = AutoProcessor.from_pretrained(folder)
    assert type(processor).__name__ == "Wav2Vec2BertProcessor"  # the plain processor, not the deprecated one
    model = AutoModelForCTC.from_pretrained(folder).eval()
    logits = []
    for row in rows:
        wav, rate = sf.read(row["wav"], dtype="float32")
        with torch.no_grad():
            logits.append(model(**processor(wav, sampling_rate=rate, return_tensors="pt")).logits[0].numpy())
    return logits


def test_hf_export_with_lm_agrees_with_pyctcdecode(lm_folder, hf_lm_folder, test_log_probs, sample_test_rows):
    """The Hugging Face folder keeps the LM in pyctcdecode's layout:
    pyctcdecode's own decoder, loaded from it, gives our LM transcripts."""
    from pyctcdecode import BeamSearchDecoderCTC

    _, decoder = lm_folder
    assert {"alphabet.json", "language_model"} <= set(os.listdir(hf_lm_folder))
    pyctc = BeamSearchDecoderCTC.load_from_dir(hf_lm_folder)
    assert np.isclose(pyctc.model_container[pyctc._model_key].alpha, decoder.lm_weight)
    log_probs, _ = test_log_probs
    theirs = [pyctc.decode(logits, beam_width=decoder.beam_size) for logits in _hf_logits(hf_lm_folder, sample_test_rows)]
    assert theirs == decoder.decode(log_probs)


def test_hf_export_with_lm_loads_in_the_processor_with_lm(lm_folder, hf_lm_folder, test_log_probs, sample_test_rows):
    """Code written for ``Wav2Vec2ProcessorWithLM`` goes on working with the
    folder while transformers has the class (deprecated in 5.23, removed in v6)."""
    import transformers

    if not hasattr(transformers, "Wav2Vec2ProcessorWithLM"):
        pytest.skip(f"transformers {transformers.__version__} has no Wav2Vec2ProcessorWithLM")
    import warnings

    _, decoder = lm_folder
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        processor = transformers.Wav2Vec2ProcessorWithLM.from_pretrained(hf_lm_folder)
    log_probs, _ = test_log_probs
    logits = _hf_logits(hf_lm_folder, sample_test_rows[:6])
    theirs = [processor.decode(lg, beam_width=decoder.beam_size).text for lg in logits]
    assert theirs == decoder.decode(log_probs[:6])


def test_lm_words_have_times_and_confidences(lm_folder, sample_test_rows, capsys):
    """With the LM, the beam search's text is force-aligned for its words:
    they spell the text, in order, inside the file, with confidences."""
    from speechbrain_w2vbert.cli import main

    folder, _ = lm_folder
    files = [row["wav"] for row in sample_test_rows[:4]]
    assert main(["transcribe", folder, *files, "--format", "json", "--timestamps", "word"]) == 0
    for result in json.loads(capsys.readouterr().out):
        words = result["words"]
        assert " ".join(w["word"] for w in words) == " ".join(result["text"].split()) != ""
        assert all(0 <= w["start"] < w["end"] <= result["duration"] for w in words)
        assert all(a["end"] <= b["start"] for a, b in zip(words, words[1:]))
        assert all(0.0 <= w["confidence"] <= 1.0 for w in words)
