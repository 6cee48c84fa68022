"""`json_text`: the indented JSON of reports, character for character what `json.dumps` writes."""

from __future__ import annotations

import enum
import json
import random
from typing import Any

import pytest

from orchestrator.report.json_text import indented, indented_chunks


class Level(enum.IntEnum):
    HIGH = 3


class Tag(str):
    pass


EDGES: list[Any] = [
    {},
    [],
    (),
    "",
    None,
    True,
    0,
    -(2**70),
    0.1,
    -0.0,
    1e300,
    float("nan"),
    float("inf"),
    -float("inf"),
    {"a": {}, "b": [], "c": [[]], "d": [{}], "e": ({"f": ()},)},
    {"ctl": '\x00\x1b]0;t\x07\n\t"\\', "u": "caf\u00e9 \u2603 \U0001f600 \ud800"},
    {7: "int key", None: "null key", True: "bool key", 2.5: "float key"},
    {"enum": Level.HIGH, "tag": Tag("x"), "nested": [Level.HIGH, Tag("y")]},
    [1, [2, [3, [4, {"deep": [None, False]}]]]],
]


@pytest.mark.parametrize("value", EDGES, ids=range(len(EDGES)))
def test_edge_values_read_as_json_dumps_writes_them(value: Any) -> None:
    assert indented(value) == json.dumps(value, indent=2)


def _random_value(rng: random.Random, depth: int) -> Any:
    choice = rng.randrange(10 if depth < 4 else 6)
    if choice == 0:
        return rng.choice([None, True, False])
    if choice == 1:
        return rng.randrange(-(10**6), 10**6)
    if choice == 2:
        return rng.choice([rng.uniform(-1e6, 1e6), float("nan"), 1e-7, 0.0])
    if choice < 6:
        return "".join(rng.choice('ab "\\\n\x01\u00e9\u2603') for _ in range(rng.randrange(6)))
    if choice < 8:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {
        rng.choice(["k", "key", "é", 'q"', str(i)]) + str(i): _random_value(rng, depth + 1)
        for i in range(rng.randrange(4))
    }


def test_random_documents_read_as_json_dumps_writes_them() -> None:
    rng = random.Random(7)
    for _ in range(500):
        document = {"run": _random_value(rng, 1), "devices": _random_value(rng, 1)}
        if rng.random() < 0.5:
            document["devices"] = [_random_value(rng, 2) for _ in range(rng.randrange(5))]
        expected = json.dumps(document, indent=2)
        assert indented(document) == expected
        assert "".join(indented_chunks(document)) == expected


def test_a_top_level_list_comes_a_piece_per_item() -> None:
    document = {"run": {"id": 1}, "devices": [{"uuid": str(i)} for i in range(50)], "x": []}
    chunks = list(indented_chunks(document))
    assert "".join(chunks) == json.dumps(document, indent=2)
    assert sum('"uuid"' in chunk for chunk in chunks) == 50
    assert all(chunk.count('"uuid"') <= 1 for chunk in chunks)


@pytest.mark.parametrize("document", [{}, {1: "x"}, {"a": 1}])
def test_documents_that_are_not_plain_dicts_of_lists_still_match(document: Any) -> None:
    assert "".join(indented_chunks(document)) == json.dumps(document, indent=2)


def test_an_unknown_type_fails_as_json_dumps_fails() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        indented({"when": object()})
