// The page's instrument on the audio thread: an AudioWorkletProcessor ("ddsp-synth") playing up to VOICES notes of
// the DDSP decoder at once, each through the network and synthesisers of voice.js, block by block. A voice's Z is
// the mix of four corner notes' Z at the pad's point (AudioParams padX and padY, 0 to 1, see pad.js), taken again
// at each of its Z frames, so the timbre follows the pad while a key is held.
//
// Port messages in: {type: "noteOn", pitch, seed, id}, {type: "noteOff", pitch}, {type: "corners", z, frames}
// (z flat [4, frames, channels]), {type: "envelope", attack, release} (seconds), {type: "stats", reset}; out:
// {type: "stats", ...} (the reply) and {type: "error", message}.
//
// The voices run at the decoder's sample rate; a context at a whole multiple of it (the loudspeakers' rate, which
// spares the browser a resampler and its buffer) gets their sum upsampled (upsample.js).
//
// A network step costs far more than a block's synthesis, so steps are spread over blocks: a voice runs one when its
// next block needs it, and a block's spare steps (up to STEPS_PER_SECOND times its duration in all, at least one)
// run voices one Z frame ahead, so voices started together do not all need a step in the same later block. A key
// pressed when the block's steps are spent starts a block later. Nothing is allocated in process().

import {Network} from "./network.js";
import {bilinearWeights, mixCorners} from "./pad.js";
import {Upsampler} from "./upsample.js";
import {Voice} from "./voice.js";

const VOICES = 8;
const STEPS_PER_SECOND = 375;  // half as many again as eight voices need
const HELD_FRAMES = 93;  // Z frames inside an NSynth note's 3 s hold: a held key stays on the last of them
const SOUNDING = 1e-4;  // a sample above this (-80 dBFS) is sound, for the onset the stats report

// Counts since the processor started or since a {type: "stats", reset: true}; busyMs and maxBlockMs by Date.now(),
// the only clock a worklet has (1 ms steps).
const freshStats = () => ({blocks: 0, busyMs: 0, overBudget: 0, maxBlockMs: 0, steps: 0, maxStepsInBlock: 0});

// What is wrong with a message, in a sentence naming the field and its limits; null when nothing is.
function check(message, channels) {
  const whole = (value, low, high) => Number.isInteger(value) && value >= low && value <= high;
  const seconds = (value) => Number.isFinite(value) && value >= 0 && value <= 10;
  switch (message.type) {
    case "noteOn":
    case "noteOff":
      if (!whole(message.pitch, 0, 127)) {
        return `${message.type}: pitch must be a MIDI note from 0 to 127, not ${message.pitch}.`;
      }
      if (message.seed !== undefined && !whole(message.seed, 0, 2 ** 32 - 1)) {
        return `noteOn: seed must be a whole number from 0 to 2**32 - 1, not ${message.seed}.`;
      }
      return null;
    case "corners":
      if (!whole(message.frames, 1, 100000) || !(message.z instanceof Float32Array) ||
          message.z.length !== 4 * message.frames * channels) {
        return `corners: z must be a Float32Array of 4 x frames x ${channels} values, frames at least 1.`;
      }
      return null;
    case "envelope":
      return seconds(message.attack) && seconds(message.release) ? null
        : "envelope: attack and release must be seconds from 0 to 10.";
    case "stats":
      return null;
    default:
      return `Unknown message type ${message.type}; the synthesiser takes noteOn, noteOff, corners, envelope, stats.`;
  }
}

class DDSPSynthProcessor extends AudioWorkletProcessor {
  static get parameterDescriptors() {
    return [{name: "padX", defaultValue: 0.5, minValue: 0, maxValue: 1, automationRate: "k-rate"},
            {name: "padY", defaultValue: 0.5, minValue: 0, maxValue: 1, automationRate: "k-rate"}];
  }

  constructor(options) {
    super();
    const {model, corners, cornerFrames} = options.processorOptions;
    this.rate = model.config.sample_rate;
    this.factor = sampleRate / this.rate;
    if (!Number.isInteger(this.factor)) {
      throw new Error(`The DDSP synthesiser runs at ${this.rate} Hz or a whole multiple of it, not ${sampleRate} Hz.`);
    }
    this.network = new Network(model);
    const problem = corners && check({type: "corners", z: corners, frames: cornerFrames},
                                     model.config.latent_channels);
    if (problem) throw new Error(problem);
    this.voices = Array.from({length: VOICES}, () => ({
      voice: new Voice(this.network), state: "idle", pitch: 0, seed: 0, id: 0, order: 0, cornerFrame: 0,
      gain: 0, releaseStep: 0, onsetFrame: -1}));
    this.corners = corners || null;
    this.cornerFrames = cornerFrames || 0;
    this.weights = new Float64Array(4);
    this.z = new Float32Array(model.config.latent_channels);
    this.harmonic = new Float32Array(128);
    this.noise = new Float32Array(128);
    this.mixed = new Float32Array(128);  // the voices' sum at the decoder's rate, before upsampling
    this.upsampler = this.factor > 1 ? new Upsampler(this.factor) : null;
    this.upsampled = new Float32Array(128 + this.factor);  // upsampled samples not yet played, from the front
    this.upsampledCount = 0;
    this.attackStep = 1 / (0.005 * this.rate);
    this.releaseSeconds = 0.25;
    this.notesStarted = 0;
    this.seeds = 0;
    this.stats = freshStats();
    this.port.onmessage = (event) => this.receive(event.data);
  }

  receive(message) {
    const problem = check(message, this.network.config.latent_channels);
    if (problem) this.port.postMessage({type: "error", message: problem});
    else if (message.type === "noteOn") this.noteOn(message);
    else if (message.type === "noteOff") this.noteOff(message.pitch);
    else if (message.type === "corners") {
      this.corners = message.z;
      this.cornerFrames = message.frames;
    } else if (message.type === "envelope") {
      this.attackStep = message.attack > 0 ? 1 / (message.attack * this.rate) : Infinity;
      this.releaseSeconds = message.release;
    } else if (message.type === "stats") {
      this.port.postMessage({type: "stats", ...this.stats, voicesSounding: this.voices.filter(
        (v) => v.state !== "idle").length, onsets: this.voices.filter((v) => v.onsetFrame >= 0).map(
        (v) => ({id: v.id, frame: v.onsetFrame}))});
      if (message.reset) this.stats = freshStats();
    }
  }

  noteOn({pitch, seed, id}) {
    if (!this.corners) {
      this.port.postMessage({type: "error", message: "No corners' Z yet: send {type: 'corners'} first."});
      return;
    }
    // A free voice, else the one released longest ago, else the oldest.
    const rank = (v) => (v.state === "idle" ? 0 : v.state === "released" ? 1 : 2);
    const chosen = this.voices.reduce((best, v) => (
      rank(v) < rank(best) || (rank(v) === rank(best) && v.order < best.order) ? v : best));
    Object.assign(chosen, {state: "pending", pitch, seed: seed ?? this.seeds++ % 2 ** 32, id: id ?? 0,
                           order: this.notesStarted++, onsetFrame: -1});
  }

  noteOff(pitch) {
    for (const v of this.voices) {
      if (v.pitch === pitch && (v.state === "held" || v.state === "pending")) {
        if (v.state === "pending") v.state = "idle";
        else {
          v.state = "released";
          v.releaseStep = v.gain / (Math.max(this.releaseSeconds, 1e-3) * this.rate);
        }
      }
    }
  }

  // One network step of voice v, on the corners' Z at the pad's point: the held part of the corner notes while its
  // key is held, on to their release once it is let go.
  step(v) {
    mixCorners(this.corners, this.cornerFrames, this.weights, v.cornerFrame, this.z);
    v.voice.addZFrame(this.z);
    const last = v.state === "released" ? this.cornerFrames - 1 : Math.min(HELD_FRAMES, this.cornerFrames) - 1;
    v.cornerFrame = Math.min(v.cornerFrame + 1, last);
    this.stats.steps++;
  }

  process(inputs, outputs, parameters) {
    const began = Date.now();
    const out = outputs[0][0], length = out.length;
    if (this.upsampled.length < length + this.factor) {  // a render quantum longer than Web Audio's usual 128: once
      this.mixed = new Float32Array(length);
      this.upsampled = new Float32Array(length + this.factor);
    }
    bilinearWeights(parameters.padX[0], parameters.padY[0], this.weights);
    let steps;
    if (!this.upsampler) steps = this.renderVoices(out, length, currentFrame, 1);
    else {  // the decoder's samples this block still lacks, upsampled behind what is left from the last block
      const queue = this.upsampled, count = Math.ceil((length - this.upsampledCount) / this.factor);
      steps = this.renderVoices(this.mixed, count, currentFrame + this.upsampledCount + this.upsampler.delay,
                                this.factor);
      this.upsampler.process(this.mixed, count, queue, this.upsampledCount);
      this.upsampledCount += count * this.factor;
      out.set(queue.subarray(0, length));
      queue.copyWithin(0, length, this.upsampledCount);
      this.upsampledCount -= length;
    }
    const elapsed = Date.now() - began, stats = this.stats;
    stats.blocks++;
    stats.busyMs += elapsed;
    stats.maxBlockMs = Math.max(stats.maxBlockMs, elapsed);
    if (elapsed >= (1000 * length) / sampleRate) stats.overBudget++;
    stats.maxStepsInBlock = Math.max(stats.maxStepsInBlock, steps);
    return true;
  }

  // The voices' next `length` samples at the decoder's rate, summed into mix; sample i is played at context frame
  // firstFrame + i * factor (for the onsets the stats report). Returns the network steps run.
  renderVoices(mix, length, firstFrame, factor) {
    mix.fill(0, 0, length);
    if (this.harmonic.length < length) {
      this.harmonic = new Float32Array(length);
      this.noise = new Float32Array(length);
    }
    let steps = 0;
    const budget = Math.max(1, Math.floor((STEPS_PER_SECOND * length) / this.rate));
    const voices = this.voices;  // indexed loops: an iterator could allocate
    for (let i = 0; i < voices.length; i++) {  // running voices whose next block needs a step
      const v = voices[i];
      if (v.state !== "held" && v.state !== "released") continue;
      while (v.voice.zFramesNeeded(length) > v.voice.zFrames) {
        this.step(v);
        steps++;
      }
    }
    for (let i = 0; i < voices.length; i++) {  // keys pressed since the last block, as the budget allows
      const v = voices[i];
      if (v.state !== "pending" || steps >= budget) continue;
      v.voice.start(v.pitch, v.seed);
      v.state = "held";
      v.cornerFrame = 0;
      v.gain = this.attackStep === Infinity ? 1 : 0;
      while (v.voice.zFramesNeeded(length) > v.voice.zFrames) {
        this.step(v);
        steps++;
      }
    }
    while (steps < budget) {  // spare steps: the voice with the least in hand, up to one Z frame ahead
      let chosen = null, least = 1;
      for (let i = 0; i < voices.length; i++) {
        const v = voices[i];
        if (v.state !== "held" && v.state !== "released") continue;
        const inHand = v.voice.zFrames - v.voice.zFramesNeeded(length);
        if (inHand < least) {
          least = inHand;
          chosen = v;
        }
      }
      if (!chosen) break;
      this.step(chosen);
      steps++;
    }
    for (let n = 0; n < voices.length; n++) {
      const v = voices[n];
      if (v.state !== "held" && v.state !== "released") continue;
      v.voice.render(this.harmonic, this.noise, 0, length);
      for (let i = 0; i < length; i++) {
        if (v.state === "released") v.gain = Math.max(0, v.gain - v.releaseStep);
        else if (v.gain < 1) v.gain = Math.min(1, v.gain + this.attackStep);
        const sample = v.gain * (this.harmonic[i] + this.noise[i]);
        if (v.onsetFrame < 0 && Math.abs(sample) > SOUNDING) v.onsetFrame = firstFrame + i * factor;
        mix[i] += sample;
      }
      if (v.state === "released" && v.gain === 0) v.state = "idle";
    }
    return steps;
  }
}

registerProcessor("ddsp-synth", DDSPSynthProcessor);
