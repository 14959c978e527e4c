"""Weight schedules for the terms of a :class:`~lightning_seg.losses.CompositeLoss`.

A schedule is called as ``schedule(epoch, step)`` with the current epoch (from 0) and global step (from
0) and returns the term's weight. Each schedule counts in epochs or in optimizer steps (``unit``). In a
YAML config a schedule is given by ``class_path``::

    weight:
      class_path: lightning_seg.losses.schedules.LinearRamp
      init_args: {start: 0.0, end: 1.0, length: 5, unit: epoch}
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Literal

Unit = Literal["epoch", "step"]


class WeightSchedule(ABC):
    """Base class: a weight as a function of training progress ``t`` (epochs or steps, from 0).

    Args:
        unit: whether ``t`` counts epochs or global steps.
    """

    def __init__(self, unit: Unit = "epoch") -> None:
        if unit not in ("epoch", "step"):
            raise ValueError(f"schedule unit must be 'epoch' or 'step', got {unit!r}")
        self.unit = unit

    def __call__(self, epoch: int, step: int) -> float:
        return float(self.value(epoch if self.unit == "epoch" else step))

    @abstractmethod
    def value(self, t: int) -> float:
        """Return the weight after ``t`` epochs or steps."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Constant(WeightSchedule):
    """The same weight throughout training."""

    def __init__(self, value: float = 1.0, unit: Unit = "epoch") -> None:
        super().__init__(unit)
        self.constant = float(value)

    def value(self, t: int) -> float:
        return self.constant


def _check_length(length: int) -> None:
    if length <= 0:
        raise ValueError(f"schedule length must be a positive number of epochs or steps, got {length}")


class LinearRamp(WeightSchedule):
    """``start`` until ``begin``, then linearly to ``end`` over ``length`` epochs/steps, then ``end``."""

    def __init__(
        self, start: float = 0.0, end: float = 1.0, length: int = 10, begin: int = 0, unit: Unit = "epoch"
    ) -> None:
        super().__init__(unit)
        _check_length(length)
        self.start, self.end, self.length, self.begin = float(start), float(end), length, begin

    def fraction(self, t: int) -> float:
        """Progress through the ramp in ``[0, 1]``."""
        return min(max((t - self.begin) / self.length, 0.0), 1.0)

    def value(self, t: int) -> float:
        return self.start + (self.end - self.start) * self.fraction(t)


class Cosine(LinearRamp):
    """Like :class:`LinearRamp` but along half a cosine: ``start + (end − start)·(1 − cos(π·f))/2``."""

    def fraction(self, t: int) -> float:
        return (1.0 - math.cos(math.pi * super().fraction(t))) / 2.0


class Step(WeightSchedule):
    """Piecewise constant: ``values[i]`` from ``milestones[i−1]`` (inclusive) to ``milestones[i]``.

    Example: ``Step(milestones=[10, 20], values=[1.0, 0.5, 0.1])`` is 1 for epochs 0–9, 0.5 for 10–19
    and 0.1 from epoch 20 on.
    """

    def __init__(self, milestones: list[int], values: list[float], unit: Unit = "epoch") -> None:
        super().__init__(unit)
        if len(values) != len(milestones) + 1:
            raise ValueError(
                f"Step needs one more value than milestones, got {len(milestones)} milestones and {len(values)} values"
            )
        if list(milestones) != sorted(milestones):
            raise ValueError(f"Step milestones must be increasing, got {list(milestones)}")
        self.milestones, self.values = list(milestones), [float(v) for v in values]

    def value(self, t: int) -> float:
        return self.values[sum(t >= m for m in self.milestones)]


class Rebalance(WeightSchedule):
    """The boundary-loss paper's rebalancing of a region and a boundary term, in either published form.

    Kervadec et al., MIDL 2019, arXiv 1812.07032.

    * ``form="code"`` (default) follows the authors' released code (its ``StealWeight`` scheduler): the
      region term gets ``max(floor, start − step·t)`` and the boundary term ``step·(t + 1)``; with the
      defaults, at epoch ``e``: ``w_region = max(0.1, 1 − 0.01·e)``, ``w_boundary = 0.01·(e + 1)``. The
      two weights sum to more than 1 once the region weight reaches its floor (0.1 + 0.91 at ``e = 90``)
      and the boundary weight keeps growing.
    * ``form="paper"`` follows the paper's text: ``α = max(floor, start − step·t)`` (floor 0.01 by
      default), the region term gets ``α`` and the boundary term ``1 − α``, so they always sum to 1.

    Args:
        term: which side of the pair this schedule weights, ``region`` or ``boundary``.
        start: the region weight at ``t = 0``.
        step: the change per epoch (or step).
        floor: the region weight never falls below it; ``None`` = 0.1 (``code``) or 0.01 (``paper``).
        form: ``code`` (the authors' code) or ``paper`` (the paper's ``α`` / ``1 − α``).
        unit: ``epoch`` (as in the paper) or ``step``.
    """

    def __init__(
        self,
        term: Literal["region", "boundary"] = "boundary",
        start: float = 1.0,
        step: float = 0.01,
        floor: float | None = None,
        unit: Unit = "epoch",
        form: Literal["code", "paper"] = "code",
    ) -> None:
        super().__init__(unit)
        if term not in ("region", "boundary"):
            raise ValueError(f"Rebalance term must be 'region' or 'boundary', got {term!r}")
        if form not in ("code", "paper"):
            raise ValueError(f"Rebalance form must be 'code' (the authors' code) or 'paper', got {form!r}")
        if floor is None:
            floor = 0.1 if form == "code" else 0.01
        self.term, self.start, self.step, self.floor, self.form = term, float(start), float(step), float(floor), form

    def value(self, t: int) -> float:
        region = max(self.floor, self.start - self.step * t)
        if self.term == "region":
            return region
        return self.step * (t + 1) if self.form == "code" else 1.0 - region
