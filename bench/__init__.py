"""Benchmarks: `make bench` runs them all and prints tables (see docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def preset_folder(preset: str, data: str | None, tmp: str) -> Path:
    """The scenario a benchmark runs on: ``data`` when given, the bundled demo for
    ``district``, else the ``city`` preset generated (seed 0) as CSV under ``tmp``."""
    if data:
        return Path(data)
    if preset == "district":
        return ROOT / "data" / "demo"
    from wulian.planning.generate import generate_scenario
    from wulian.planning.io import write_tables

    path = Path(tmp) / "city"
    write_tables(generate_scenario("city", seed=0), path, "csv")
    return path


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children and theirs: a pool's
    workers count once the pool is shut down and they are waited for."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
