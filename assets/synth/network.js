// The DDSP decoder's network (DDSPDecoder.controls in nsynth_core/models/ddsp.py), one Z frame of one note per
// step: normalised Z and log-f0 -> MLP -> GRU -> MLP over [GRU output, first MLP's output] -> `subframes` control
// frames, each a set of harmonic amplitudes and noise filter magnitudes. Every buffer is allocated by the
// constructor: a step allocates nothing, so the audio thread can run it.

const LEAKY_SLOPE = 0.01;  // torch.nn.LeakyReLU's default
const NORM_EPSILON = 1e-5;  // torch.nn.LayerNorm's default
const LOG_TEN = Math.log(10);

export const midiToHz = (pitch) => 440 * 2 ** ((pitch - 69) / 12);

// DDSP's positive scaling: 2 * sigmoid(x) ** ln(10) + 1e-7.
const expSigmoid = (x) => 2 * (1 / (1 + Math.exp(-x))) ** LOG_TEN + 1e-7;
const sigmoid = (x) => 1 / (1 + Math.exp(-x));

// output = weight [rows, columns] . input + bias; eight running sums let the CPU overlap the additions (measured:
// a third faster than one sum in V8).
function linear(weight, bias, input, output, rows, columns) {
  for (let row = 0, base = 0; row < rows; row++, base += columns) {
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0, i = 0;
    for (; i + 7 < columns; i += 8) {
      const w = base + i;
      s0 += weight[w] * input[i];
      s1 += weight[w + 1] * input[i + 1];
      s2 += weight[w + 2] * input[i + 2];
      s3 += weight[w + 3] * input[i + 3];
      s4 += weight[w + 4] * input[i + 4];
      s5 += weight[w + 5] * input[i + 5];
      s6 += weight[w + 6] * input[i + 6];
      s7 += weight[w + 7] * input[i + 7];
    }
    for (; i < columns; i++) s0 += weight[base + i] * input[i];
    output[row] = bias[row] + (((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)));
  }
}

// LayerNorm then leaky ReLU, in place.
function normalise(values, weight, bias) {
  const n = values.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += values[i];
  mean /= n;
  let variance = 0;
  for (let i = 0; i < n; i++) variance += (values[i] - mean) ** 2;
  const scale = 1 / Math.sqrt(variance / n + NORM_EPSILON);
  for (let i = 0; i < n; i++) {
    const y = (values[i] - mean) * scale * weight[i] + bias[i];
    values[i] = y > 0 ? y : LEAKY_SLOPE * y;
  }
}

// DDSP's fc stack (ddsp.mlp): Linear -> LayerNorm -> leaky ReLU per layer; torch numbers its modules 0, 3, 6...
class Stack {
  constructor(tensors, prefix, inputs, hidden, layers) {
    this.layers = [];
    for (let layer = 0; layer < layers; layer++) {
      const name = (index) => `${prefix}.${3 * layer + index}`;
      this.layers.push({weight: tensors[`${name(0)}.weight`], bias: tensors[`${name(0)}.bias`],
                        normWeight: tensors[`${name(1)}.weight`], normBias: tensors[`${name(1)}.bias`],
                        inputs: layer === 0 ? inputs : hidden});
    }
    this.hidden = hidden;
    this.scratch = new Float32Array(hidden);
  }

  // Writes the stack's output into `output` (length hidden); `input` is left as it was.
  run(input, output) {
    let source = input;
    for (let i = 0; i < this.layers.length; i++) {
      const {weight, bias, normWeight, normBias, inputs} = this.layers[i];
      const target = (this.layers.length - 1 - i) % 2 === 0 ? output : this.scratch;  // the last lands in output
      linear(weight, bias, source, target, this.hidden, inputs);
      normalise(target, normWeight, normBias);
      source = target;
    }
  }
}

export class Network {
  constructor(model) {
    const c = model.config, t = model.tensors;
    this.config = c;
    this.zMean = model.zMean;
    this.zStd = model.zStd;
    this.input = new Stack(t, "input", c.latent_channels + 1, c.hidden, c.mlp_layers);
    this.output = new Stack(t, "output", c.gru_channels + c.hidden, c.hidden, c.mlp_layers);
    this.gru = {inputWeight: t["gru.weight_ih_l0"], stateWeight: t["gru.weight_hh_l0"],
                inputBias: t["gru.bias_ih_l0"], stateBias: t["gru.bias_hh_l0"]};
    this.toControls = {weight: t["to_controls.weight"], bias: t["to_controls.bias"]};
    this.controlWidth = 1 + c.harmonics + c.noise_bands;
    this.features = new Float32Array(c.latent_channels + 1);
    // [GRU output, input stack's output]: the output stack's input, filled in place.
    this.joined = new Float32Array(c.gru_channels + c.hidden);
    this.gruOutput = this.joined.subarray(0, c.gru_channels);
    this.inputOutput = this.joined.subarray(c.gru_channels);
    this.inputGates = new Float32Array(3 * c.gru_channels);
    this.stateGates = new Float32Array(3 * c.gru_channels);
    this.hidden = new Float32Array(c.hidden);
    this.raw = new Float32Array(c.subframes * this.controlWidth);
  }

  // A note's GRU state, zero at its start.
  newState() {
    return new Float32Array(this.config.gru_channels);
  }

  // How many harmonics k * f0 lie below Nyquist at this pitch (the synthesisers silence the others).
  audibleHarmonics(pitch) {
    const c = this.config, f0 = midiToHz(pitch);
    let audible = 0;
    while (audible < c.harmonics && (audible + 1) * f0 < c.sample_rate / 2) audible++;
    return audible;
  }

  // One Z frame (raw, as the WaveNet encoder makes it) of a note at MIDI `pitch`: advances `state` and writes
  // `subframes` control frames, amplitudes [subframes, harmonics] and noise magnitudes [subframes, noise_bands].
  step(z, pitch, state, amplitudes, noise) {
    const c = this.config, features = this.features, channels = c.latent_channels;
    for (let i = 0; i < channels; i++) features[i] = (z[i] - this.zMean[i]) / this.zStd[i];
    features[channels] = (pitch - 64) / 64;
    this.input.run(features, this.inputOutput);
    this.gruStep(this.inputOutput, state);
    this.gruOutput.set(state);
    this.output.run(this.joined, this.hidden);
    linear(this.toControls.weight, this.toControls.bias, this.hidden, this.raw, this.raw.length, c.hidden);
    this.scaleControls(pitch, amplitudes, noise);
  }

  // torch.nn.GRU's cell: gates in the order reset, update, new.
  gruStep(x, state) {
    const g = this.gru, size = state.length, inputGates = this.inputGates, stateGates = this.stateGates;
    linear(g.inputWeight, g.inputBias, x, inputGates, 3 * size, x.length);
    linear(g.stateWeight, g.stateBias, state, stateGates, 3 * size, size);
    for (let i = 0; i < size; i++) {
      const reset = sigmoid(inputGates[i] + stateGates[i]);
      const update = sigmoid(inputGates[size + i] + stateGates[size + i]);
      const candidate = Math.tanh(inputGates[2 * size + i] + reset * stateGates[2 * size + i]);
      state[i] = (1 - update) * candidate + update * state[i];
    }
  }

  // A loudness times a distribution over the audible harmonics; noise magnitudes start quiet (the -5).
  scaleControls(pitch, amplitudes, noise) {
    const c = this.config, width = this.controlWidth, raw = this.raw;
    const harmonics = c.harmonics, bands = c.noise_bands, audible = this.audibleHarmonics(pitch);
    for (let s = 0; s < c.subframes; s++) {
      const base = s * width, row = s * harmonics;
      let total = 0;
      for (let k = 0; k < harmonics; k++) {
        const share = k < audible ? expSigmoid(raw[base + 1 + k]) : 0;
        amplitudes[row + k] = share;
        total += share;
      }
      const loudness = expSigmoid(raw[base]) / Math.max(total, 1e-7);
      for (let k = 0; k < harmonics; k++) amplitudes[row + k] *= loudness;
      for (let b = 0; b < bands; b++) noise[s * bands + b] = expSigmoid(raw[base + 1 + harmonics + b] - 5);
    }
  }
}
