from monitor.rules import AlertChange, RuleState, ThresholdRule


def lag_rule() -> ThresholdRule:
    return ThresholdRule(name="ConsumerLagHigh", threshold=1000, for_seconds=5)


def test_a_value_above_threshold_is_pending_until_the_for_period_has_passed() -> None:
    rule = lag_rule()

    changes = [rule.evaluate(1500, now) for now in (0.0, 1.0, 4.9)]

    assert changes == [None, None, None]
    assert rule.state is RuleState.PENDING


def test_a_value_held_above_threshold_for_the_period_fires_once() -> None:
    rule = lag_rule()

    changes = [rule.evaluate(1500, now) for now in (0.0, 2.5, 5.0, 6.0, 30.0)]

    assert changes == [None, None, AlertChange.FIRING, None, None]
    assert rule.state is RuleState.FIRING


def test_a_firing_rule_resolves_once_when_the_value_drops_back() -> None:
    rule = lag_rule()
    rule.evaluate(1500, 0.0)
    rule.evaluate(1500, 5.0)

    changes = [rule.evaluate(999, now) for now in (6.0, 7.0)]

    assert changes == [AlertChange.RESOLVED, None]
    assert rule.state is RuleState.INACTIVE


def test_a_short_spike_above_threshold_never_fires() -> None:
    rule = lag_rule()

    changes = [rule.evaluate(v, t) for v, t in [(5000, 0.0), (5000, 4.0), (10, 4.5)]]

    assert changes == [None, None, None]
    assert rule.state is RuleState.INACTIVE


def test_the_for_period_restarts_after_the_value_dips_below() -> None:
    rule = lag_rule()
    rule.evaluate(1500, 0.0)
    rule.evaluate(10, 3.0)

    assert rule.evaluate(1500, 4.0) is None
    assert rule.evaluate(1500, 8.0) is None
    assert rule.evaluate(1500, 9.0) is AlertChange.FIRING


def test_a_value_equal_to_the_threshold_is_not_above_it() -> None:
    rule = lag_rule()

    changes = [rule.evaluate(1000, now) for now in (0.0, 10.0)]

    assert changes == [None, None]
    assert rule.state is RuleState.INACTIVE


def test_a_rule_without_for_period_fires_on_the_first_value_above() -> None:
    rule = ThresholdRule(name="ConsumerLagHigh", threshold=0, for_seconds=0)

    assert rule.evaluate(1, 0.0) is AlertChange.FIRING
