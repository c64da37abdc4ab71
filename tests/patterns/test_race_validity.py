"""A race's validity predicate named in a team file: built at load time, applied in the race."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pattern_helpers import answering

from mesh import ConfigError
from mesh.control._patterns import parse_pattern
from mesh.control._team import load_team
from protocols.messenger import InMemoryMessenger
from protocols.patterns import NoValidAnswerError, Reply, validity_predicate

EXAMPLES = Path(__file__).parents[2] / "examples"


def says_yes(reply: Reply) -> bool:
    """An importable predicate, as a user's package would have one."""
    return reply.text == "yes"


def _race_file(tmp_path: Path, valid: str) -> Path:
    path = tmp_path / "race.yaml"
    text = (EXAMPLES / "race.yaml").read_text()
    path.write_text(text.replace("  verifier: checker\n", f"  valid: {valid}\n"))
    return path


@pytest.mark.parametrize(
    ("valid", "yes", "no"),
    [
        ("non_empty", "x", " \n"),
        ({"matches": r"^\d+$"}, "42", "42 apples"),
        ({"parses_as": "int"}, " 42 ", "4.2"),
        ({"parses_as": "float"}, "4.2", "four"),
        ({"parses_as": "bool"}, "True", "yes"),
        ({"parses_as": "json"}, '{"a": 1}', "{a: 1}"),
        (f"{__name__}:says_yes", "yes", "no"),
    ],
    ids=["non_empty", "matches", "int", "float", "bool", "json", "import"],
)
def test_each_predicate_tells_a_valid_answer_from_an_invalid_one(
    valid: Any, yes: str, no: str
) -> None:
    check = validity_predicate(valid)
    assert check(Reply(text=yes))
    assert not check(Reply(text=no))


def test_a_team_file_names_a_predicate_and_the_race_applies_it(tmp_path: Path) -> None:
    spec = load_team(_race_file(tmp_path, "{parses_as: int}"))
    assert spec.pattern is not None
    assert spec.pattern.valid == {"parses_as": "int"}  # type: ignore[union-attr]


async def test_the_first_answer_the_predicate_passes_wins() -> None:
    net = InMemoryMessenger()
    net.register("words", answering(lambda r: "forty-two"))
    net.register("digits", answering(lambda r: "42"))
    race = parse_pattern({"name": "race", "racers": ["words", "digits"],
                          "valid": {"parses_as": "int"}})  # fmt: skip
    done = await race.run(net, "how many?")
    assert (done.answer, done.summary["winner"]) == ("42", "digits")
    assert "validity" in done.summary["lost"]["words"]
    strict = parse_pattern({"name": "race", "racers": ["words"], "valid": "non_empty"})
    net.register("blank", answering(lambda r: " "))
    with pytest.raises(NoValidAnswerError):
        await strict.model_copy(update={"racers": ["blank"]}).run(net, "anything?")


@pytest.mark.parametrize(
    ("valid", "says"),
    [
        ("nonempty", "pattern.race.valid: 'nonempty' is no built-in predicate"),
        ('{matches: "("}', "valid.matches: '(' is not a regular expression"),
        ("{parses_as: date}", "valid.parses_as: 'date' is none of int, float, bool, json"),
        ("{looks_like: int}", "valid: unknown key 'looks_like'"),
        ('"no_such_module:check"', "valid: 'no_such_module:check' cannot be imported"),
        ('"json:__name__"', "valid: 'json:__name__' is not callable"),
    ],
)
def test_a_bad_predicate_fails_at_load_naming_the_file_and_the_problem(
    tmp_path: Path, valid: str, says: str
) -> None:
    path = _race_file(tmp_path, valid)
    with pytest.raises(ConfigError) as caught:
        load_team(path)
    assert str(path) in caught.value.message
    assert says.split(": ", 1)[1] in caught.value.message
