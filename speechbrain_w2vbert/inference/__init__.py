"""Using a trained model: the ``EncoderASR`` folder, decoding, long
recordings, timestamps, subtitles, forced alignment, int8, and the result
types every front end (CLI, Python, scripts) returns."""
