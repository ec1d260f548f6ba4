#!/usr/bin/env bash
# Installs what the test suite needs: the Python test dependencies and, when run as root on Debian, Debian's
# Chromium (the UI test), the General-MIDI SoundFonts (the renderer tests) and FluidSynth (the SoundFont export test).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}

# Python packages first: a machine whose apt sources are unreachable still gets them.
"$PYTHON" -m pip install -q -r requirements-dev.txt
# tinysoundfont declares pyaudio (playback only, needs portaudio headers to build); rendering does not use it.
"$PYTHON" -m pip install -q --no-deps tinysoundfont==0.3.7

if [ "$(id -u)" = 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium fluid-soundfont-gm timgm6mb-soundfont fluidsynth >/dev/null
fi
