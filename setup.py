"""speechbrain-w2vbert: fine-tune w2v-BERT 2.0 with CTC in SpeechBrain."""

import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))

with open(os.path.join(HERE, "README.md"), encoding="utf-8") as readme:
    long_description = readme.read()

setup(
    name="speechbrain-w2vbert",
    version="0.1.0",
    description="SpeechBrain plugin and recipe to fine-tune w2v-BERT 2.0 with CTC (Nepali OpenSLR 54 flagship)",
    long_description=long_description,
    long_description_content_type="text/markdown",
    packages=find_packages(include=["speechbrain_w2vbert", "speechbrain_w2vbert.*"]),
    package_data={"speechbrain_w2vbert": ["configs/*/*.json"]},
    python_requires=">=3.10",
    # Tested together: torch and torchaudio must come from the same release.
    install_requires=[
        "torch==2.11.*",
        "torchaudio==2.11.*",
        "speechbrain>=1.1.2,<1.2",
        "transformers>=5,<6",
        "hyperpyyaml>=1.2",
        "sentencepiece>=0.2",
        "pandas>=2",
        "soundfile>=0.12",
        "matplotlib>=3.7",
    ],
    extras_require={"test": ["pytest>=8"]},
    entry_points={"console_scripts": ["w2vbert-asr=speechbrain_w2vbert.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: Apache Software License",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
    license="Apache-2.0",
)
