import pytest

from drill.errors import RefusedError
from drill.plan import plan_from_command
from drill.settings import DrillSettings
from eventbus.contracts import DrillCommand


def command(**parameters: str) -> DrillCommand:
    return DrillCommand(
        drill_id="d-1",
        experiment="kafka-node-kill",
        target="kafka-node-1",
        parameters=parameters,
    )


def test_a_plan_takes_the_commands_parameters_and_defaults_the_rest() -> None:
    plan = plan_from_command(command(fault_seconds="7.5"), DrillSettings())

    assert plan.fault_seconds == 7.5
    assert plan.probe_events_per_second == DrillSettings().probe_events_per_second
    assert (plan.drill_id, plan.target) == ("d-1", "kafka-node-1")


@pytest.mark.parametrize(
    "parameters",
    [
        {"fault_seconds": "ten"},
        {"fault_seconds": "0"},
        {"requests_per_second": "100000"},
        {"blast_radius": "everything"},
    ],
)
def test_a_command_with_an_unusable_parameter_is_refused(
    parameters: dict[str, str],
) -> None:
    with pytest.raises(RefusedError):
        plan_from_command(command(**parameters), DrillSettings())


@pytest.mark.parametrize("drill_id", ["", "../etc/passwd", "a b", "x" * 65])
def test_a_drill_id_unfit_for_a_file_name_is_refused(drill_id: str) -> None:
    unfit = DrillCommand(drill_id=drill_id, experiment="kafka-node-kill")

    with pytest.raises(RefusedError):
        plan_from_command(unfit, DrillSettings())
