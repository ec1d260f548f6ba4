// The DDSP decoder's synthesisers (nsynth_core/models/ddsp.py) for one note, streaming: control frames are pushed as
// the network makes them, and samples are rendered, in blocks of any length, as far as the pushed frames allow.
// - harmonics: the sum over k of A_k(n) sin(2 pi k f0 n / rate), A_k interpolated linearly between control frame
//   centres (frame i is centred on sample i * hop + (hop - 1) / 2) and held before the first, as harmonic_synth;
// - noise: uniform white noise in [-1, 1) drawn as torch.rand draws it from the same seed (MT19937, 24 bits a
//   value), each hop of it filtered by its frame's Hann-windowed zero-phase FIR and overlap-added, delayed by half
//   the FIR's length, as filtered_noise.
// Buffers are allocated by the constructor: pushing and rendering allocate nothing.

const RING_FRAMES = 32;  // control frames kept: the one before the sample being rendered and those pushed ahead

export class MersenneTwister {
  constructor() {
    this.state = new Uint32Array(624);
    this.index = 624;
  }

  seed(seed) {
    const s = this.state;
    s[0] = seed >>> 0;
    for (let i = 1; i < 624; i++) s[i] = (Math.imul(1812433253, s[i - 1] ^ (s[i - 1] >>> 30)) + i) >>> 0;
    this.index = 624;
  }

  next() {
    if (this.index >= 624) this.twist();
    let y = this.state[this.index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  twist() {
    const s = this.state;
    for (let i = 0; i < 624; i++) {
      const y = (s[i] & 0x80000000) | (s[(i + 1) % 624] & 0x7fffffff);
      s[i] = s[(i + 397) % 624] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
    }
    this.index = 0;
  }

  // A float32 in [0, 1) as torch.rand makes it on the CPU: the low 24 bits of one draw.
  uniform() {
    return (this.next() & 0xffffff) * 2 ** -24;
  }
}

// [taps, bands]: tap m of a frame's FIR is the dot product of row m with the frame's magnitudes. It is irfft
// (frequency sampling, zero phase), rolled by half its length and Hann-windowed (symmetric), in one table.
function firDesign(taps, bands) {
  const design = new Float64Array(taps * bands);
  for (let m = 0; m < taps; m++) {
    const window = 0.5 - 0.5 * Math.cos((2 * Math.PI * m) / (taps - 1));
    for (let b = 0; b < bands; b++) {
      const weight = b === 0 || b === bands - 1 ? 1 : 2;  // bins other than 0 Hz and Nyquist stand for two
      design[m * bands + b] = (window * weight * Math.cos((2 * Math.PI * b * (m - taps / 2)) / taps)) / taps;
    }
  }
  return design;
}

export class NoteSynth {
  constructor(config) {
    this.hop = config.latent_hop / config.subframes;
    this.rate = config.sample_rate;
    this.harmonics = config.harmonics;
    this.bands = config.noise_bands;
    this.taps = 2 * (config.noise_bands - 1);
    this.amplitudes = new Float32Array(RING_FRAMES * this.harmonics);
    this.noiseSum = new Float64Array(2 ** Math.ceil(Math.log2(RING_FRAMES * this.hop + this.taps)));
    this.design = firDesign(this.taps, this.bands);
    this.impulse = new Float64Array(this.taps);
    this.white = new Float64Array(this.hop);
    this.slope = new Float64Array(this.harmonics);
    this.random = new MersenneTwister();
  }

  // A new note: fundamental f0 (Hz), `audible` harmonics below Nyquist, the noise's seed.
  start(f0, audible, seed) {
    this.f0 = f0;
    this.audible = audible;
    this.position = 0;  // samples rendered
    this.frames = 0;  // control frames pushed
    this.ended = false;
    this.noiseSum.fill(0);
    this.random.seed(seed);
  }

  // No more frames come: the last one's amplitudes are held to the end, as harmonic_synth holds them.
  end() {
    this.ended = true;
  }

  // Control frames that must have been pushed before `count` more samples can be rendered: a sample past its
  // frame's centre reads the next frame's amplitudes, and the noise's overlap-add reaches half a FIR ahead.
  framesNeeded(count) {
    const last = this.position + count - 1;
    return Math.floor((last + Math.max(this.hop, this.taps) / 2) / this.hop) + 1;
  }

  ready(count) {
    return this.ended || this.frames >= this.framesNeeded(count);
  }

  pushFrame(amplitudes, amplitudeOffset, magnitudes, magnitudeOffset) {
    const frame = this.frames, hop = this.hop, taps = this.taps, bands = this.bands;
    if (this.ended || frame - Math.floor(this.position / hop) >= RING_FRAMES - 1) {
      throw new Error("A control frame was pushed after the note's end or too far ahead of the rendering.");
    }
    const row = (frame % RING_FRAMES) * this.harmonics;
    for (let k = 0; k < this.harmonics; k++) this.amplitudes[row + k] = amplitudes[amplitudeOffset + k];
    const impulse = this.impulse, design = this.design;
    for (let m = 0; m < taps; m++) {
      let sum = 0;
      for (let b = 0; b < bands; b++) sum += design[m * bands + b] * magnitudes[magnitudeOffset + b];
      impulse[m] = sum;
    }
    for (let i = 0; i < hop; i++) this.white[i] = this.random.uniform() * 2 - 1;
    const sums = this.noiseSum, mask = sums.length - 1;
    for (let i = 0, start = frame * hop; i < hop; i++) {
      const value = this.white[i];
      for (let j = 0; j < taps; j++) sums[(start + i + j) & mask] += value * impulse[j];
    }
    this.frames++;
  }

  // Writes the next `count` samples of the harmonics and of the noise at `offset` in the two outputs.
  render(harmonicOut, noiseOut, offset, count) {
    const hop = this.hop, half = hop / 2, start = this.position, end = start + count;
    // Half-hop segments: within one, every sample lies between the same two frame centres.
    for (let n = start; n < end;) {
      const frame = Math.floor(n / hop), within = n - frame * hop;
      const before = within < half ? frame - 1 : frame;
      const stop = Math.min(end, before * hop + hop + half);
      // Frames before the first and after the last are held (the last only once the note has ended).
      const from = Math.min(Math.max(before, 0), this.frames - 1), to = Math.min(before + 1, this.frames - 1);
      this.harmonicSegment(harmonicOut, offset + n - start, n, stop - n, from, to,
                           (n - before * hop - half + 0.5) / hop);
      n = stop;
    }
    const sums = this.noiseSum, mask = sums.length - 1, delay = this.taps / 2;
    // The filters' first half-lengths are dropped, never read: cleared so the ring's next lap starts from zero.
    // Every frame that reaches them is pushed before the first sample can be rendered.
    if (start === 0) sums.fill(0, 0, delay);
    for (let i = 0; i < count; i++) {
      const at = (start + i + delay) & mask;
      noiseOut[offset + i] = sums[at];
      sums[at] = 0;
    }
    this.position = end;
  }

  // Samples from n on, amplitudes moving from frame `from`'s to frame `to`'s, `fraction` of the way at the first.
  // sin(k theta) comes from the two below it (Chebyshev's recurrence): two sines per sample, not one per harmonic.
  harmonicSegment(out, at, n, length, from, to, fraction) {
    const amplitudes = this.amplitudes, slope = this.slope, audible = this.audible;
    const a = (from % RING_FRAMES) * this.harmonics, b = (to % RING_FRAMES) * this.harmonics;
    for (let k = 0; k < audible; k++) slope[k] = amplitudes[b + k] - amplitudes[a + k];
    const cycle = this.f0 / this.rate, phase = (cycle * n) % 1;
    for (let t = 0; t < length; t++) {
      const theta = 2 * Math.PI * (phase + t * cycle);
      const twiceCos = 2 * Math.cos(theta);
      let previous = 0, current = Math.sin(theta), level = 0, change = 0;
      for (let k = 0; k < audible; k++) {
        level += amplitudes[a + k] * current;
        change += slope[k] * current;
        const next = twiceCos * current - previous;
        previous = current;
        current = next;
      }
      out[at + t] = level + (fraction + t / this.hop) * change;
    }
  }
}
