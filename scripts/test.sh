#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine, then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: a real browser for the UI test and the General-MIDI SoundFonts the renderer tests use.
if [ "$(id -u)" = 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium fluid-soundfont-gm timgm6mb-soundfont >/dev/null
fi

python -m pip install -q -r requirements-dev.txt
# tinysoundfont declares pyaudio (playback only, needs portaudio headers to build); rendering does not use it.
python -m pip install -q --no-deps tinysoundfont==0.3.7

python -m pytest -q
