#!/usr/bin/env bash
# Regenerates the committed test audio (needs espeak-ng and sox); tests only read the FLACs.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
espeak-ng -v ne -w "$tmp/a.wav" "नेपाल एक सुन्दर देश हो। यहाँ हिमाल, पहाड र तराई छन्।"
sox "$tmp/a.wav" -r 16000 -c 1 -b 16 ne_speech_a.flac
espeak-ng -v ne+f2 -s 150 -p 70 -w "$tmp/b.wav" "२००५ मा बिते, म काठमाडौं जान्छु"
sox "$tmp/b.wav" -r 16000 -c 1 -b 16 ne_speech_b.flac
rm -r "$tmp"
