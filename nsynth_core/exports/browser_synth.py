"""The DDSP decoder's weights for the page's own synthesiser (assets/synth/*.js), which runs the decoder in the
visitor's browser: one file of little-endian float16 values, every tensor back to back, and a JSON header beside
it (same name, .json) with each tensor's name, shape and offset, the decoder's config, Z's normalisation
statistics and the fingerprint of the checkpoint the weights came from.

    python -m nsynth_core.exports.browser_synth checkpoints/ddsp --out assets/ddsp_synth.bin

float16 halves the download; its rounding moves the decoded harmonics about 70 dB below the signal.
"""

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from nsynth_core.models.checkpoint import checkpoint_files, load_checkpoint, weights_fingerprint
from nsynth_core.models.ddsp import DDSPDecoder

FORMAT = "nsynth-ddsp-browser-1"
STATISTICS = ("z_mean", "z_std")  # in the header as plain numbers: the page normalises Z with them


class BrowserSynthError(ValueError):
    pass


def header_path(weights_path) -> Path:
    return Path(weights_path).with_suffix(".json")


def export_browser_synth(checkpoint, out) -> dict:
    """Writes the DDSP checkpoint's weights to `out` and the header beside it; returns the header."""
    model, metadata = load_checkpoint(checkpoint)
    if not isinstance(model, DDSPDecoder):
        raise BrowserSynthError(f"{checkpoint_files(checkpoint)[1]} is not a DDSP decoder; the browser "
                                f"synthesiser runs only the DDSP decoder.")
    if model.encoder is not None:
        raise BrowserSynthError("This DDSP decoder has an encoder of its own; the browser synthesiser reads the "
                                "WaveNet encoder's Z and has no encoder to run.")
    if model.to_f0_deviation is not None or model.to_gates is not None:
        raise BrowserSynthError("This DDSP decoder has a pitch-motion head or gates; the browser synthesiser "
                                "plays a steady f0 without gates, so it would sound otherwise than the server.")
    state = {name: tensor.detach().float().numpy() for name, tensor in model.state_dict().items()}
    tensors, offset, chunks = [], 0, []
    for name, values in state.items():
        if name in STATISTICS:
            continue
        tensors.append({"name": name, "shape": list(values.shape), "offset": offset})
        chunks.append(values.astype("<f2").ravel())
        offset += values.size
    header = {"format": FORMAT, "dtype": "float16", "values": offset,
              "source": {"checkpoint": checkpoint_files(checkpoint)[0].name,
                         "fingerprint": weights_fingerprint(checkpoint), "encoder": metadata.get("encoder")},
              "config": dataclasses.asdict(model.config),
              **{name: state[name].tolist() for name in STATISTICS},
              "tensors": tensors}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(np.concatenate(chunks).tobytes())
    header_path(out).write_text(json.dumps(header, indent=1) + "\n")
    return header


def read_header(weights_path) -> dict:
    return json.loads(header_path(weights_path).read_text())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a DDSP checkpoint (name, .json or .safetensors)")
    parser.add_argument("--out", type=Path, default=Path("assets/ddsp_synth.bin"),
                        help="the weights file; its header is written beside it as .json")
    args = parser.parse_args(argv)
    header = export_browser_synth(args.checkpoint, args.out)
    print(f"Wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, {header['values']} float16 values from "
          f"weights {header['source']['fingerprint']}) and {header_path(args.out).name}.")


if __name__ == "__main__":
    main()
