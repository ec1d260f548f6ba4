"""Models on disk: `<name>.safetensors` (weights only, never pickle) beside `<name>.json` (kind, config, metadata)."""

import dataclasses
import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from nsynth_core.models.ddsp import DDSPConfig, DDSPDecoder
from nsynth_core.models.spectral import SpectralAutoencoder, SpectralConfig
from nsynth_core.models.wavenet import WaveNetAutoencoder, WaveNetConfig

MODEL_KINDS = {
    "wavenet": (WaveNetConfig, WaveNetAutoencoder),
    "spectral": (SpectralConfig, SpectralAutoencoder),
    "ddsp": (DDSPConfig, DDSPDecoder),
}


class CheckpointError(ValueError):
    pass


def checkpoint_files(path) -> tuple[Path, Path]:
    """The (weights, description) files of a checkpoint given as `name`, `name.json` or `name.safetensors`."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".json", ".safetensors") else path
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def model_kind(model: torch.nn.Module) -> str:
    for kind, (_, model_class) in MODEL_KINDS.items():
        if isinstance(model, model_class):
            return kind
    raise CheckpointError(f"Cannot save a {type(model).__name__}: not a model of this project.")


def save_checkpoint(model: torch.nn.Module, path, metadata: dict | None = None) -> Path:
    """Writes the weights and a JSON description; returns the .safetensors path."""
    weights_path, json_path = checkpoint_files(path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    save_file(tensors, str(weights_path))
    description = {"kind": model_kind(model), "config": dataclasses.asdict(model.config),
                   "metadata": metadata or {}}
    json_path.write_text(json.dumps(description, indent=2) + "\n")
    return weights_path


def weights_fingerprint(path) -> str:
    """A short hash of a checkpoint's weights file: what a cache made with these weights is keyed by."""
    digest = hashlib.sha256()
    with open(checkpoint_files(path)[0], "rb") as weights:
        for block in iter(lambda: weights.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def read_description(path) -> dict:
    """The JSON half of a checkpoint (cheap: no weights are read)."""
    _, json_path = checkpoint_files(path)
    try:
        description = json.loads(json_path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"Checkpoint description {json_path} is missing.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"Checkpoint description {json_path} is not valid JSON ({error}).") from None
    if description.get("kind") not in MODEL_KINDS:
        raise CheckpointError(f"{json_path} names an unknown model kind {description.get('kind')!r}; "
                              f"expected one of {sorted(MODEL_KINDS)}.")
    return description


def build_model(description: dict) -> torch.nn.Module:
    config_class, model_class = MODEL_KINDS[description["kind"]]
    fields = {f.name for f in dataclasses.fields(config_class)}
    unknown = set(description["config"]) - fields
    if unknown:
        raise CheckpointError(f"Checkpoint config has fields this version does not know: {sorted(unknown)}.")
    return model_class(config_class(**description["config"]))


def load_checkpoint(path, device="cpu") -> tuple[torch.nn.Module, dict]:
    """Returns (model in eval mode on `device`, metadata). Refuses weights that do not match the config."""
    weights_path, _ = checkpoint_files(path)
    description = read_description(path)
    model = build_model(description)
    try:
        tensors = load_file(str(weights_path))
    except FileNotFoundError:
        raise CheckpointError(f"Checkpoint weights {weights_path} are missing.") from None
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"Checkpoint weights {weights_path} cannot be read ({error}).") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    misshaped = sorted(name for name in set(expected) & set(tensors)
                       if expected[name].shape != tensors[name].shape)
    if missing or unexpected or misshaped:
        problems = []
        if missing:
            problems.append(f"missing {len(missing)} tensors (e.g. {missing[0]})")
        if unexpected:
            problems.append(f"{len(unexpected)} tensors the config does not have (e.g. {unexpected[0]})")
        if misshaped:
            name = misshaped[0]
            problems.append(f"{len(misshaped)} tensors of the wrong shape (e.g. {name}: file "
                            f"{tuple(tensors[name].shape)}, config {tuple(expected[name].shape)})")
        raise CheckpointError(f"{weights_path} does not match its config: " + "; ".join(problems) + ".")
    # A file with a sound header can still hold NaN or infinite weights (a diverged training run, a bad copy):
    # such a model decodes noise or fails far later, so it is refused here, where the cause is known.
    non_finite = sorted(name for name, tensor in tensors.items()
                        if tensor.is_floating_point() and not torch.isfinite(tensor).all())
    if non_finite:
        raise CheckpointError(f"{weights_path} has NaN or infinite weights in {len(non_finite)} tensors "
                              f"(e.g. {non_finite[0]}); the file is corrupt or its training diverged.")
    model.load_state_dict(tensors)
    return model.to(device).eval(), description["metadata"]
