"""Settings: ``meterledger.yaml`` (or the file in ``METERLEDGER_CONFIG``), then environment
variables ``METERLEDGER_*``, then command-line options, each overriding the one before."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from meterledger.core.errors import ConfigError

__all__ = ["Settings", "load_settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="METERLEDGER_", extra="forbid")

    db: str = Field("sqlite:///meterledger.db", description="store URL: sqlite:///PATH")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "WARNING", description="DEBUG, INFO, WARNING or ERROR"
    )
    default_tz: str = Field("UTC", description="IANA zone for meters made by --create-meters")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings)


def _yaml_values(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text("utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of settings")
    return data


def load_settings(**overrides: Any) -> Settings:
    """Build settings: YAML file < environment < ``overrides`` (None values are ignored)."""
    path = Path(os.environ.get("METERLEDGER_CONFIG", "meterledger.yaml"))
    values: dict[str, Any] = _yaml_values(path) if path.exists() else {}
    env_names = {
        name for name in Settings.model_fields if f"METERLEDGER_{name.upper()}" in os.environ
    }
    for name in env_names:
        values.pop(name, None)  # the environment beats the file
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(f"bad settings: {exc}") from exc
