"""The GPU script of issue 24 (benchmarks/gpu_scale.py) in its quick mode on the CPU: it runs end to end and writes
one JSON with every figure it promises, and its sharded AutoAttack gives the rows of the whole cell."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_script_runs_in_quick_mode(tmp_path):
    out = tmp_path / "figures.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_scale.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["quick"] and figures["device"] and figures["total_s"] > 0
    (model,) = figures["models"].values()
    for key in ("ours_pgd_fp32", "bare_pgd_fp32", "torchattacks_pgd_fp32", "autoattack_local_4_shards",
                "autoattack_ray_4_workers"):
        assert key in model, key
    assert model["ours_pgd_fp32"]["wall_s"] > 0 and model["bare_pgd_fp32"]["image_passes"] == 8 * 2
    assert model["ours_over_bare_per_pass"] > 0
    ray = model["autoattack_ray_4_workers"]
    if isinstance(ray, dict):  # Ray installed (the dev extra): the shards on workers give the local rows
        assert ray["robust_accuracy"] == model["autoattack_local_4_shards"]["robust_accuracy"]
        assert ray["backward_passes"] == model["autoattack_local_4_shards"]["backward_passes"]
