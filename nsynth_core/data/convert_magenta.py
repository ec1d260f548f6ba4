"""Import Magenta's released NSynth WaveNet checkpoint (TensorFlow, `model.ckpt-200000`) into this project.

    python -m nsynth_core.data.convert_magenta path/to/wavenet-ckpt/model.ckpt-200000 models/nsynth-wavenet

Magenta names each convolution by a variable scope holding `W` [1, k, in, out] (a conv2d kernel over a
height-1 image) and `biases` [out]; a Conv1d weight is W[0] laid out as (out, in, k). Training kept an
exponential moving average of every weight (`<var>/ExponentialMovingAverage`); those smoothed weights are
imported where the checkpoint has them. TensorFlow is not needed.
"""

import argparse
import sys

import numpy as np
import torch
from tqdm import tqdm

from nsynth_core.models.checkpoint import save_checkpoint
from nsynth_core.data.tf_checkpoint import CheckpointFormatError, TFCheckpoint
from nsynth_core.models.wavenet import WaveNetAutoencoder, WaveNetConfig

MOVING_AVERAGE = "/ExponentialMovingAverage"
MAGENTA_HOP_LENGTH = 512
MAGENTA_DILATION_CYCLE = 10


def magenta_scopes(config: WaveNetConfig) -> dict[str, str]:
    """This project's Conv1d module name -> Magenta's variable scope (as in its h512_bo16.py)."""
    scopes = {
        "encoder.start": "ae_startconv",
        "encoder.bottleneck": "ae_bottleneck",
        "decoder.start": "startconv",
        "decoder.skip_start": "skip_start",
        "decoder.out1": "out1",
        "decoder.condition_out": "cond_map_out1",
        "decoder.logits": "logits",
    }
    for i in range(config.encoder_layers):
        scopes[f"encoder.layers.{i}.dilated"] = f"ae_dilatedconv_{i + 1}"
        scopes[f"encoder.layers.{i}.residual"] = f"ae_res_{i + 1}"
    for i in range(config.decoder_layers):
        scopes[f"decoder.layers.{i}.dilated"] = f"dilatedconv_{i + 1}"
        scopes[f"decoder.layers.{i}.condition"] = f"cond_map_{i + 1}"
        scopes[f"decoder.layers.{i}.residual"] = f"res_{i + 1}"
        scopes[f"decoder.layers.{i}.skip"] = f"skip_{i + 1}"
    return scopes


def variable_shape(checkpoint: TFCheckpoint, name: str) -> tuple[int, ...]:
    if name not in checkpoint:
        raise CheckpointFormatError(
            f"The checkpoint has no variable {name!r}: it is not Magenta's NSynth WaveNet checkpoint "
            "(model.ckpt-200000 from wavenet-ckpt.tar) or is incomplete.")
    return checkpoint.entries[name].shape


def count_layers(checkpoint: TFCheckpoint, scope_prefix: str) -> int:
    count = 0
    while f"{scope_prefix}_{count + 1}/W" in checkpoint:
        count += 1
    return count


def config_from_checkpoint(checkpoint: TFCheckpoint, hop_length: int = MAGENTA_HOP_LENGTH,
                           dilation_cycle: int = MAGENTA_DILATION_CYCLE) -> WaveNetConfig:
    """Widths and depths read off the variables' shapes; hop and dilation cycle are not stored in them."""
    _, kernel_size, _, encoder_channels = variable_shape(checkpoint, "ae_startconv/W")
    latent_channels = variable_shape(checkpoint, "ae_bottleneck/W")[3]
    residual_channels = variable_shape(checkpoint, "startconv/W")[3]
    skip_channels = variable_shape(checkpoint, "skip_start/W")[3]
    quantization_channels = variable_shape(checkpoint, "logits/W")[3]
    return WaveNetConfig(
        encoder_channels=encoder_channels, encoder_layers=count_layers(checkpoint, "ae_dilatedconv"),
        encoder_cycle=dilation_cycle, latent_channels=latent_channels, hop_length=hop_length,
        residual_channels=residual_channels, skip_channels=skip_channels,
        decoder_layers=count_layers(checkpoint, "dilatedconv"), decoder_cycle=dilation_cycle,
        kernel_size=kernel_size, quantization_channels=quantization_channels,
    )


def tf_layout(torch_shape: torch.Size) -> tuple[int, ...]:
    """Conv1d weight (out, in, k) -> the TensorFlow kernel shape [1, k, in, out]; a bias keeps its shape."""
    if len(torch_shape) == 3:
        out_channels, in_channels, k = torch_shape
        return 1, k, in_channels, out_channels
    return tuple(torch_shape)


def plan_import(checkpoint: TFCheckpoint, model: WaveNetAutoencoder) -> dict[str, str]:
    """Parameter name -> checkpoint variable to read, checking every shape before any data is read."""
    expected = model.state_dict()
    plan = {}
    for module, scope in magenta_scopes(model.config).items():
        for torch_suffix, tf_suffix in (("weight", "W"), ("bias", "biases")):
            parameter, variable = f"{module}.{torch_suffix}", f"{scope}/{tf_suffix}"
            shape, wanted = variable_shape(checkpoint, variable), tf_layout(expected[parameter].shape)
            if shape != wanted:
                raise CheckpointFormatError(
                    f"Variable {variable!r} has shape {list(shape)} but a model shaped like the rest of this "
                    f"checkpoint needs {list(wanted)}.")
            average = variable + MOVING_AVERAGE
            if average in checkpoint and checkpoint.entries[average].shape != shape:
                raise CheckpointFormatError(
                    f"Variable {average!r} has shape {list(checkpoint.entries[average].shape)}, "
                    f"unlike {variable!r} {list(shape)}.")
            plan[parameter] = average if average in checkpoint else variable
    used = {variable.removesuffix(MOVING_AVERAGE) for variable in plan.values()}
    left_over = sorted(name for name in checkpoint.names() if name.endswith("/W") and name not in used)
    if left_over:
        raise CheckpointFormatError(
            f"The checkpoint has weights with no place in the model, e.g. {left_over[0]!r}: "
            "a layer numbered before it is missing.")
    return plan


def torch_parameter(value: np.ndarray) -> torch.Tensor:
    if value.ndim == 4:  # [1, k, in, out] -> (out, in, k)
        value = value[0].transpose(2, 1, 0)
    return torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))


def convert(checkpoint: TFCheckpoint, hop_length: int = MAGENTA_HOP_LENGTH,
            dilation_cycle: int = MAGENTA_DILATION_CYCLE, progress: bool = False
            ) -> tuple[WaveNetAutoencoder, dict]:
    """A WaveNetAutoencoder holding the checkpoint's weights, and metadata saying which variables were used."""
    model = WaveNetAutoencoder(config_from_checkpoint(checkpoint, hop_length, dilation_cycle))
    plan = plan_import(checkpoint, model)
    state = {parameter: torch_parameter(checkpoint.read(variable))
             for parameter, variable in tqdm(plan.items(), desc="Reading variables", unit="var",
                                             disable=not progress)}
    model.load_state_dict(state)
    raw = sorted(variable for variable in plan.values() if not variable.endswith(MOVING_AVERAGE))
    metadata = {
        "source": f"Magenta NSynth WaveNet checkpoint {checkpoint.prefix.name}",
        "weights": "raw" if len(raw) == len(plan) else "exponential moving average",
        "raw_variables": raw,  # those without a moving-average shadow, read as trained
    }
    if "global_step" in checkpoint:
        metadata["global_step"] = int(checkpoint.read("global_step"))
    return model.eval(), metadata


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m nsynth_core.data.convert_magenta",
        description="Import Magenta's NSynth WaveNet TensorFlow checkpoint into this project's format.")
    parser.add_argument("checkpoint", help="checkpoint prefix, e.g. wavenet-ckpt/model.ckpt-200000")
    parser.add_argument("output", help="output name; writes OUTPUT.safetensors and OUTPUT.json")
    parser.add_argument("--hop-length", type=int, default=MAGENTA_HOP_LENGTH,
                        help="samples per Z frame (not stored in the checkpoint; 512 for Magenta's model)")
    parser.add_argument("--dilation-cycle", type=int, default=MAGENTA_DILATION_CYCLE,
                        help="layers per dilation cycle 1, 2, 4, ... (10 for Magenta's model)")
    args = parser.parse_args(argv)
    try:
        model, metadata = convert(TFCheckpoint(args.checkpoint), args.hop_length, args.dilation_cycle,
                                  progress=True)
    except CheckpointFormatError as error:
        sys.exit(f"error: {error}")
    weights_path = save_checkpoint(model, args.output, metadata)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"Wrote {weights_path} ({parameters / 1e6:.1f} M parameters, {metadata['weights']} weights).")


if __name__ == "__main__":
    main()
