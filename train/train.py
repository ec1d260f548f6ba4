"""Train the WaveNet autoencoder, the spectral baseline or the DDSP decoder on NSynth-format notes.

Single process:    python -m train.train --data DATA --out runs/wavenet --config cpu-small
Several GPUs:      torchrun --nproc_per_node=8 -m train.train --data DATA --out runs/wavenet --config paper
Resume:            the same command again; it continues from OUT/state.safetensors.
DDSP decoder:      python -m train.train --data DATA --z-cache CACHE --out runs/ddsp --config ddsp-cpu-small
                   (CACHE: the notes' Z from the frozen WaveNet encoder, made by `python -m train.cache_z`)

DATA is a json/wav folder of the official layout (nsynth-train/, with a sibling nsynth-valid/) or a TFRecord file.
Every `--save-minutes` the full training state is written (weights, EMA, optimizer, step, data RNG) and the
model that would ship (EMA weights when EMA is on) is exported as OUT/model.{safetensors,json}.
"""

import argparse
import csv
import dataclasses
import json
import math
import os
import signal
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from nsynth_core.models.checkpoint import load_checkpoint, save_checkpoint
from nsynth_core.data.nsynth import EncodedNoteDataset, NoteCropDataset
from nsynth_core.models.ddsp import ADDED_HEADS, DDSPConfig, DDSPDecoder, set_latent_statistics
from nsynth_core.engine.precision import native_bf16
from nsynth_core.models.spectral import SpectralAutoencoder, SpectralConfig
from nsynth_core.models.wavenet import WaveNetAutoencoder, WaveNetConfig
from train.cache_z import cache_encoder

# The paper's learning rate by step (a piecewise-constant schedule).
PAPER_LR_SCHEDULE = ((0, 2e-4), (90_000, 1.33e-4), (120_000, 6e-5), (150_000, 4e-5), (180_000, 2e-5),
                     (210_000, 6e-6), (240_000, 2e-6))


@dataclass
class TrainConfig:
    model: str = "wavenet"  # "wavenet", "spectral" or "ddsp"
    model_preset: str = "paper"
    model_changes: dict = field(default_factory=dict)  # preset fields to override, e.g. {"decoder_layers": 10}
    pitch_conditioning: bool = False
    batch_size: int = 32  # total over all processes
    crop_length: int = 6144
    crop_within_seconds: float | None = 3.0  # crops from the held part of the note, not the release
    max_steps: int = 200_000
    lr_schedule: tuple = PAPER_LR_SCHEDULE
    adam_betas: tuple = (0.9, 0.999)
    adam_eps: float = 1e-8
    ema_decay: float = 0.9999  # 0 = no EMA
    grad_clip: float = 0.0  # 0 = off
    valid_every: int = 2000
    valid_notes: int = 64
    # Names (prefixes) of the only weights trained, e.g. the heads added to a shipped decoder; empty = all.
    trained_weights: tuple = ()


TRAIN_CONFIGS = {
    "paper": TrainConfig(),
    # Two CPU cores: a small model, small batches for more updates per hour, a higher learning rate that decays
    # step-wise, a faster EMA; meant with --pitch-conditioning, which the harmonic excitation follows.
    "cpu-small": TrainConfig(
        model_preset="cpu-small", model_changes={"excitation_harmonics": 4}, batch_size=4, crop_length=6144, max_steps=100_000,
        lr_schedule=((0, 1e-3), (20_000, 5e-4), (40_000, 2.5e-4), (60_000, 1e-4)),
        ema_decay=0.999, grad_clip=1.0, valid_every=250, valid_notes=32),
    "spectral-paper": TrainConfig(
        model="spectral", model_preset="paper", batch_size=8, crop_length=64000, crop_within_seconds=None,
        max_steps=200_000,
        lr_schedule=((0, 1e-4),), adam_betas=(0.5, 0.999), ema_decay=0.0),
    # Meant with --pitch-conditioning: the harmonic comb lets its narrow top layers draw partials.
    "spectral-cpu-small": TrainConfig(
        model="spectral", model_preset="cpu-small", model_changes={"harmonic_comb": True},
        batch_size=8, crop_length=64000, crop_within_seconds=None,
        max_steps=20_000, lr_schedule=((0, 5e-4), (5_000, 2.5e-4), (10_000, 1e-4)), adam_betas=(0.5, 0.999),
        ema_decay=0.999, valid_every=250, valid_notes=32),
    # Whole notes with their cached Z; DDSP's Adam at a higher rate for a short CPU schedule, its clipping at 3.
    "ddsp-cpu-small": TrainConfig(
        model="ddsp", model_preset="cpu-small", pitch_conditioning=True, batch_size=8, crop_length=64000,
        crop_within_seconds=None, max_steps=20_000,
        lr_schedule=((0, 1e-3), (3_000, 5e-4), (6_000, 2.5e-4), (10_000, 1e-4)),
        ema_decay=0.999, grad_clip=3.0, valid_every=250, valid_notes=32),
    # DDSP's own sizes for one GPU, with the pitch-motion heads (the vibrato oscillator's terms as in the CPU run
    # whose motion the evaluation hears), the gates and the band-movement term.
    "ddsp-paper": TrainConfig(
        model="ddsp", model_preset="paper", pitch_conditioning=True, batch_size=32, crop_length=64000,
        crop_within_seconds=None, max_steps=100_000,
        model_changes={"modulation_loss_weight": 3.0, "f0_deviation_cents": 200.0, "vibrato_cents": 100.0,
                       "f0_loss_weight": 2.0, "motion_context_frames": 7, "motion_spread_weight": 30.0,
                       "gate_subframes": 16},
        lr_schedule=((0, 1e-3), (10_000, 5e-4), (30_000, 2.5e-4), (60_000, 1e-4)),
        ema_decay=0.999, grad_clip=3.0, valid_every=500, valid_notes=64),
}


def train_config_from_json(fields: dict) -> TrainConfig:
    fields = dict(fields, lr_schedule=tuple(tuple(p) for p in fields["lr_schedule"]),
                  adam_betas=tuple(fields["adam_betas"]), trained_weights=tuple(fields.get("trained_weights", ())))
    return TrainConfig(**fields)


def learning_rate(schedule, step: int) -> float:
    return [lr for start, lr in schedule if step >= start][-1]


def build_model(config: TrainConfig) -> torch.nn.Module:
    changes = dict(config.model_changes, pitch_classes=128 if config.pitch_conditioning else 0)
    if config.model == "wavenet":
        return WaveNetAutoencoder(replace(WaveNetConfig.preset(config.model_preset), **changes))
    if config.model == "spectral":
        return SpectralAutoencoder(replace(SpectralConfig.preset(config.model_preset), **changes))
    if config.model == "ddsp":  # always pitch-driven: its oscillators play the note's f0
        return DDSPDecoder(replace(DDSPConfig.preset(config.model_preset), **config.model_changes))
    raise ValueError(f"Unknown model {config.model!r}.")


def parse_changes(pairs: list[str]) -> dict:
    """["decoder_layers=10", ...] -> {"decoder_layers": 10, ...} (true/false, integer or float values)."""
    changes = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if value.lower() in ("true", "false"):
            changes[name] = value.lower() == "true"
            continue
        try:
            changes[name] = int(value)
        except ValueError:
            changes[name] = float(value)
    return changes


def valid_source(train_source: Path) -> Path | None:
    """nsynth-train -> nsynth-valid beside it (json/wav layout or TFRecord files named the same way)."""
    sibling = train_source.with_name(train_source.name.replace("train", "valid"))
    return sibling if sibling != train_source and sibling.exists() else None


# ---------------------------------------------------------------------------------------------------------------
# Training state on disk: safetensors for every tensor (no pickle), JSON for the rest.

def save_state(out: Path, model, ema, optimizer, step: int, samples_seen: int, wall_seconds: float,
               config: TrainConfig):
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    optim_state = optimizer.state_dict()
    for index, param_state in optim_state["state"].items():
        for key, value in param_state.items():
            tensors[f"optim.{index}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    tmp = out / "state.safetensors.tmp"
    save_file(tensors, str(tmp))
    info = {"step": step, "samples_seen": samples_seen, "wall_seconds": wall_seconds,
            "train_config": dataclasses.asdict(config), "param_groups": optim_state["param_groups"]}
    (out / "state.json.tmp").write_text(json.dumps(info, indent=2))
    # Rename last so that a kill mid-save leaves the previous state intact.
    os.replace(out / "state.json.tmp", out / "state.json")
    os.replace(tmp, out / "state.safetensors")


def load_state(out: Path, model, ema, optimizer) -> dict:
    info = json.loads((out / "state.json").read_text())
    tensors = load_file(str(out / "state.safetensors"))
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    if ema is not None:
        ema.load_state_dict({k[len("ema."):]: v for k, v in tensors.items() if k.startswith("ema.")})
    state = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})
    return info


def load_initial_weights(model: torch.nn.Module, initial: torch.nn.Module) -> None:
    """`initial`'s weights into `model`; a DDSP decoder given heads its checkpoint lacks (--set
    f0_deviation_cents=..., gate_subframes=...) keeps them as built: zero, so it starts out sounding as before."""
    missing, unexpected = model.load_state_dict(initial.state_dict(), strict=False)
    added = ADDED_HEADS if isinstance(model, DDSPDecoder) else ()
    unknown = [name for name in missing if not name.startswith(added)]
    if unknown or unexpected:
        raise ValueError(f"--init-from: the checkpoint's weights do not fit this model (missing {unknown[:3]}, "
                         f"unexpected {unexpected[:3]}); only added DDSP heads may be missing.")


# ---------------------------------------------------------------------------------------------------------------

class LossOf(torch.nn.Module):
    """Puts the model's loss in `forward`, so DistributedDataParallel sees (and syncs) the whole computation."""

    def __init__(self, model, pitch_conditioning: bool):
        super().__init__()
        self.model, self.pitch_conditioning = model, pitch_conditioning

    def forward(self, audio, pitch, *cached):
        return self.model.loss(audio, pitch if self.pitch_conditioning else None, *cached)


def crop_batch(dataset, indices, generator: torch.Generator, device):
    """(audio, pitch, and whatever else the dataset gives, e.g. cached Z) of the notes `indices`, stacked;
    crop offsets drawn from `generator`."""
    dataset.generator = generator
    audio, pitch, *cached = zip(*(dataset[i] for i in indices))
    return (torch.stack(audio).to(device), torch.tensor(pitch, device=device),
            *(torch.stack(field).to(device) for field in cached))


def training_batch(dataset, batch_size: int, seed: int, step: int, rank: int, device):
    """The batch of `step` depends only on (seed, step, rank): a resumed run sees exactly the data it would have."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step * 1009 + rank)
    indices = torch.randint(len(dataset), (batch_size,), generator=generator).tolist()
    return crop_batch(dataset, indices, generator, device)


def training_step(trained, model, optimizer, batch, grad_clip: float, bf16: bool) -> torch.Tensor:
    """One optimiser step on a batch (`trained` computes the loss, `model` holds the weights); returns the loss."""
    with torch.autocast(batch[0].device.type, dtype=torch.bfloat16, enabled=bf16):
        loss = trained(*batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss


@torch.no_grad()
def held_out_loss(model, dataset, config, device) -> float:
    """Mean loss over fixed crops of evenly spaced held-out notes (the same at every evaluation and run)."""
    model.eval()
    loss_of = LossOf(model, config.pitch_conditioning)
    generator = torch.Generator().manual_seed(1234)
    notes = list(range(0, len(dataset), max(1, len(dataset) // config.valid_notes)))
    total = 0.0
    for first in range(0, len(notes), config.batch_size):
        indices = notes[first: first + config.batch_size]
        total += loss_of(*crop_batch(dataset, indices, generator, device)).item() * len(indices)
    model.train()
    return total / len(notes)


def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="nsynth-train folder or TFRecord file")
    parser.add_argument("--out", type=Path, required=True, help="run folder (state, exported model, metrics.csv)")
    parser.add_argument("--z-cache", type=Path, help="the training notes' cached Z (DDSP configs), with a sibling "
                                                      "cache of the validation notes (nsynth-train -> nsynth-valid)")
    parser.add_argument("--more-notes", nargs=2, action="append", default=[], type=Path, metavar=("DATA", "CACHE"),
                        help="DDSP configs: another folder of training notes and its cached Z, e.g. another "
                             "SoundFont rendered apart (repeatable; a pair given twice weighs twice)")
    parser.add_argument("--config", choices=sorted(TRAIN_CONFIGS), default="cpu-small")
    parser.add_argument("--pitch-conditioning", action="store_true", help="condition the decoder on MIDI pitch")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a field of the model preset (repeatable), e.g. --set decoder_layers=10")
    parser.add_argument("--max-steps", type=int, help="override the config's total steps")
    parser.add_argument("--batch-size", type=int, help="override the config's batch size (a new run or --init-from, not a resumed run)")
    parser.add_argument("--minutes", type=float, default=math.inf, help="stop (and save) after this long")
    parser.add_argument("--save-minutes", type=float, default=5.0, help="save the training state this often")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                        help="precision of the training step's matmuls (weights and Adam stay float32); auto: "
                             "bf16 where the hardware has it (CUDA, CPUs with AVX512-BF16 or AMX), else fp32")
    parser.add_argument("--init-from", type=Path, metavar="CHECKPOINT",
                        help="when OUT holds no state yet, continue a shipped checkpoint (its weights, step and "
                             "training config; Adam starts afresh)")
    parser.add_argument("--train-only", nargs="+", default=(), metavar="PREFIX",
                        help="train only the weights whose names start so (e.g. the heads --set adds to an "
                             "--init-from checkpoint: to_f0_deviation. motion_context. to_gates. to_vibrato.); "
                             "the rest stay")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    distributed = "RANK" in os.environ
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    is_main = rank == 0
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if args.threads:
        torch.set_num_threads(args.threads)

    config = TRAIN_CONFIGS[args.config]
    overrides = {"pitch_conditioning": args.pitch_conditioning or config.pitch_conditioning,
                 "model_changes": {**config.model_changes, **parse_changes(args.set)}}
    if args.max_steps:
        overrides["max_steps"] = args.max_steps
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    args.out.mkdir(parents=True, exist_ok=True)
    resume = (args.out / "state.json").exists()
    initial = None
    if resume:  # a resumed run keeps the config it started with
        config = train_config_from_json(json.loads((args.out / "state.json").read_text())["train_config"])
    elif args.init_from:
        initial, initial_metadata = load_checkpoint(args.init_from)
        config = train_config_from_json(initial_metadata["train_config"])
        if args.batch_size:  # Adam starts afresh, so a continued model can take bigger batches
            config = replace(config, batch_size=args.batch_size)
        if args.set:  # fields that leave the weights' shapes as they are (a loss weight) or add zero-initialised heads
            config = replace(config, model_changes={**config.model_changes, **parse_changes(args.set)})
    else:
        config = replace(config, **overrides)
    if args.max_steps:
        config = replace(config, max_steps=args.max_steps)
    if args.train_only and not resume:
        config = replace(config, trained_weights=tuple(args.train_only))
    pitch_driven = [name for name in ("excitation_harmonics", "harmonic_comb") if config.model_changes.get(name)]
    if pitch_driven and not config.pitch_conditioning:
        parser.error(f"--config {args.config} sets {pitch_driven[0]}, which follows the conditioned pitch: add "
                     f"--pitch-conditioning (or --set {pitch_driven[0]}=0 to leave it out).")
    if args.more_notes and config.model != "ddsp":
        parser.error("--more-notes adds cached Z to a DDSP config's training notes.")
    if config.model == "ddsp" and args.z_cache is None:
        parser.error("DDSP configs train on cached Z: give --z-cache (made by `python -m train.cache_z`).")
    # A decoder trained on cached Z names the encoder that made it, so it is only paired with that encoder.
    z_source = {}
    if args.z_cache is not None:
        z_source = {"encoder": cache_encoder(args.z_cache)}
        for _, cache in args.more_notes:
            if cache_encoder(cache) != z_source["encoder"]:
                parser.error(f"'{cache}' was encoded by another encoder than '{args.z_cache}'; one decoder learns "
                             "one encoder's Z.")
        if args.more_notes:
            z_source["more_data"] = [str(data) for data, _ in args.more_notes]
    if config.batch_size % world:
        raise ValueError(f"Batch size {config.batch_size} does not split over {world} processes.")

    if config.model == "ddsp":
        train_set = EncodedNoteDataset(args.data, args.z_cache, *args.more_notes)
        valid_set = None
        if is_main and valid_source(args.data) and valid_source(args.z_cache):
            valid_set = EncodedNoteDataset(valid_source(args.data), valid_source(args.z_cache))
    else:
        train_set = NoteCropDataset(args.data, crop_length=config.crop_length,
                                    within_seconds=config.crop_within_seconds)
        valid_path = valid_source(args.data)
        valid_set = None
        if is_main and valid_path is not None:
            valid_set = NoteCropDataset(valid_path, crop_length=config.crop_length,
                                        within_seconds=config.crop_within_seconds)

    torch.manual_seed(args.seed + rank)
    model = build_model(config).to(device)
    if config.model == "ddsp":  # a new run's Z normalisation (a resumed one loads it with the weights)
        set_latent_statistics(model, train_set.z)
    ema = build_model(config).to(device).eval() if config.ema_decay else None
    if ema is not None:
        ema.load_state_dict(model.state_dict())
        ema.requires_grad_(False)
    if config.trained_weights:
        for name, weight in model.named_parameters():
            weight.requires_grad_(name.startswith(config.trained_weights))
        if not any(weight.requires_grad for weight in model.parameters()):
            parser.error(f"--train-only {' '.join(config.trained_weights)}: no weight of this model is named so.")
    optimizer = torch.optim.Adam([weight for weight in model.parameters() if weight.requires_grad],
                                 lr=learning_rate(config.lr_schedule, 0),
                                 betas=config.adam_betas, eps=config.adam_eps)
    step, samples_seen, wall_before = 0, 0, 0.0
    if resume:
        info = load_state(args.out, model, ema, optimizer)
        step, samples_seen, wall_before = info["step"], info["samples_seen"], info["wall_seconds"]
    elif initial is not None:
        for network in (model, ema) if ema is not None else (model,):
            load_initial_weights(network, initial)
        step, samples_seen, wall_before = (initial_metadata[k] for k in ("step", "samples_seen", "wall_seconds"))
    if step and is_main:
        print(f"Continuing from step {step} ({samples_seen:,} samples seen).")
    trained = LossOf(model, config.pitch_conditioning)
    if distributed:
        # The last WaveNet layer's residual output feeds nothing (only its skip output does), so that 1x1 conv
        # gets no gradient; DDP has to be told, or it waits for it and fails on the second step.
        trained = DistributedDataParallel(trained, find_unused_parameters=True)

    metrics_path = args.out / "metrics.csv"
    if is_main and metrics_path.exists():  # drop rows logged after the state we resumed from (a killed run's)
        with open(metrics_path, newline="") as file:
            rows = list(csv.reader(file))
        with open(metrics_path, "w", newline="") as file:
            csv.writer(file).writerows(rows[:1] + [row for row in rows[1:] if int(row[0]) <= step])
    new_metrics = not metrics_path.exists()
    metrics_file = open(metrics_path, "a", newline="") if is_main else None
    metrics = csv.writer(metrics_file) if is_main else None
    if is_main and new_metrics:
        metrics.writerow(["step", "samples_seen", "wall_seconds", "lr", "train_loss", "valid_loss"])

    stop_requested = False

    def request_stop(*_):
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    def save():
        if not is_main:
            return
        metrics_file.flush()  # before the state, so the log always covers the saved step
        save_state(args.out, model, ema, optimizer, step, samples_seen, wall_before + time.time() - start, config)
        shipped = ema if ema is not None else model
        save_checkpoint(shipped, args.out / "model", {
            "train_config": dataclasses.asdict(config), "step": step, "samples_seen": samples_seen,
            "wall_seconds": round(wall_before + time.time() - start), "ema": ema is not None,
            "pitch_conditioning": config.pitch_conditioning, "data": args.data.name, **z_source})

    use_autocast = args.precision == "bf16" or (args.precision == "auto" and native_bf16(device))
    if is_main:
        print(f"Training step in {'bfloat16' if use_autocast else 'float32'} (--precision {args.precision}).")
    start = last_save = time.time()
    running_loss = None
    progress = tqdm(total=config.max_steps, initial=step, disable=not is_main, dynamic_ncols=True)
    while step < config.max_steps and not stop_requested and time.time() - start < args.minutes * 60:
        lr = learning_rate(config.lr_schedule, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = training_batch(train_set, config.batch_size // world, args.seed, step, rank, device)
        loss = training_step(trained, model, optimizer, batch, config.grad_clip, use_autocast)
        if ema is not None:
            with torch.no_grad():
                # TF's ExponentialMovingAverage with num_updates (as Magenta used it): a short memory early on.
                decay = min(config.ema_decay, (1 + step) / (10 + step))
                torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - decay)
                for ema_buffer, buffer in zip(ema.buffers(), model.buffers()):  # e.g. BatchNorm statistics
                    ema_buffer.copy_(buffer)
        step += 1
        samples_seen += config.batch_size * config.crop_length
        running_loss = loss.item() if running_loss is None else 0.98 * running_loss + 0.02 * loss.item()
        progress.update(1)
        progress.set_postfix(loss=f"{running_loss:.3f}", lr=f"{lr:.1e}")
        if is_main:
            valid_loss = ""
            if valid_set is not None and step % config.valid_every == 0:
                valid_loss = f"{held_out_loss(ema if ema is not None else model, valid_set, config, device):.4f}"
                tqdm.write(f"step {step}: held-out loss {valid_loss}")
            metrics.writerow([step, samples_seen, round(wall_before + time.time() - start, 1), lr,
                              f"{loss.item():.4f}", valid_loss])
        if time.time() - last_save > args.save_minutes * 60:
            save()
            last_save = time.time()
    save()
    progress.close()
    if is_main:
        print(f"Stopped at step {step}; state and model saved in {args.out}.")
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
