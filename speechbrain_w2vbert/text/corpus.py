"""Reading transcripts from the recipe's SpeechBrain CSV files.

Authors: speechbrain-w2vbert contributors
"""

import csv
from typing import List

__all__ = ["read_csv_texts"]


def read_csv_texts(csv_path: str, column: str = "wrd") -> List[str]:
    """Return the ``column`` values of a SpeechBrain CSV.

    Arguments
    ---------
    csv_path : str
        CSV with a header row (e.g. ``train.csv`` of the data preparation).
    column : str
        Column holding the transcripts.

    Returns
    -------
    list of str

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "train.csv")
    >>> _ = open(path, "w", encoding="utf-8").write("ID,wrd\\na,राम घर\\nb,घर\\n")
    >>> read_csv_texts(path)
    ['राम घर', 'घर']
    """
    with open(csv_path, encoding="utf-8", newline="") as f:
        return [row[column] for row in csv.DictReader(f)]
