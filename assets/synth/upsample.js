// Band-limited upsampling by a whole factor, streaming, for the synthesiser to play in a context at the
// loudspeakers' rate (a 16 kHz context makes the browser resample with a buffer of its own, which is heard as
// latency). The filter is a Kaiser-windowed sinc cut off at the input's Nyquist frequency: it is zero at every
// other multiple of the factor, so one output sample in `factor` is the input sample itself, `delay` outputs later.
// Buffers are allocated by the constructor: upsampling allocates nothing.

const TAPS_PER_PHASE = 32;  // input samples each output reads: the filter's length is TAPS_PER_PHASE * factor
const KAISER_BETA = 7;  // about 70 dB of image rejection

// I0, the modified Bessel function of the first kind, by its power series.
function besselI0(x) {
  let sum = 1, term = 1;
  for (let k = 1; term > 1e-12 * sum; k++) {
    term *= (x / (2 * k)) ** 2;
    sum += term;
  }
  return sum;
}

// coefficients[p * (TAPS_PER_PHASE + 1) + j]: the weight of the input j samples back in output phase p.
function polyphaseDesign(factor) {
  const half = (TAPS_PER_PHASE / 2) * factor, taps = TAPS_PER_PHASE + 1;
  const design = new Float64Array(factor * taps);
  for (let p = 0; p < factor; p++) {
    for (let j = 0; j < taps; j++) {
      const d = p - half + j * factor;  // the output's distance from that input sample, in output samples
      const sinc = d === 0 ? 1 : Math.sin((Math.PI * d) / factor) / ((Math.PI * d) / factor);
      const window = Math.abs(d) > half ? 0 : besselI0(KAISER_BETA * Math.sqrt(1 - (d / half) ** 2));
      design[p * taps + j] = (sinc * window) / besselI0(KAISER_BETA);
    }
  }
  return design;
}

export class Upsampler {
  constructor(factor) {
    if (!Number.isInteger(factor) || factor < 1) throw new Error(`The upsampling factor ${factor} is not whole.`);
    this.factor = factor;
    this.delay = (TAPS_PER_PHASE / 2) * factor;  // output samples between an input sample and its copy
    this.design = polyphaseDesign(factor);
    this.history = new Float64Array(2 * (TAPS_PER_PHASE + 1));  // the last inputs, twice over: no wrap in a sum
    this.at = 0;
  }

  // Upsamples input[0 .. count) into output from `offset` on: count * factor samples.
  process(input, count, output, offset) {
    const taps = TAPS_PER_PHASE + 1, history = this.history, design = this.design, factor = this.factor;
    for (let i = 0; i < count; i++) {
      this.at = (this.at + 1) % taps;
      history[this.at] = history[this.at + taps] = input[i];
      const newest = this.at + taps;  // history[newest - j] is the input j samples back
      for (let p = 0; p < factor; p++) {
        let sum = 0;
        for (let j = 0, row = p * taps; j < taps; j++) sum += design[row + j] * history[newest - j];
        output[offset + i * factor + p] = sum;
      }
    }
  }
}

// A whole signal upsampled, its delay removed, for things made once (a reverb's impulse response).
export function upsampled(signal, factor) {
  const upsampler = new Upsampler(factor), padding = upsampler.delay / factor;
  const input = new Float64Array(signal.length + padding);
  input.set(signal);
  const output = new Float32Array(input.length * factor);
  upsampler.process(input, input.length, output, 0);
  return output.subarray(upsampler.delay, upsampler.delay + signal.length * factor);
}
