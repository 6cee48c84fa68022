"""`frozen_record` builds the same frozen dataclasses as `@dataclass(frozen=True, slots=True)`."""

from __future__ import annotations

import dataclasses
import inspect
import pickle

import pytest

from orchestrator.diagnosis.patterns import _Member
from orchestrator.diagnosis.rulebase import Candidate
from orchestrator.frozen import evolve, frozen_record
from orchestrator.models import (
    DeviceReport,
    Finding,
    NetworkKeys,
    Observation,
    StepOutput,
)
from orchestrator.probes.curl_result import CurlResult

RECORDS = (
    StepOutput,
    Observation,
    Finding,
    NetworkKeys,
    DeviceReport,
    CurlResult,
    Candidate,
    _Member,
)


def _reference(record: type) -> type:
    """The same fields declared again under the standard decorator."""
    namespace: dict[str, object] = {"__annotations__": {}}
    for field in dataclasses.fields(record):
        namespace["__annotations__"][field.name] = field.type  # type: ignore[index]
        if field.default is not dataclasses.MISSING:
            namespace[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            namespace[field.name] = dataclasses.field(default_factory=field.default_factory)
    return dataclasses.dataclass(frozen=True, slots=True)(type(record.__name__, (), namespace))


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.__name__)
def test_signature_is_the_standard_one(record: type) -> None:
    # as text: a factory's default is a sentinel of each implementation, shown as <factory>
    assert str(inspect.signature(record)) == str(inspect.signature(_reference(record)))
    assert record.__slots__ == _reference(record).__slots__
    assert dataclasses.is_dataclass(record)


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.__name__)
def test_instances_hold_what_they_were_given(record: type) -> None:
    required = [f for f in dataclasses.fields(record) if f.default is dataclasses.MISSING]
    required = [f for f in required if f.default_factory is dataclasses.MISSING]
    values = {f.name: f"value-{index}" for index, f in enumerate(required)}
    built = record(**values)
    reference = _reference(record)(**values)
    for field in dataclasses.fields(record):
        assert getattr(built, field.name) == getattr(reference, field.name), field.name
    positional = record(*values.values())
    assert positional == built and hash(positional) == hash(built)


def test_frozen_defaults_factories_and_errors() -> None:
    report = DeviceReport(uuid="u", name="n", reachable=True)
    other = DeviceReport("u2", "n2", False)
    assert report.network == NetworkKeys() and report.network is not other.network
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.name = "changed"  # type: ignore[misc]
    with pytest.raises(TypeError):
        StepOutput(name="only-name")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        StepOutput(name="n", output="", colour="red")  # type: ignore[call-arg]
    step = StepOutput("n", "out", exit_code=0, duration_s=1.5)
    assert dataclasses.replace(step, output="new") == StepOutput("n", "new", 0, duration_s=1.5)
    assert pickle.loads(pickle.dumps(step)) == step
    assert repr(step).startswith("StepOutput(name='n', output='out', exit_code=0")


def test_unsupported_classes_are_refused() -> None:
    class WithPostInit:
        value: int = 0

        def __post_init__(self) -> None:
            pass

    with pytest.raises(TypeError, match="__post_init__"):
        frozen_record(WithPostInit)

    class WithHiddenField:
        __annotations__ = {"value": int}
        value: int = dataclasses.field(default=0, init=False)

    with pytest.raises(TypeError, match="plain init fields"):
        frozen_record(WithHiddenField)


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.__name__)
def test_evolve_changes_what_replace_changes(record: type) -> None:
    names = [f.name for f in dataclasses.fields(record)]
    original = record(*(f"value-{index}" for index in range(len(names))))
    for name in names:
        assert evolve(original, **{name: "new"}) == dataclasses.replace(original, **{name: "new"})
    both = {names[0]: "first", names[-1]: "last"}
    assert evolve(original, **both) == dataclasses.replace(original, **both)
    assert evolve(original) == original


def test_evolve_refuses_unknown_fields_and_other_classes() -> None:
    step = StepOutput("n", "out")
    with pytest.raises(TypeError, match="no field 'colour'"):
        evolve(step, colour="red")

    @dataclasses.dataclass(frozen=True)
    class Plain:
        value: int = 0

    with pytest.raises(TypeError, match="not a frozen_record"):
        evolve(Plain(), value=1)
