"""Training curves from SpeechBrain's ``train_log.txt``, as a PNG.

``FileTrainLogger`` writes one line per epoch such as::

    epoch: 3, steps: 120, lr_encoder: 4.8e-05 - train loss: 1.25 - valid loss: 0.90, valid CER: 21.3, valid WER: 60.1

:func:`read_train_log` parses those lines; :func:`plot_training_curves` draws
the training (and dev) loss and the dev WER and CER per epoch.

Authors: speechbrain-w2vbert contributors
"""

import os
from typing import Dict, List

__all__ = ["read_train_log", "plot_training_curves"]


def _value(text: str):
    try:
        return float(text)
    except ValueError:
        return text.strip()


def read_train_log(path: str) -> List[Dict]:
    """Parse a ``train_log.txt`` into one dict per line.

    Keys are as written (``"epoch"``, ``"train loss"``, ``"valid WER"``, ...);
    numeric values are floats.

    Arguments
    ---------
    path : str
        The log file.

    Returns
    -------
    list of dict

    Example
    -------
    >>> import tempfile
    >>> log = os.path.join(tempfile.mkdtemp(), "train_log.txt")
    >>> _ = open(log, "w").write("epoch: 1, lr: 1.00e-03 - train loss: 2.50 - valid loss: 2.00, valid WER: 90.00\\n")
    >>> read_train_log(log)
    [{'epoch': 1.0, 'lr': 0.001, 'train loss': 2.5, 'valid loss': 2.0, 'valid WER': 90.0}]
    """
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = {}
            for group in line.strip().split(" - "):
                for item in group.split(", "):
                    key, sep, value = item.partition(": ")
                    if sep:
                        row[key.strip()] = _value(value)
            if row:
                rows.append(row)
    return rows


def plot_training_curves(train_log: str, png_path: str, title: str = "") -> str:
    """Plot training loss, dev loss and dev WER/CER per epoch into a PNG.

    Only end-of-epoch lines (those with a ``train loss``) are plotted; when an
    epoch was logged twice (a run resumed after a crash), its last line wins.
    The test WER/CER, if logged, are markers at the epoch of the checkpoint
    that produced them: stars for greedy decoding, crosses for the rows
    logged with ``decoding: LM``.

    Arguments
    ---------
    train_log : str
        ``train_log.txt`` written by ``FileTrainLogger``.
    png_path : str
        Output image.
    title : str
        Figure title (default none).

    Returns
    -------
    str
        ``png_path``.

    Example
    -------
    >>> import tempfile
    >>> tmp = tempfile.mkdtemp()
    >>> log = os.path.join(tmp, "train_log.txt")
    >>> lines = [f"epoch: {e} - train loss: {3 - e:.2f} - valid loss: 2.00, valid CER: {50 - e}.0, valid WER: 90.0"
    ...          for e in (1, 2)] + ["Epoch loaded: 2 - test loss: 2.10, test CER: 48.50, test WER: 91.00",
    ...                             "Epoch loaded: 2, decoding: LM - test CER: 40.00, test WER: 70.00"]
    >>> _ = open(log, "w").write("\\n".join(lines) + "\\n")
    >>> os.path.getsize(plot_training_curves(log, os.path.join(tmp, "curves.png"))) > 0
    True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs: Dict[float, Dict] = {}
    tests = {}  # decoding -> the last test row logged with it
    for row in read_train_log(train_log):
        if "epoch" in row and "train loss" in row:
            epochs[row["epoch"]] = row
        elif "test CER" in row:
            tests[row.get("decoding", "greedy")] = row
    xs = sorted(epochs)
    fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(11, 4))

    def series(key):
        """(epochs, values) of one logged quantity, where it was logged."""
        pts = [(x, epochs[x][key]) for x in xs if isinstance(epochs[x].get(key), float)]
        return [p[0] for p in pts], [p[1] for p in pts]

    for key, style in (("train loss", "o-"), ("valid loss", "s--")):
        x, y = series(key)
        if x:
            ax_loss.plot(x, y, style, label=key.replace("valid", "dev"))
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("CTC loss (per label)")
    ax_loss.set_title("loss")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend()
    for key, style in (("valid WER", "o-"), ("valid CER", "s-")):
        x, y = series(key)
        if x:
            ax_err.plot(x, y, style, label=key.replace("valid", "dev"))
            ax_err.annotate(f"{y[-1]:.1f}", (x[-1], y[-1]), textcoords="offset points", xytext=(4, 4))
    for decoding, test in tests.items():
        if not isinstance(test.get("Epoch loaded"), float):
            continue
        marker, what = ("*", "greedy") if decoding == "greedy" else ("P", "beam + LM")
        for key, color in (("test WER", "C0"), ("test CER", "C1")):
            if isinstance(test.get(key), float):
                ax_err.plot([test["Epoch loaded"]], [test[key]], marker, color=color, markersize=14,
                            markeredgecolor="black", label=f"{key} {test[key]:.1f} ({what}, best dev checkpoint)")
    ax_err.set_xlabel("epoch")
    ax_err.set_ylabel("error rate (%)")
    ax_err.set_title("error rates")
    ax_err.set_ylim(bottom=0)
    ax_err.grid(alpha=0.3)
    ax_err.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(png_path)), exist_ok=True)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path
