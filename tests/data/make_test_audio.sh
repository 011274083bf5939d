#!/usr/bin/env bash
# Regenerates the committed test audio (needs espeak-ng and sox); tests only read the FLACs.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
espeak-ng -v ne -w "$tmp/a.wav" "नेपाल एक सुन्दर देश हो। यहाँ हिमाल, पहाड र तराई छन्।"
sox "$tmp/a.wav" -r 16000 -c 1 -b 16 ne_speech_a.flac
espeak-ng -v ne+f2 -s 150 -p 70 -w "$tmp/b.wav" "२००५ मा बिते, म काठमाडौं जान्छु"
sox "$tmp/b.wav" -r 16000 -c 1 -b 16 ne_speech_b.flac
# Six slow utterances joined end to end, each with espeak-ng's digital-silence
# edges kept exact (-D: no dither): 17.7 s.
i=0
while read -r line; do
    i=$((i + 1))
    espeak-ng -v ne -s 120 -w "$tmp/u$i.wav" "$line"
    sox "$tmp/u$i.wav" -D -r 16000 -c 1 -b 16 "$tmp/u$i.flac"
done <<'SENTENCES'
नेपाल एक सुन्दर देश हो।
यहाँ हिमाल, पहाड र तराई छन्।
म काठमाडौं जान्छु।
आज मौसम राम्रो छ।
हामी भोलि बिहान स्कुल जान्छौं।
उनले नयाँ किताब किने।
SENTENCES
sox "$tmp"/u{1,2,3,4,5,6}.flac ne_joined_6.flac
rm -r "$tmp"
