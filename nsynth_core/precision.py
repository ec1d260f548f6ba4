"""Where bfloat16 pays: matmuls run in hardware on CPUs with AVX512-BF16 or AMX and on most CUDA GPUs; elsewhere
they are emulated, slower than float32."""

import os

import torch

ENCODER_PRECISION_ENV = "NSYNTH_ENCODER_PRECISION"
ENCODER_PRECISIONS = {"bf16": torch.bfloat16, "fp32": torch.float32}


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def encoder_dtype(device: torch.device) -> torch.dtype:
    """The precision the app encodes visitors' notes in: bfloat16 on a CPU that has it in hardware (an
    AVX512-BF16 core encodes a note 2.2 times as fast, its Z within 0.3 % of float32's), else float32.
    NSYNTH_ENCODER_PRECISION (auto, bf16 or fp32) chooses. Everything else (the examples, the shipped map and
    grid, the command line, the evaluation, the Z cache) encodes in float32, the same on every machine."""
    choice = os.environ.get(ENCODER_PRECISION_ENV, "auto")
    if choice == "auto":
        return torch.bfloat16 if device.type == "cpu" and native_bf16(device) else torch.float32
    if choice not in ENCODER_PRECISIONS:
        raise ValueError(f"{ENCODER_PRECISION_ENV} is '{choice}'; use auto, bf16 or fp32.")
    return ENCODER_PRECISIONS[choice]
