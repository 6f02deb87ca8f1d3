"""``--ensemble``, ``--reward-aggregation`` and ``--uncertainty-penalty`` come from the settings
models, on the command line and in the pipeline config alike.

A wrong value of each key is refused at config load, naming the file, line and key, by the
per-key walk of ``tests/orchestration/test_config_keys.py`` (it finds these keys by itself);
here: a good value reaches the training settings, and a bad flag is refused naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tasks.orchestration.pipeline_config import load_pipeline_config
from tests.conftest import run_charter
from tests.orchestration import test_config_keys as config_keys

# The bundled config written beside its inputs, which the per-key walk spoils one key of.
bundled_copy, bundled_data = config_keys.bundled_copy, config_keys.bundled_data

NO_SERVER = {"PREFECT_API_URL": "http://127.0.0.1:9/api"}  # never contacted: the flags are refused first


@pytest.mark.parametrize(
    ("location", "value"),
    [
        (("train", "reward_model", "ensemble"), 3),
        (("train", "ppo", "reward_aggregation"), "uwo"),
        (("train", "ppo", "uncertainty_penalty"), 0.5),
    ],
)
def test_pipeline_config_keys_reach_the_training_settings(
    bundled_copy: Path, bundled_data: dict[str, Any], location: tuple[str, ...], value: Any
) -> None:
    path, _ = config_keys._spoiled(bundled_copy, bundled_data, location, value)
    section: Any = load_pipeline_config(path)
    for key in location:
        section = getattr(section, key)
    assert section == value


@pytest.mark.parametrize(
    ("command", "flag", "value", "message"),
    [
        ("reward", "--ensemble", "0", "--ensemble: "),
        ("reward", "--ensemble", "17", "--ensemble: "),
        (
            "ppo",
            "--reward-aggregation",
            "median",
            "unknown --reward-aggregation 'median'; choose from mean, min or uwo",
        ),
        ("ppo", "--uncertainty-penalty", "-1", "--uncertainty-penalty: "),
    ],
)
def test_a_bad_flag_is_refused_naming_it(
    tmp_path: Path, command: str, flag: str, value: str, message: str
) -> None:
    extra = ["--prompts", "p", "--rules", "r.yaml"] if command == "ppo" else []
    result = run_charter("train", command, flag, value, *extra, "--store", str(tmp_path), env=NO_SERVER)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
