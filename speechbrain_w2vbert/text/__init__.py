"""Text: Nepali normalisation, CTC tokenizers, transcript files and
WER/CER scoring. Imports nothing of the package outside this wing, and
nothing here needs torch at import time."""


from speechbrain_w2vbert.compat import legacy_attribute


def __getattr__(name):
    """The names this module had in 0.1.x (see :mod:`speechbrain_w2vbert.compat`)."""
    return legacy_attribute(__name__, name)
