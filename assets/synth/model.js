// The DDSP decoder's weights as the page's synthesiser reads them: ddsp_synth.json (tensor shapes and offsets,
// the decoder's config, Z's normalisation statistics) beside ddsp_synth.bin (little-endian float16), both made by
// `python -m nsynth_core.exports.browser_synth`. The parsed model is plain data (Float32Arrays), so it can be
// handed to an AudioWorkletProcessor through processorOptions.

const FORMAT = "nsynth-ddsp-browser-1";

function halfToFloat(bits) {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f, fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

// Every float16's value, made once: a table read is far quicker than working each of a million weights out.
let halfTable = null;

// `count` little-endian float16 values of `buffer` from value `offset` on, as float32.
export function halfFloats(buffer, offset = 0, count = (buffer.byteLength >> 1) - offset) {
  if (!halfTable) halfTable = Float32Array.from({length: 65536}, (_, bits) => halfToFloat(bits));
  const view = new DataView(buffer), values = new Float32Array(count);
  for (let i = 0; i < count; i++) values[i] = halfTable[view.getUint16(2 * (offset + i), true)];
  return values;
}

export function parseModel(header, buffer) {
  if (header.format !== FORMAT) {
    throw new Error(`The synthesiser's weights are in format ${header.format}, not ${FORMAT}: export them again.`);
  }
  if (buffer.byteLength !== 2 * header.values) {
    throw new Error(`The weights file holds ${buffer.byteLength} bytes; its header promises ${2 * header.values}.`);
  }
  const tensors = {};
  for (const {name, shape, offset} of header.tensors) {
    tensors[name] = halfFloats(buffer, offset, shape.reduce((size, length) => size * length, 1));
  }
  return {config: header.config, source: header.source, tensors,
          zMean: Float32Array.from(header.z_mean), zStd: Float32Array.from(header.z_std)};
}

// `url` names the .bin file; its header is the .json beside it.
export async function loadModel(url) {
  const fetched = async (address, read) => {
    const response = await fetch(address);
    if (!response.ok) throw new Error(`${address}: ${response.status} ${response.statusText}`);
    return read(response);
  };
  const [header, buffer] = await Promise.all([
    fetched(String(url).replace(/\.bin$/, ".json"), (response) => response.json()),
    fetched(url, (response) => response.arrayBuffer())]);
  return parseModel(header, buffer);
}
