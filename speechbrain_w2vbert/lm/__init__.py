"""Word n-gram language models: building them from transcripts
(:mod:`speechbrain_w2vbert.lm.ngram`) and CTC beam search with them
(:mod:`speechbrain_w2vbert.lm.beam`)."""
