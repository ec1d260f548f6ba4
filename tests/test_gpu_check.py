"""scripts/gpu_check.sh --dry-run: every stage of the GPU check (install, rendered data, paper-config training
single and under torchrun, decoding, the Magenta import, the CUDA tests) at tiny size on the CPU."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["install", "data", "train", "torchrun", "decode", "convert", "tests"]


def run_check(out: Path, **env) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    """The script's result and each stage's status line from its summary."""
    result = subprocess.run(["bash", "scripts/gpu_check.sh", "--dry-run"], cwd=ROOT, capture_output=True, text=True,
                            timeout=600, env=dict(os.environ, OUT=str(out), PYTHON=sys.executable, **env))
    lines = (out / "summary.txt").read_text().splitlines()
    statuses = dict(line.split(": ", 1) for line in lines if not line.startswith(("#", " ")))
    return result, statuses


def test_dry_run_passes_every_stage_and_prints_its_figures(tmp_path):
    result, statuses = run_check(tmp_path)
    summary = (tmp_path / "summary.txt").read_text()
    assert result.returncode == 0, summary + result.stderr
    assert list(statuses) == STAGES and all(s.startswith("passed") for s in statuses.values()), summary
    assert summary.count("training samples/s") == 2 and summary.count("days at this rate") == 2
    assert "reference generator on cpu, batch 2" in summary and "matches Magenta's equations" in summary
    assert summary.count("peak memory") == 3
    for stage in STAGES:
        assert (tmp_path / f"{stage}.log").exists()


def test_stages_past_the_budget_fail_and_the_script_says_so(tmp_path):
    result, statuses = run_check(tmp_path, GPU_CHECK_BUDGET_S="0")
    assert result.returncode == 1
    assert list(statuses) == STAGES and all("budget is spent" in s for s in statuses.values())
