"""The acoustic model: the SeamlessM4T features, the speech encoder lobes
(w2v-BERT 2.0 and the wav2vec 2.0 family), their faster drop-in modules, and
the CTC head, loss and greedy decoding. Imports nothing of the package
outside this wing."""
