"""Hyperparameters: parsed from the CLI and settings, refused with a reason, recorded."""

from __future__ import annotations

import pytest

from app.learning.hyper import LEGACY, Hyper, HyperError, recorded
from app.models.retrain import retrain_spec
from app.settings import Settings, SettingsError


def test_parse_takes_repeated_and_comma_separated_pieces() -> None:
    hyper = Hyper.parse(["epochs=80", "hidden=0, learning_rate=0.05", ""])
    assert (hyper.epochs, hyper.hidden, hyper.learning_rate) == (80, 0, 0.05)
    assert hyper.patience == Hyper().patience  # the rest keep their defaults
    assert Hyper.parse([]) == Hyper()
    assert Hyper.from_dict(hyper.to_dict()) == hyper


@pytest.mark.parametrize(
    ("items", "reason"),
    [
        (["epochs"], "write NAME=VALUE"),
        (["epoch=3"], "unknown hyperparameters ['epoch']"),
        (["epochs=3.5"], "epochs: '3.5' is not an integer"),
        (["learning_rate=fast"], "learning_rate: 'fast' is not a number"),
        (["epochs=0"], "epochs and batch must be at least 1"),
        (["hidden=-1"], "cannot be negative"),
        (["validation=0.5"], "validation must be at least 0 and below 0.5"),
        (["learning_rate=0"], "learning_rate must be above 0"),
    ],
)
def test_a_bad_hyperparameter_is_refused_with_its_reason(items: list[str], reason: str) -> None:
    with pytest.raises(HyperError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        Hyper.parse(items)


def test_a_manifest_without_hyperparameters_was_fitted_the_old_way() -> None:
    assert recorded({"kind": "keras"}) == LEGACY
    assert (LEGACY.epochs, LEGACY.patience) == (30, 0)  # every epoch, no early stopping
    assert recorded({"hyperparameters": {"hidden": 8}}) == Hyper(hidden=8)


def test_settings_check_the_retrain_trainer_and_its_hyperparameters_at_start() -> None:
    settings = Settings.from_env(
        {"MODELVIEW_RETRAIN_TRAINER": "linear", "MODELVIEW_RETRAIN_HYPER": "epochs=5"}
    )
    assert settings.retrain_hyper == "epochs=5"
    with pytest.raises(SettingsError, match="MODELVIEW_RETRAIN_HYPER: unknown"):
        Settings.from_env({"MODELVIEW_RETRAIN_HYPER": "depth=3"})
    with pytest.raises(SettingsError, match="MODELVIEW_RETRAIN_TRAINER must be"):
        Settings.from_env({"MODELVIEW_RETRAIN_TRAINER": "xgboost"})


def test_retraining_fits_the_features_the_settings_name_and_refuses_an_empty_name() -> None:
    assert retrain_spec(Settings.from_env({}), "flights").features == ()  # every feature
    settings = Settings.from_env({"MODELVIEW_RETRAIN_FEATURES": " dep_delay, origin "})
    spec = retrain_spec(settings, "flights")
    assert (spec.dataset, spec.features) == ("flights", ("dep_delay", "origin"))
    assert spec.holdout == settings.retrain_holdout
    with pytest.raises(SettingsError, match="MODELVIEW_RETRAIN_FEATURES: write feature names"):
        Settings.from_env({"MODELVIEW_RETRAIN_FEATURES": "dep_delay,,origin"})
