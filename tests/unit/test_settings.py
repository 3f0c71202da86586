from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import Settings, SettingsError


def test_defaults_run_the_local_stack() -> None:
    s = Settings.from_env({})
    assert (s.broker_url, s.s3_endpoint, s.s3_bucket, s.web_port, s.partitions) == (
        "kafka://127.0.0.1:9092",
        "http://127.0.0.1:8333",
        "modelview",
        6066,
        8,
    )
    assert s.api_token is None and s.bootstrap_servers == "127.0.0.1:9092"


def test_environment_is_typed() -> None:
    s = Settings.from_env(
        {
            "MODELVIEW_PARTITIONS": "4",
            "MODELVIEW_DATA_DIR": "/x",
            "MODELVIEW_API_TOKEN": "t",
            "OTHER": "1",
        }
    )
    assert s.partitions == 4 and s.data_dir == Path("/x") and s.api_token == "t"


def test_unknown_and_bad_settings_are_refused() -> None:
    with pytest.raises(SettingsError, match="unknown setting MODELVIEW_PARTITION;"):
        Settings.from_env({"MODELVIEW_PARTITION": "4"})
    with pytest.raises(SettingsError, match="not a valid int"):
        Settings.from_env({"MODELVIEW_WEB_PORT": "http"})
    with pytest.raises(SettingsError, match="explicit port"):
        Settings.from_env({"MODELVIEW_BROKER_URL": "kafka://localhost"})
    with pytest.raises(SettingsError, match="'kafka' or 'tansu'"):
        Settings.from_env({"MODELVIEW_BROKER_PROFILE": "pulsar"})
    with pytest.raises(SettingsError, match="VIEWS_MEMORY_MB must be at least 1"):
        Settings.from_env({"MODELVIEW_VIEWS_MEMORY_MB": "0"})


def test_the_broker_profile_names_the_broker_and_local_still_means_tansu() -> None:
    assert Settings.from_env({}).broker == "kafka"
    assert Settings.from_env({"MODELVIEW_BROKER_PROFILE": "tansu"}).broker == "tansu"
    assert Settings.from_env({"MODELVIEW_BROKER_PROFILE": "local"}).broker == "tansu"


def test_secrets_stay_out_of_repr() -> None:
    s = Settings.from_env({"MODELVIEW_S3_SECRET_KEY": "hunter2", "MODELVIEW_API_TOKEN": "tok"})
    assert "hunter2" not in repr(s) and "tok" not in repr(s)


def test_settings_spelled_out_as_environment_read_back_the_same() -> None:
    # How the demo and the tests hand a worker its settings.
    chosen = Settings.from_env({}).with_(
        data_dir=Path("/tmp/somewhere"),
        retrain_holdout=0.2,
        gate_metric="mae",
        validation_segment_by="origin",
        api_token="t0ken",
    )
    assert Settings.from_env(chosen.to_env()) == chosen
