import random

import numpy
import pytest

from drill.stats import percentile


@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 99, 100])
def test_percentiles_agree_with_numpy_linear_interpolation(q: float) -> None:
    generator = random.Random(q)
    values = [generator.expovariate(20.0) for _ in range(257)]

    assert percentile(values, q) == pytest.approx(float(numpy.percentile(values, q)))


def test_the_median_of_an_even_count_lies_between_the_middle_values() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5


def test_one_value_is_every_percentile_of_itself() -> None:
    assert [percentile([0.2], q) for q in (0, 50, 99)] == [0.2, 0.2, 0.2]


def test_no_values_have_no_percentile() -> None:
    assert percentile([], 99) is None


def test_a_percentile_outside_0_to_100_is_refused() -> None:
    with pytest.raises(ValueError):
        percentile([1.0], 101)
