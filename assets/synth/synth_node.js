// The DDSP synthesiser on a page (main thread): loads the weights, adds worklet.js to an AudioContext that runs at
// the decoder's sample rate or a whole multiple of it (the worklet upsamples the voices' sum), and returns its node
// with a small interface. A model with a learnt reverb gets it here, on the voices' sum, through a
// ConvolverNode (the reverb is linear, so one for all voices is the same as one each).

import {loadModel} from "./model.js";
import {upsampled} from "./upsample.js";

export const WEIGHTS_URL = new URL("../ddsp_synth.bin", import.meta.url);

// `model`: weights another synthesiser of the page has loaded already (its .model), instead of loading them again.
export async function createSynth(context, {weightsUrl = WEIGHTS_URL, model = null, corners = null,
                                            cornerFrames = 0} = {}) {
  model = model || await loadModel(weightsUrl);
  const rate = model.config.sample_rate, factor = context.sampleRate / rate;
  if (!Number.isInteger(factor)) {
    throw new Error(`The DDSP synthesiser runs at ${rate} Hz: make the AudioContext at it or a whole multiple of ` +
                    `it (the Play tab's is 48000 Hz), not ${context.sampleRate} Hz.`);
  }
  await context.audioWorklet.addModule(new URL("./worklet.js", import.meta.url));
  const node = new AudioWorkletNode(context, "ddsp-synth", {
    numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1],
    processorOptions: {model, corners, cornerFrames}});
  let output = node;
  const impulse = model.tensors.reverb_impulse;
  if (impulse) {
    output = new GainNode(context);
    const wet = Float32Array.from(impulse);
    wet[0] = 0;  // tap 0 is the dry path, which goes round the convolver
    // At a multiple of the decoder's rate the convolution sums `factor` times the taps: each weighs 1 / factor.
    const taps = factor === 1 ? wet : upsampled(wet, factor).map((tap) => tap / factor);
    const response = context.createBuffer(1, taps.length, context.sampleRate);
    response.copyToChannel(taps, 0);
    const reverb = new ConvolverNode(context, {disableNormalization: true, buffer: response});
    node.connect(output);
    node.connect(reverb).connect(output);
  }
  const waiting = [];
  const errors = [];
  node.port.onmessage = ({data}) => (data.type === "stats" ? waiting.shift()(data) : errors.push(data.message));
  const send = (message, transfer = []) => node.port.postMessage(message, transfer);
  return {
    node, output, model, errors,
    noteOn: (pitch, {seed, id} = {}) => send({type: "noteOn", pitch, seed, id}),
    noteOff: (pitch) => send({type: "noteOff", pitch}),
    // z: Float32Array [4, frames, channels], corners in reading order.
    setCorners: (z, frames) => send({type: "corners", z, frames}),
    setEnvelope: (attack, release) => send({type: "envelope", attack, release}),
    setPad: (x, y, time = context.currentTime) => {
      node.parameters.get("padX").setValueAtTime(x, time);
      node.parameters.get("padY").setValueAtTime(y, time);
    },
    // The processor's counts (worklet.js); `reset` starts them again after this reply.
    stats: (reset = false) => new Promise((resolve) => {
      waiting.push(resolve);
      send({type: "stats", reset});
    }),
  };
}
