// A whole note at once, for tests and for pages that want a note rather than a stream: Z frames [frames, channels]
// (flat, raw as the WaveNet encoder makes them), a MIDI pitch and a noise seed -> audio, as DDSPDecoder.forward.

import {Network} from "./network.js";
import {Voice} from "./voice.js";

// audio + audio convolved with a learnt impulse response whose tap 0 (the dry path) is left out, as ddsp.reverb.
export function addReverb(audio, impulse) {
  const wet = new Float64Array(audio.length);
  for (let tap = 1; tap < impulse.length; tap++) {
    const gain = impulse[tap];
    for (let n = tap; n < audio.length; n++) wet[n] += gain * audio[n - tap];
  }
  return audio.map((sample, n) => sample + wet[n]);
}

// {harmonic, noise, audio}: the two synthesisers' parts and their sum (with the reverb, if the model has one).
export function renderNoteParts(model, z, pitch, seed = 0) {
  const c = model.config, channels = c.latent_channels, frames = z.length / channels;
  if (!Number.isInteger(frames) || frames < 1) {
    throw new Error(`Z must hold whole frames of ${channels} channels; it has ${z.length} values.`);
  }
  const voice = new Voice(new Network(model));
  const length = frames * c.latent_hop, block = voice.synth.hop;
  const harmonic = new Float32Array(length), noise = new Float32Array(length);
  let done = 0;
  const renderReady = () => {
    for (; done < length && voice.ready(block); done += block) voice.render(harmonic, noise, done, block);
  };
  voice.start(pitch, seed);
  for (let frame = 0; frame < frames; frame++) {
    voice.addZFrame(z.subarray(frame * channels, (frame + 1) * channels));
    renderReady();
  }
  voice.end();
  renderReady();
  const dry = harmonic.map((sample, n) => sample + noise[n]);
  const impulse = model.tensors.reverb_impulse;
  return {harmonic, noise, audio: impulse ? addReverb(dry, impulse) : dry};
}

export function renderNote(model, z, pitch, seed = 0) {
  return renderNoteParts(model, z, pitch, seed).audio;
}
