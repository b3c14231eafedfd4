"""The bounds on what wulian reads from outside: one settings object for the readers, the
validation, the service and the command line.

Each limit has a default, an environment variable (``WULIAN_`` and the name in capitals, e.g.
``WULIAN_MAX_BODY_BYTES``) and a key in the ``[limits]`` table of a TOML file
(``$WULIAN_CONFIG``, else ``wulian.toml`` in the working folder, when it exists); the
environment wins over the file. ``docs/api.md`` lists them all ("Limits").

The defaults leave room for a city quarter (Chengdu: about a million households, a few million
needs) and refuse what no real scenario looks like: 100,000 columns, a 5 MB cell, an XLSX
that inflates a thousandfold.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, InitSettingsSource, SettingsConfigDict

from wulian.contract.problems import Problem

CONFIG_FILE = "wulian.toml"
MB = 1024 * 1024


class Limits(BaseSettings):
    """Every limit on input, with its default (see the module's docstring for where each is
    set)."""

    model_config = SettingsConfigDict(env_prefix="WULIAN_", extra="ignore", frozen=True)

    max_body_bytes: int = Field(
        256 * MB, gt=0, description="largest request body the service reads (bytes)")
    max_files: int = Field(32, gt=0, description="files in one upload")
    max_columns: int = Field(
        200, gt=0, description="columns of one table (the contract's and the x_ columns)")
    max_rows: int = Field(5_000_000, gt=0, description="rows of one table")
    max_cell_chars: int = Field(2_000, gt=0, description="characters in one cell")
    max_xlsx_bytes: int = Field(
        1024 * MB, gt=0, description="an XLSX workbook's size once unzipped (bytes)")
    max_xlsx_ratio: float = Field(
        100.0, gt=1, description="how many times a workbook's part may inflate when unzipped")
    max_problems: int = Field(
        100, gt=0, description="problems answered or printed (the total is always told)")
    excerpt_chars: int = Field(
        80, ge=8, description="characters of a cell's value shown in a problem")
    validation_seconds: float = Field(
        600.0, gt=0, description="time an upload's validation may take in its worker")
    shutdown_seconds: float = Field(
        30.0, gt=0, description="time the service waits for running work when it stops")

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings,
                                   dotenv_settings, file_secret_settings):
        # Arguments first, then the environment, then the TOML file's [limits] table.
        return (init_settings, env_settings,
                InitSettingsSource(settings_cls, init_kwargs=_toml_limits()))


def _toml_limits() -> dict[str, Any]:
    """The ``[limits]`` table of the configuration file (empty when there is none)."""
    named = os.environ.get("WULIAN_CONFIG")
    path = Path(named) if named else Path(CONFIG_FILE)
    if not path.is_file():
        if named:
            raise FileNotFoundError(f"配置文件不存在 / no configuration file at {path} "
                                    "($WULIAN_CONFIG)")
        return {}
    with path.open("rb") as handle:
        table = tomllib.load(handle).get("limits", {})
    if not isinstance(table, dict):
        raise ValueError(f"{path}: [limits] 应为表 / [limits] must be a table")
    return table


@lru_cache(maxsize=1)
def limits() -> Limits:
    """The limits in force (read once per process; tests call ``limits.cache_clear()``)."""
    return Limits()


def excerpt(value: object, chars: int | None = None) -> str:
    """A value cut to a short excerpt for a message (``…`` and the full length when cut)."""
    text = str(value)
    chars = chars or limits().excerpt_chars
    if len(text) <= chars:
        return text
    return f"{text[:chars]}…({len(text):,})"


def shown_problems(problems: Sequence[Problem]) -> list[Problem]:
    """The problems a person or a client is shown: the first ``max_problems``, each value and
    column name (a header is a cell too) cut to its excerpt. The service's 422 and the command
    line's report both show these, so a hostile file cannot flood either; the total is told
    beside them, and ``--report FILE`` keeps every problem in full."""
    return [replace(p, value=excerpt(p.value) if p.value else p.value,
                    column=excerpt(p.column) if p.column else p.column)
            for p in problems[:limits().max_problems]]
