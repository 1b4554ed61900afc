"""bench/gpu.py, the one script a lent GPU runs, kept working: its dry run on the CPU."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "gpu.py"


def test_the_gpu_benchmark_runs_dry_on_the_cpu(tmp_path):
    # The demo and the CUDA tests are covered by the suite itself; the sections a GPU run times are run here.
    done = subprocess.run([sys.executable, str(BENCH), "--out", str(tmp_path), "--dry-run",
                           "--only", "channel,models,attacks"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "gpu.json").read_text())
    assert result["args"]["device"] == "cpu" and result["args"]["quick"] is True
    assert {k: v["status"] for k, v in result["sections"].items()} == \
        {"channel": "ok", "models": "ok", "attacks": "ok"}
    rows = result["sections"]["attacks"]["rows"]
    assert {r["model"] for r in rows} == {"inception_v3", "resnet50"}
    assert all(isinstance(v, float) and v > 0 for r in rows for k, v in r.items() if k.endswith("_s"))
    assert (tmp_path / "gpu.txt").read_text().strip()
