from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from studio.core.env import env_bool, env_int, env_list

ROOT = Path(__file__).resolve().parents[2]


def test_it_reads_typed_values_from_the_environment(monkeypatch):
    monkeypatch.setenv("X_BOOL", "Yes")
    monkeypatch.setenv("X_INT", "42")
    monkeypatch.setenv("X_LIST", "a, b,,c")
    assert env_bool("X_BOOL") is True
    assert env_int("X_INT", 1) == 42
    assert env_list("X_LIST") == ["a", "b", "c"]
    assert env_int("X_MISSING", 7) == 7


def test_it_names_the_variable_when_a_value_is_wrong(monkeypatch):
    monkeypatch.setenv("X_INT", "many")
    with pytest.raises(ValueError, match="X_INT must be an integer"):
        env_int("X_INT", 1)
    monkeypatch.setenv("X_BOOL", "perhaps")
    with pytest.raises(ValueError, match="X_BOOL must be a boolean"):
        env_bool("X_BOOL")


def test_it_passes_the_deploy_checks_in_production_mode(tmp_path):
    env = {
        **os.environ,
        "STUDIO_DATA_DIR": str(tmp_path),
        "SECRET_KEY": "x" * 20 + "production-secret-key-that-is-long-and-random-3f9a8b7c6d5e",
        "DEBUG": "false",
        "SECURE_COOKIES": "true",
        "SECURE_SSL_REDIRECT": "true",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
        "SECURE_HSTS_PRELOAD": "true",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
