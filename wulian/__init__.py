"""五联 wulian: link social-assistance needs to the five linkages' supply, exactly and explainably.

The repository keeps its parts in top-level folders (``contract/``, ``demand/``,
``resources/``, ``planning/``, ``optimizer/``, ``api/``, ``ui/``, ``data/``); they install as the
subpackages of this one package (``wulian.optimizer``, ``wulian.planning.scenario``, …) through
setuptools' ``package-dir`` mapping in ``pyproject.toml`` (docs/architecture.md says why).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("wulian")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"
