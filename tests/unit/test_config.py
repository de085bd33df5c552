from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aegis import config
from aegis.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_paper_mode_and_standard_ports() -> None:
    settings = config.load(env={})
    assert settings.mode == "paper"
    assert settings.port_of("risk") == 50053
    assert settings.address_of("orchestrator") == "127.0.0.1:50056"
    assert settings.redis() == "redis://127.0.0.1:6379/0"


def test_settings_are_frozen() -> None:
    settings = config.load(env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.mode = "live"  # type: ignore[misc]


def test_environment_overrides_file_which_overrides_defaults(tmp_path: Path) -> None:
    file = tmp_path / "aegis.toml"
    file.write_text('mode = "paper"\n[grpc]\nshutdown_grace_s = 7\n[ports]\nrisk = 6000\n')
    settings = config.load(env={"AEGIS_RISK_PORT": "6100"}, config_file=file)
    assert settings.grpc.shutdown_grace_s == 7.0
    assert settings.ports.risk == 6100


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AEGIS_SHUTDOWN_GRACE_S": "abc"}, "AEGIS_SHUTDOWN_GRACE_S='abc' is not a number"),
        ({"AEGIS_SHUTDOWN_GRACE_S": "-1"}, "AEGIS_SHUTDOWN_GRACE_S='-1' must be greater than 0"),
        ({"AEGIS_RISK_PORT": "70000"}, "AEGIS_RISK_PORT='70000' is not a TCP port"),
        ({"AEGIS_MODE": "yolo"}, "AEGIS_MODE='yolo' must be one of paper, live"),
        ({"AEGIS_RING_CAPACITY": "1000"}, "AEGIS_RING_CAPACITY='1000' must be a power of two"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL='mysql://x/y' must start with postgresql://"),
        ({"DATABASE_URL": "postgresql://h:5432"}, "names no database"),
        ({"DATABASE_URL": "postgresql://u:pw@h:99999/db"}, "DATABASE_URL='postgresql://u:***@h:99999/db'"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL='http://x' must start with redis://"),
        ({"AEGIS_SYMBOLS": "BTCUSDT,bad symbol"}, "has an invalid symbol"),
    ],
)
def test_a_wrong_value_gives_one_line_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.load(env=env)
    text = str(caught.value)
    assert message in text
    assert "\n" not in text


def test_unknown_key_in_the_config_file_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "aegis.toml"
    file.write_text("[grpc]\nshutdown_grace = 7\n")
    with pytest.raises(ConfigError, match="unknown setting 'grpc.shutdown_grace'"):
        config.load(env={}, config_file=file)


def test_database_url_falls_back_to_pg_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "PGHOST": "db.local",
        "PGPORT": "6543",
        "PGUSER": "trader",
        "PGPASSWORD": "p@ss",
        "PGDATABASE": "books",
    }.items():
        monkeypatch.setenv(name, value)
    assert config.load(env={}).dsn() == "postgresql://trader:p%40ss@db.local:6543/books"
    assert config.load(env={"DATABASE_URL": "postgresql://a@b/c"}).dsn() == "postgresql://a@b/c"


def test_live_mode_is_refused_without_keys_and_confirmation() -> None:
    with pytest.raises(ConfigError, match="needs BINANCE_API_KEY and BINANCE_API_SECRET"):
        config.load(env={"AEGIS_MODE": "live"}).check_live_mode()
    keys = {"AEGIS_MODE": "live", "BINANCE_API_KEY": "k", "BINANCE_API_SECRET": "s"}
    with pytest.raises(ConfigError, match="AEGIS_LIVE_CONFIRM"):
        config.load(env=keys).check_live_mode()
    config.load(env={**keys, "AEGIS_LIVE_CONFIRM": config.LIVE_CONFIRMATION}).check_live_mode()


def test_secrets_never_show_in_repr_or_str() -> None:
    settings = config.load(env={"BINANCE_API_KEY": "KEY123", "BINANCE_API_SECRET": "SECRET456"})
    assert "KEY123" not in repr(settings) and "SECRET456" not in repr(settings)
    assert str(settings.binance_api_secret) == "***"
    assert settings.binance_api_secret.reveal() == "SECRET456"


def test_shard_index_comes_from_the_statefulset_ordinal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTNAME", "aegis-feed-brain-3")
    assert config.load(env={}).shard == 3
    assert config.load(env={"AEGIS_SHARD_INDEX": "1"}).shard == 1


def test_readme_configuration_table_is_current() -> None:
    readme = (REPO / "README.md").read_text()
    assert config.markdown_table() in readme, "run `aegis config --markdown` and paste it into README.md"


def test_a_service_with_a_bad_value_exits_2_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aegis.risk"],
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql://x:notaport/db"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert re.match(r"aegis\.risk: DATABASE_URL=.* is not a valid PostgreSQL URL", lines[0])
