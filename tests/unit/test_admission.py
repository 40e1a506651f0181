"""The share of new calls the dialplan lets into fairline: halved on shedding, given back while calm."""

from __future__ import annotations

import pytest

from ari_app.core.admission import DECREASE_EVERY_S, INCREASE_EVERY_S, INCREASE_STEP, MIN_PERCENT, Admission, RunningEstimate


def test_all_calls_are_admitted_until_one_is_shed() -> None:
    admission = Admission()
    assert (admission.percent, admission.routed(1000.0)) == (100, None)


def test_a_shed_call_halves_the_share_and_more_shed_calls_within_a_second_do_not() -> None:
    admission = Admission()
    assert admission.shed(10.0) == 50
    assert admission.shed(10.0 + DECREASE_EVERY_S / 2) is None  # Asterisk has not shown the effect yet
    assert admission.shed(10.0 + DECREASE_EVERY_S) == 25
    assert admission.percent == 25


def test_the_share_never_falls_below_the_minimum_so_some_calls_keep_measuring() -> None:
    admission = Admission()
    shares = [admission.shed(float(t)) for t in range(10)]
    assert shares == [50, 25, 12, 6, MIN_PERCENT, None, None, None, None, None]
    assert admission.percent == MIN_PERCENT


def test_calm_gives_the_share_back_step_by_step() -> None:
    admission = Admission()
    admission.shed(10.0)
    assert admission.routed(10.0 + INCREASE_EVERY_S / 2) is None  # too soon after the last shed call
    assert admission.routed(10.0 + INCREASE_EVERY_S) == 50 + INCREASE_STEP
    assert admission.routed(10.0 + 1.5 * INCREASE_EVERY_S) is None
    assert admission.routed(10.0 + 2 * INCREASE_EVERY_S) == 50 + 2 * INCREASE_STEP


def test_a_call_after_a_long_quiet_spell_restores_every_call_at_once() -> None:
    admission = Admission()
    admission.shed(10.0)
    admission.shed(11.0)
    assert admission.routed(11.0 + 60 * INCREASE_EVERY_S) == 100
    assert admission.routed(200.0) is None


@pytest.mark.parametrize("shed_again_after", [0.2, 0.9])
def test_a_shed_call_while_recovering_stops_the_recovery(shed_again_after: float) -> None:
    admission = Admission()
    admission.shed(10.0)
    admission.shed(10.0 + INCREASE_EVERY_S + shed_again_after)  # another decrease: 25
    assert admission.percent == 25
    assert admission.routed(10.0 + INCREASE_EVERY_S + shed_again_after + 0.5 * INCREASE_EVERY_S) is None


def test_a_sample_moves_the_estimate_by_its_weight_and_silence_halves_it_every_second() -> None:
    estimate = RunningEstimate(weight=0.25)
    estimate.note(0.8, now=10.0)
    assert estimate.at(10.0) == pytest.approx(0.2)
    estimate.note(0.2, now=10.0)
    assert estimate.at(10.0) == pytest.approx(0.2)
    assert estimate.at(12.0) == pytest.approx(0.05)  # two seconds without a sample

    estimate.note(0.45, now=12.0)  # a sample after the silence moves what is left of it
    assert estimate.at(12.0) == pytest.approx(0.05 + 0.25 * (0.45 - 0.05))
