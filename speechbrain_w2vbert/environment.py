"""Do the libraries this package needs load together, and are the private
names of theirs it uses still there?

A torchaudio built for another torch release fails deep inside
``import speechbrain`` with an ``undefined symbol`` from ``libtorchaudio.so``;
:func:`check_imports` turns that into one line naming the versions and what
to do. :data:`PRIVATE_APIS` lists every private (underscore) name of
transformers, SpeechBrain and torch the package relies on, so that a release
that drops one fails here instead of deep inside a run.

From the shell::

    python -m speechbrain_w2vbert.environment     # exit 2 and one line per problem

The lock of the tested environment (``requirements/lock.txt``) is the
development tools' business: ``tools/envcheck.py``.

Authors: speechbrain-w2vbert contributors
"""

import importlib
import importlib.metadata
import re
import sys
from typing import List, Optional, Sequence, Tuple

__all__ = [
    "IMPORTS",
    "PRIVATE_APIS",
    "missing_private_apis",
    "package_requirements",
    "pinned_pair",
    "version_of",
    "check_imports",
    "versions_line",
    "main",
]

#: The modules that must import together, with the distribution that ships
#: each: torchaudio's extension loads only beside the torch it was built for,
#: and SpeechBrain imports torchaudio.
IMPORTS = (
    ("torch", "torch"),
    ("torchaudio", "torchaudio"),
    ("speechbrain", "speechbrain"),
    ("speechbrain.inference.ASR", "speechbrain"),
    ("transformers", "transformers"),
    ("kenlm", "ufal.kenlm"),
    ("speechbrain_w2vbert.models.w2vbert", "speechbrain-w2vbert"),
)

#: Private (underscore) names of transformers and SpeechBrain this package
#: relies on, beside the pins of pyproject.toml: (distribution, dotted name,
#: who uses it). A release that drops or moves one fails
#: ``python -m speechbrain_w2vbert.environment`` (``make install`` runs it)
#: and tests/test_environment.py, instead of failing deep inside a run.
PRIVATE_APIS = (
    ("transformers", "transformers.Wav2Vec2BertModel._from_config",
     "models.w2vbert.build_model: random initialisation with a chosen attention implementation"),
    ("transformers", "transformers.Wav2Vec2BertModel._get_feat_extract_output_lengths",
     "models.w2vbert.W2VBert.output_frames: the adapter's output lengths"),
    ("transformers", "transformers.Wav2Vec2Model._get_feat_extract_output_lengths",
     "models.wav2vec2.Wav2Vec2Encoder.output_frames: the convolution stack's output lengths"),
    ("transformers", "transformers.HubertModel._get_feat_extract_output_lengths",
     "models.wav2vec2.Wav2Vec2Encoder.output_frames (HuBERT)"),
    ("transformers", "transformers.Wav2Vec2BertForCTC._get_feat_extract_output_lengths",
     "recipes/OpenSLR54/evaluate.py: the valid frames of a padded batch (every *ForCTC model)"),
    ("transformers", "transformers.models.wav2vec2.modeling_wav2vec2.Wav2Vec2FeatureEncoder._freeze_parameters",
     "models.wav2vec2.Wav2Vec2Encoder: the frozen CNN feature encoder runs outside autograd"),
    ("transformers", "transformers.models.hubert.modeling_hubert.HubertFeatureEncoder._freeze_parameters",
     "models.wav2vec2.Wav2Vec2Encoder (HuBERT)"),
    ("transformers", "transformers.utils.output_capturing._active_collector",
     "models.attention.attentions_requested: output_attentions=True with the bucketed attention"),
    ("speechbrain", "speechbrain.core.Brain._fit_valid",
     "training.preemption.PreemptibleBrain: dev inside an epoch, the stop after an epoch's dev"),
    ("speechbrain", "speechbrain.core.Brain._fit_train", "training.preemption.PreemptibleBrain: the epoch"),
    ("speechbrain", "speechbrain.core.Brain._should_save_intra_epoch_ckpt",
     "training.preemption.PreemptibleBrain: the per-update stop check, checkpoints only between updates"),
    ("speechbrain", "speechbrain.core.Brain._save_intra_epoch_ckpt",
     "training.preemption.PreemptibleBrain: the checkpoint at a stop; tests/recipe_runner.py"),
    ("speechbrain", "speechbrain.utils.checkpoints.Checkpointer._call_load_hooks",
     "training.checkpoints.AtomicCheckpointer: load errors with the recoverable's name"),
    ("speechbrain", "speechbrain.utils.checkpoints.Checkpointer._save_checkpoint_metafile",
     "training.checkpoints.AtomicCheckpointer: the meta file, written last"),
    ("speechbrain", "speechbrain.utils.checkpoints.Checkpointer._new_checkpoint_dirpath",
     "training.checkpoints.AtomicCheckpointer: the checkpoint's name"),
    ("speechbrain", "speechbrain.utils.checkpoints.Checkpointer._custom_checkpoint_dirpath",
     "training.checkpoints.AtomicCheckpointer: a named checkpoint"),
    ("speechbrain", "speechbrain.utils.checkpoints.Checkpointer._list_checkpoint_dirs",
     "training.checkpoints.AtomicCheckpointer: the checkpoint folders"),
    ("torch", "torch.ao.quantization.quantize_dynamic",
     "inference.quantization.quantize_linear_int8: --int8 (deprecated by torch for torchao, still in the tested torch)"),
)

def package_requirements() -> List[str]:
    """This package's requirements as installed (pyproject.toml's
    dependencies); empty when it is not installed."""
    try:
        return importlib.metadata.requires("speechbrain-w2vbert") or []
    except importlib.metadata.PackageNotFoundError:
        return []


def pinned_pair() -> str:
    """The torch and torchaudio pins of this package's metadata (the tested
    pair), as a pip argument list; empty when the package is not installed.

    Example
    -------
    >>> [pin.split("==")[0] for pin in pinned_pair().split()]
    ['torch', 'torchaudio']
    """
    pins = [re.sub(r"\s+", "", r) for r in package_requirements() if re.match(r"torch(audio)?\s*==", r)]
    return " ".join(sorted(pins))


def fix() -> str:
    """What the error message tells the user to do about a broken pair."""
    pair = pinned_pair()
    also = f", or `pip install {pair}`" if pair else ""
    return (
        "torchaudio must be the build made for the torch beside it: install the tested environment with "
        f"`make install` (requirements/lock.txt){also}"
    )


def version_of(distribution: str) -> str:
    """The installed version of a distribution, or ``not installed``."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _describe(error: BaseException) -> str:
    """The error's last line, then its causes' (torchaudio wraps the
    loader's ``undefined symbol`` message in an ``OSError`` of its own)."""
    parts = []
    while error is not None:
        text = str(error).strip()
        parts.append(f"{type(error).__name__}: {text.splitlines()[-1] if text else ''}".rstrip(": "))
        error = error.__cause__
    return " <- ".join(parts)


def check_imports(modules: Sequence[Tuple[str, str]] = IMPORTS) -> List[str]:
    """Imports each module in turn; returns one line per failure (empty when
    they all load together).

    Each line names the module, the versions of torch, torchaudio and the
    failing module's distribution, the error's last line (e.g. the undefined
    symbol) and the fix. Only the first failure is reported: the modules
    after it import it, so they fail for the same reason.

    Arguments
    ---------
    modules : sequence of (module, distribution)
        What to import, in order (default :data:`IMPORTS`).

    Returns
    -------
    list of str

    Example
    -------
    >>> check_imports([("json", "pip")])
    []
    >>> problem, = check_imports([("no_such_module_here", "pip")])
    >>> problem.startswith("cannot import no_such_module_here")
    True
    """
    for module, distribution in modules:
        try:
            importlib.import_module(module)
        except Exception as error:  # an OSError from a shared library, an ImportError, ...
            detail = _describe(error)
            versions = {name: version_of(name) for name in ("torch", "torchaudio", distribution)}
            listed = ", ".join(f"{name} {version}" for name, version in versions.items())
            return [f"cannot import {module} ({listed}): {detail}. {fix()}."]
    return []


def missing_private_apis(apis: Sequence[Tuple[str, str, str]] = PRIVATE_APIS) -> List[str]:
    """One line per private name of :data:`PRIVATE_APIS` that the installed
    releases lack (empty when all are there).

    Arguments
    ---------
    apis : sequence of (distribution, dotted name, user)
        What to look up (default :data:`PRIVATE_APIS`).

    Returns
    -------
    list of str

    Example
    -------
    >>> missing_private_apis([("pip", "json.dumps", "x")])
    []
    >>> missing_private_apis([("pip", "json._no_such_thing", "the example")])[0].split(" (")[0]
    'json._no_such_thing is gone'
    """
    missing = []
    for distribution, dotted, user in apis:
        parts = dotted.split(".")
        found = None
        for split in range(len(parts), 0, -1):  # the longest importable module, then attributes
            try:
                found = importlib.import_module(".".join(parts[:split]))
            except ImportError:
                continue
            try:
                for name in parts[split:]:
                    found = getattr(found, name)
            except AttributeError:
                found = None
            break
        if found is None:
            missing.append(f"{dotted} is gone ({distribution} {version_of(distribution)}; used by {user})")
    return missing


def versions_line() -> str:
    """torch, torchaudio, SpeechBrain and transformers versions, as the check prints them."""
    return ", ".join(f"{name} {version_of(name)}" for name in ("torch", "torchaudio", "speechbrain", "transformers"))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Prints whether the libraries import together with the private names
    this package uses; returns 0, or 2 with one line per problem on stderr."""
    del argv
    problems = check_imports()
    if not problems:
        problems = [f"{line}: pin the tested release (requirements/lock.txt) or adapt the code"
                    for line in missing_private_apis()]
    for line in problems:
        print(f"speechbrain-w2vbert: {line}", file=sys.stderr)
    if problems:
        return 2
    print(f"speechbrain-w2vbert: {versions_line()} import together, with the {len(PRIVATE_APIS)} private names "
          "this package uses")
    return 0


if __name__ == "__main__":
    sys.exit(main())
