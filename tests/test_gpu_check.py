"""benchmarks/gpu_check.py runs end to end at tiny scale on CPU (the GPU numbers need a GPU)."""

from __future__ import annotations

import json
import math

from .conftest import load_benchmark


def test_gpu_check_tiny_on_cpu(tmp_path):
    module = load_benchmark("gpu_check")
    out = tmp_path / "gpu.json"
    module.main(["--device", "cpu", "--tiny", "--skip-compile", "--out", str(out)])
    result = json.loads(out.read_text())
    for mode in ("fp32", "bf16_channels_last"):
        assert result["training"][mode]["fit_img_s"] > 0
        assert result["training"][mode]["plain_img_s"] > 0
    assert result["sal"]["layers"] == 21 and result["sal"]["fast_seconds"] > 0
    assert math.isfinite(result["sal"]["compat_seconds_per_measurement_cifar10_est"])
    # compat and the plain official loop agree at ResNet-18 (fp32 rounding only)
    assert result["parity"]["max_abs_diff"] <= 1e-4 * max(1.0, result["parity"]["max_value"])
    assert result["em"]["seconds_per_round"] > 0
