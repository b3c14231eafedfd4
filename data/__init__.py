"""Data shipped with wulian: the bundled demo scenario (one district, synthetic, seed 0)."""

from importlib import resources
from pathlib import Path


def demo_folder() -> Path:
    """The folder of the bundled demo scenario, wherever the package is installed."""
    return Path(str(resources.files(__name__).joinpath("demo")))
