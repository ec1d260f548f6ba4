"""Where bfloat16 pays: matmuls run in hardware on CPUs with AVX512-BF16 or AMX and on most CUDA GPUs; elsewhere
they are emulated, slower than float32."""

import os

import torch

ENCODER_PRECISION_ENV = "NSYNTH_ENCODER_PRECISION"
DECODER_PRECISION_ENV = "NSYNTH_DECODER_PRECISION"
PRECISIONS = {"bf16": torch.bfloat16, "fp32": torch.float32}


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def _chosen(variable: str, device: torch.device) -> torch.dtype:
    """`variable`'s choice (auto, bf16 or fp32); auto: bfloat16 on a CPU that has it in hardware, else float32."""
    choice = os.environ.get(variable, "auto")
    if choice == "auto":
        return torch.bfloat16 if device.type == "cpu" and native_bf16(device) else torch.float32
    if choice not in PRECISIONS:
        raise ValueError(f"{variable} is '{choice}'; use auto, bf16 or fp32.")
    return PRECISIONS[choice]


def encoder_dtype(device: torch.device) -> torch.dtype:
    """The precision the app encodes visitors' notes in: bfloat16 on a CPU that has it in hardware (an
    AVX512-BF16 core encodes a note 2.2 times as fast, its Z within 0.3 % of float32's), else float32.
    NSYNTH_ENCODER_PRECISION (auto, bf16 or fp32) chooses. A visitor's note gets it whichever way it came in
    (uploaded, recorded, restored); everything else (the examples, the shipped map and grid, the command line,
    the evaluation) encodes in float32, the same on every machine."""
    return _chosen(ENCODER_PRECISION_ENV, device)


def decoder_dtype(device: torch.device) -> torch.dtype:
    """The precision of the products in the app's WaveNet decodes (the C++ engine): bfloat16 on a CPU that has it
    in hardware, where each instruction does twice float32's work, else float32. NSYNTH_DECODER_PRECISION (auto,
    bf16 or fp32) chooses. The command line and the evaluation decode in float32, where a seed gives the same
    samples as the reference generator."""
    return _chosen(DECODER_PRECISION_ENV, device)
