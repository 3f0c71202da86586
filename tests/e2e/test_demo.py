"""The README's main command, shortened: the demo's loop on three days of real flights."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.demo.run import LEARNED
from tests.services import run_cli, stack_settings

pytestmark = pytest.mark.e2e


def test_the_demo_promotes_a_keras_version_over_the_baseline(tmp_path: Path) -> None:
    # Every setting is passed on to the demo, so its own choices are spelled out here.
    settings = stack_settings(tmp_path / "data", partitions=2).with_(
        retrain_min_labels=900,
        retrain_trainer="keras",
        retrain_hyper="warm=0",
        retrain_features=",".join(LEARNED),
        retrain_leave_recent_hours=12.0,
        gate_min_samples=100,
        gate_min_segment_samples=60,
    )
    done = run_cli(settings, "demo", "--days", "3", within=600)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr[-3000:]
    assert "promoted by hand as the first champion" in out, out
    verdicts = re.findall(
        r"v(\d+) \(keras.*validated on (\d+) past events \((\d+) out of time\).*: "
        r"(PROMOTED|rejected)",
        out,
    )
    assert verdicts and verdicts[0][3] == "PROMOTED", out
    assert int(verdicts[0][2]) > 0, out  # the hours left out of the fit were judged apart
    summary = out[out.index("summary:") :]
    maes = [float(m) for m in re.findall(r"promoted by \w+ +MAE +([\d.]+)", summary)]
    assert len(maes) >= 2 and min(maes[1:]) < maes[0], summary  # Keras beats the baseline
    assert re.search(r"linear reference +MAE +[\d.]+", summary), summary
    assert "stopped the worker and the stack" in out
