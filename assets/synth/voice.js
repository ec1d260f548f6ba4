// One note of the DDSP decoder: the network's GRU state and the synthesisers, fed one Z frame at a time. The page's
// AudioWorklet (worklet.js) and the offline renderer (offline.js) play notes through this same class.

import {midiToHz} from "./network.js";
import {NoteSynth} from "./synth.js";

export class Voice {
  constructor(network) {
    const c = network.config;
    this.network = network;
    this.config = c;
    this.state = network.newState();
    this.synth = new NoteSynth(c);
    this.amplitudes = new Float32Array(c.subframes * c.harmonics);
    this.noise = new Float32Array(c.subframes * c.noise_bands);
    this.zFrames = 0;
  }

  start(pitch, seed) {
    this.pitch = pitch;
    this.state.fill(0);
    this.zFrames = 0;
    this.synth.start(midiToHz(pitch), this.network.audibleHarmonics(pitch), seed);
  }

  // Z frames the network must have read before `count` more samples can be rendered.
  zFramesNeeded(count) {
    return Math.ceil(this.synth.framesNeeded(count) / this.config.subframes);
  }

  // The network reads one more Z frame (raw, as the WaveNet encoder makes it); its control frames go to the synths.
  addZFrame(z) {
    const c = this.config;
    this.network.step(z, this.pitch, this.state, this.amplitudes, this.noise);
    for (let s = 0; s < c.subframes; s++) {
      this.synth.pushFrame(this.amplitudes, s * c.harmonics, this.noise, s * c.noise_bands);
    }
    this.zFrames++;
  }

  end() {
    this.synth.end();
  }

  ready(count) {
    return this.synth.ready(count);
  }

  render(harmonicOut, noiseOut, offset, count) {
    this.synth.render(harmonicOut, noiseOut, offset, count);
  }
}
