"""The DDSP synthesiser in the visitor's browser (assets/synth/, Debian's chromium): how soon a key is heard, and
whether eight voices keep up on the audio thread while the pad moves.

- key press -> sound: a real key press (Playwright's keyboard) on a page playing the synthesiser in a 48 kHz
  AudioContext made as the Play tab makes it (the smallest output buffer; the worklet upsamples the decoder's
  16 kHz); the worklet reports the frame of the note's first sample above -80 dBFS, and the context's output
  timestamp turns that frame into the moment it reaches the loudspeakers. From the key event's timeStamp.
- eight voices held while the pad circles for --seconds (moved at every animation frame): the worklet's blocks
  whose process() took a block's duration or more (Date.now(), 1 ms steps: the worklet scope has no finer clock),
  Chromium's own count of audio underruns (AudioContext.playbackStats), and the main thread's long tasks
  (PerformanceObserver 'longtask');
- the same eight voices rendered by an OfflineAudioContext as fast as it can: the audio thread's cost per block,
  measured to the microsecond, against the block's duration;
- the size of what the page downloads for it (weights and code), raw and gzipped, against the 4 MB budget.

The corners are the example grid's four notes (nsynth_core/exports/example_grid.py), encoded by the shipped
WaveNet. Prints the load average beside the figures.

    python -m benchmarks.browser_synth [--seconds 10] [--presses 16]
"""

import argparse
import gzip
import os
import statistics
import time
from pathlib import Path

import numpy as np

from nsynth_core.exports import example_grid
from nsynth_core.explorer.loaded_models import encode_notes, load_model, stacked_z
from nsynth_core.explorer.notes import bundled_notes
from tests.synth_page import ASSETS, synth_page, to_page

SIZE_BUDGET = 4_000_000  # bytes, gzipped
SYNTH_FILES = [ASSETS / "ddsp_synth.bin", ASSETS / "ddsp_synth.json", *sorted((ASSETS / "synth").glob("*.js"))]
CHORD = [48, 52, 55, 60, 64, 67, 72, 76]
KEYS = "awsedftgyhujk"  # C4 upwards, as on the Play tab

# A live 48 kHz context playing the synthesiser, the keyboard's keys playing it from C4.
LIVE = """async ({corners, frames, keys}) => {
  const {createSynth} = await import("/assets/synth/synth_node.js");
  const context = new AudioContext({sampleRate: 48000, latencyHint: 0});  // as the Play tab makes it (play.js)
  const synth = await createSynth(context, {corners: floats(corners), cornerFrames: frames});
  synth.output.connect(context.destination);
  await context.resume();
  const presses = new Map();
  let nextId = 1;
  document.addEventListener("keydown", (event) => {
    if (event.repeat || !keys.includes(event.key)) return;
    const id = nextId++;
    presses.set(id, event.timeStamp);
    synth.noteOn(60 + keys.indexOf(event.key), {id});
  });
  document.addEventListener("keyup", (event) => {
    if (keys.includes(event.key)) synth.noteOff(60 + keys.indexOf(event.key));
  });
  window.live = {context, synth, presses, lastId: () => nextId - 1};
  return {baseLatency: context.baseLatency, outputLatency: context.outputLatency};
}"""
# Milliseconds from the last key press to its first sound at the loudspeakers (null while none is reported yet).
PRESS_TO_SOUND = """async () => {
  const {context, synth, presses, lastId} = window.live;
  const id = lastId(), stats = await synth.stats(), onset = stats.onsets.find((o) => o.id === id);
  if (!onset) return null;
  const stamp = context.getOutputTimestamp();
  return stamp.performanceTime + (onset.frame / context.sampleRate - stamp.contextTime) * 1000 - presses.get(id);
}"""
# Eight keys held while the pad circles (a turn every 2.5 s) for `seconds`, moved at every animation frame.
SWEEP = """async ({seconds, chord}) => {
  const {context, synth} = window.live;
  const longTasks = [];
  const observer = new PerformanceObserver((list) => list.getEntries().forEach((e) => longTasks.push(e.duration)));
  observer.observe({type: "longtask"});
  await synth.stats(true);
  const playedBefore = context.playbackStats.toJSON();
  chord.forEach((pitch, i) => synth.noteOn(pitch, {id: 1000 + i}));
  let moves = 0;
  const started = performance.now();
  await new Promise((resolve) => {
    const move = (now) => {
      const t = (now - started) / 1000;
      if (t > seconds) return resolve();
      const angle = (2 * Math.PI * t) / 2.5;
      synth.setPad(0.5 + 0.5 * Math.cos(angle), 0.5 + 0.5 * Math.sin(angle));
      moves++;
      requestAnimationFrame(move);
    };
    requestAnimationFrame(move);
  });
  const during = await synth.stats(), playedAfter = context.playbackStats.toJSON();
  chord.forEach((pitch) => synth.noteOff(pitch));
  observer.disconnect();
  return {moves, voices: during.voicesSounding, blocks: during.blocks, overBudget: during.overBudget,
          maxBlockMs: during.maxBlockMs, busyMs: during.busyMs, steps: during.steps,
          maxStepsInBlock: during.maxStepsInBlock,
          underruns: playedAfter.underrunEvents - playedBefore.underrunEvents,
          underrunMs: 1000 * (playedAfter.underrunDuration - playedBefore.underrunDuration),
          longTasks: longTasks.length, longTaskMs: longTasks.reduce((a, b) => a + b, 0),
          longestTaskMs: Math.max(0, ...longTasks)};
}"""
# The same eight voices and circling pad in an OfflineAudioContext, timed from the main thread.
OFFLINE = """async ({corners, frames, seconds, chord}) => {
  const {createSynth} = await import("/assets/synth/synth_node.js");
  const rate = 48000, context = new OfflineAudioContext(1, seconds * rate, rate);  // as the Play tab's
  const synth = await createSynth(context, {corners: floats(corners), cornerFrames: frames});
  synth.output.connect(context.destination);
  const points = Math.round(seconds * 60);
  const circle = (f) => Float32Array.from({length: points}, (_, i) => 0.5 + 0.5 * f((2 * Math.PI * i) / 60 / 2.5));
  synth.node.parameters.get("padX").setValueCurveAtTime(circle(Math.cos), 0, seconds);
  synth.node.parameters.get("padY").setValueCurveAtTime(circle(Math.sin), 0, seconds);
  chord.forEach((pitch, i) => synth.noteOn(pitch, {id: i + 1}));
  await synth.stats();
  const started = performance.now();
  await context.startRendering();
  const milliseconds = performance.now() - started, stats = await synth.stats();
  return {milliseconds, blocks: stats.blocks, steps: stats.steps, maxStepsInBlock: stats.maxStepsInBlock,
          blockMs: 1000 * 128 / rate};
}"""


def load_average() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def sizes() -> list[str]:
    lines, raw, packed = [], 0, 0
    for path in SYNTH_FILES:
        data = path.read_bytes()
        compressed = len(gzip.compress(data, 9))
        raw, packed = raw + len(data), packed + compressed
        lines.append(f"  {path.relative_to(ASSETS.parent)}: {len(data) / 1e3:.1f} kB, "
                     f"gzipped {compressed / 1e3:.1f} kB")
    verdict = "within" if packed <= SIZE_BUDGET else "OVER"
    lines.append(f"  in all: {raw / 1e6:.2f} MB, gzipped {packed / 1e6:.2f} MB ({verdict} the "
                 f"{SIZE_BUDGET / 1e6:.0f} MB budget)")
    return lines


def corners_z() -> np.ndarray:
    notes = {note.id: note for note in bundled_notes()}
    wavenet = load_model(example_grid.SHIPPED_CHECKPOINTS / example_grid.ENCODER)
    return stacked_z(encode_notes(wavenet, [notes[name] for name in example_grid.CORNERS]))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the eight voices are held")
    parser.add_argument("--presses", type=int, default=16, help="key presses timed")
    args = parser.parse_args()
    print(f"load average (1 min) {load_average()} before; {os.cpu_count()} CPUs")
    print("Size of the synthesiser's assets:", *sizes(), sep="\n")
    corners = corners_z()
    shared = {"corners": to_page(corners), "frames": corners.shape[1]}
    with synth_page() as page:
        context = page.evaluate(LIVE, {**shared, "keys": KEYS})
        latencies = []
        for press in range(args.presses):
            key = KEYS[press % len(KEYS)]
            page.keyboard.down(key)
            while (milliseconds := page.evaluate(PRESS_TO_SOUND)) is None:
                time.sleep(0.02)
            latencies.append(milliseconds)
            page.keyboard.up(key)
            page.wait_for_timeout(400)  # the release (0.25 s) ends before the next press
        print(f"Key press -> first sound at the loudspeakers over {len(latencies)} presses: median "
              f"{statistics.median(latencies):.1f} ms, min {min(latencies):.1f}, max {max(latencies):.1f} "
              f"(context baseLatency {1000 * context['baseLatency']:.1f} ms, outputLatency "
              f"{1000 * context['outputLatency']:.1f} ms)")
        sweep = page.evaluate(SWEEP, {"seconds": args.seconds, "chord": CHORD})
        print(f"Eight voices held {args.seconds:g} s while the pad moved {sweep['moves']} times: "
              f"{sweep['voices']} voices sounding; {sweep['blocks']} blocks, {sweep['overBudget']} of them took "
              f"its duration or more (longest {sweep['maxBlockMs']} ms, "
              f"{sweep['busyMs'] / sweep['blocks']:.2f} ms on average by Date.now()); {sweep['steps']} network "
              f"steps, at most {sweep['maxStepsInBlock']} in a block; Chromium's underruns: {sweep['underruns']} ({sweep['underrunMs']:.1f} ms); main-thread "
              f"long tasks: {sweep['longTasks']} ({sweep['longTaskMs']:.0f} ms in all, longest "
              f"{sweep['longestTaskMs']:.0f} ms)")
        offline = page.evaluate(OFFLINE, {**shared, "seconds": args.seconds, "chord": CHORD})
        per_block = offline["milliseconds"] / offline["blocks"]
        print(f"The same in an OfflineAudioContext: {offline['blocks']} blocks in {offline['milliseconds']:.0f} ms, "
              f"{per_block:.2f} ms a block of {offline['blockMs']:.0f} ms "
              f"({100 * per_block / offline['blockMs']:.0f} % of the audio thread), {offline['steps']} network steps")
    print(f"load average (1 min) {load_average()} after")


if __name__ == "__main__":
    main()
