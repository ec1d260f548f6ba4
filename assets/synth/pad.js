// The Z a point of the pad stands for: the bilinear mix of four corner notes' Z, as the explorer mixes a grid
// (nsynth_core/explorer/interpolation.py): corners in reading order (top-left, top-right, bottom-left,
// bottom-right), x from left to right and y from top to bottom, both from 0 to 1.

export function bilinearWeights(x, y, out) {
  out[0] = (1 - x) * (1 - y);
  out[1] = x * (1 - y);
  out[2] = (1 - x) * y;
  out[3] = x * y;
}

// out[channel] = sum over corners i of weights[i] * corners[i, frame, channel]; corners is flat [4, frames, channels].
export function mixCorners(corners, frames, weights, frame, out) {
  const channels = out.length;
  for (let c = 0; c < channels; c++) {
    let sum = 0;
    for (let i = 0; i < 4; i++) sum += weights[i] * corners[(i * frames + frame) * channels + c];
    out[c] = sum;
  }
}
