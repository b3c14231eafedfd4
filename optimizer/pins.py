"""The one error for pins that cannot be kept, in the allocation and in the volunteer matching.

A coordinator's pin (a need's units to a source, a visit to a volunteer and slot) is checked
before solving; every pin that cannot be kept is listed, one line each, and the run refused.
"""

from __future__ import annotations


class PinError(ValueError):
    """Pins that cannot be kept; ``problems`` says which pin and why, one line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))
