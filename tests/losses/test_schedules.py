"""Weight schedules: values at chosen epochs and steps, and bad arguments."""

import math

import pytest

from lightning_seg.losses.schedules import Constant, Cosine, LinearRamp, Rebalance, Step


def test_constant():
    assert [Constant(0.3)(e, 100 * e) for e in range(3)] == [0.3, 0.3, 0.3]


def test_linear_ramp_by_epoch():
    ramp = LinearRamp(start=0.0, end=1.0, length=4, begin=2)
    assert [ramp(e, 0) for e in range(8)] == [0.0, 0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0]


def test_linear_ramp_by_step_ignores_epoch():
    ramp = LinearRamp(start=1.0, end=0.0, length=10, unit="step")
    assert ramp(epoch=7, step=0) == 1.0
    assert ramp(epoch=0, step=5) == 0.5
    assert ramp(epoch=0, step=50) == 0.0


def test_cosine():
    schedule = Cosine(start=0.0, end=2.0, length=4)
    expected = [0.0, 1 - math.cos(math.pi / 4), 1.0, 1 - math.cos(3 * math.pi / 4), 2.0, 2.0]
    assert [schedule(e, 0) for e in range(6)] == pytest.approx(expected)


def test_step():
    schedule = Step(milestones=[2, 5], values=[1.0, 0.5, 0.1], unit="step")
    assert [schedule(0, s) for s in range(7)] == [1.0, 1.0, 0.5, 0.5, 0.5, 0.1, 0.1]


def test_rebalance_code_form_follows_the_authors_steal_weight():
    region, boundary = Rebalance(term="region"), Rebalance(term="boundary")
    # The authors' code: w_region = max(0.1, 1 − 0.01 e), w_boundary = 0.01 (e + 1)
    assert [region(e, 0) for e in (0, 1, 50, 89, 90, 91, 200)] == pytest.approx([1.0, 0.99, 0.5, 0.11, 0.1, 0.1, 0.1])
    assert [boundary(e, 0) for e in (0, 1, 50, 200)] == pytest.approx([0.01, 0.02, 0.51, 2.01])
    assert region(200, 0) + boundary(200, 0) > 1


def test_rebalance_paper_form_is_alpha_and_one_minus_alpha():
    region, boundary = Rebalance(term="region", form="paper"), Rebalance(term="boundary", form="paper")
    # The paper: α = max(0.01, 1 − 0.01 e); region α, boundary 1 − α
    epochs = (0, 1, 50, 98, 99, 100, 300)
    assert [region(e, 0) for e in epochs] == pytest.approx([1.0, 0.99, 0.5, 0.02, 0.01, 0.01, 0.01])
    assert [boundary(e, 0) for e in epochs] == pytest.approx([0.0, 0.01, 0.5, 0.98, 0.99, 0.99, 0.99])
    assert all(region(e, 0) + boundary(e, 0) == pytest.approx(1.0) for e in epochs)


def test_rebalance_configurable_and_by_step():
    region = Rebalance(term="region", start=0.5, step=0.1, floor=0.2, unit="step")
    assert [region(0, s) for s in (0, 1, 2, 3, 10)] == pytest.approx([0.5, 0.4, 0.3, 0.2, 0.2])
    assert Rebalance(step=0.1, unit="step")(9, 4) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Constant(1.0, unit="batch"), "unit must be 'epoch' or 'step', got 'batch'"),
        (lambda: LinearRamp(length=0), "length must be a positive number"),
        (lambda: Step([1, 2], [1.0]), "one more value than milestones, got 2 milestones and 1 values"),
        (lambda: Step([3, 1], [1.0, 2.0, 3.0]), "milestones must be increasing"),
        (lambda: Rebalance(term="gdl"), "term must be 'region' or 'boundary', got 'gdl'"),
        (lambda: Rebalance(form="text"), "form must be 'code' .* or 'paper', got 'text'"),
    ],
)
def test_bad_arguments_raise(build, message):
    with pytest.raises(ValueError, match=message):
        build()
