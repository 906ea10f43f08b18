"""Field matching: dotted paths, the `|modifier` operators, any-of lists and parse-time checks."""

from __future__ import annotations

import re
from typing import Any

import pytest

from responder.correlation.match import MISSING, Condition, all_hold, get_path

DOC: dict[str, Any] = {
    "id": "e-1",
    "source": "unit",
    "type": "secret.leaked",
    "severity": "high",
    "title": "AWS access key committed to ml-platform/serving-config",
    "resource": {"kind": "api_key", "id": "AKIA123", "name": "ci"},
    "actor": {"ip": "203.0.113.7", "id": None},
    "attributes": {
        "cvss": 9.8,
        "count": 3,
        "port": "8080",
        "flag": True,
        "tags": ["prod", "pci", 7],
        "nested": {"depth": {"value": 1}},
        "zero": 0,
    },
    "labels": {"app.kubernetes.io/name": "fraud-scorer", "env": "prod"},
}


def holds(key: str, value: Any, doc: dict[str, Any] = DOC) -> bool:
    return Condition.parse(key, value).holds(doc)


# --- paths --------------------------------------------------------------------------------------


def test_get_path_walks_nested_mappings() -> None:
    assert get_path(DOC, "resource.kind") == "api_key"
    assert get_path(DOC, "attributes.nested.depth.value") == 1
    assert get_path(DOC, "type") == "secret.leaked"


def test_get_path_missing_is_the_missing_marker_not_none() -> None:
    assert get_path(DOC, "resource.version") is MISSING
    assert get_path(DOC, "nope.deeper") is MISSING
    # descending into a scalar or a list is missing, not an error
    assert get_path(DOC, "type.deeper") is MISSING
    assert get_path(DOC, "attributes.tags.0") is MISSING
    # a present null is not missing
    assert get_path(DOC, "actor.id") is None


def test_get_path_label_keys_that_contain_dots() -> None:
    assert get_path(DOC, "labels.app.kubernetes.io/name") == "fraud-scorer"
    assert holds("labels.app.kubernetes.io/name", "fraud-scorer")
    assert not holds("labels.app.kubernetes.io/name", "other")
    assert not holds("labels.app.kubernetes", "fraud-scorer")


def test_get_path_dotted_key_below_a_nested_one() -> None:
    doc = {"attributes": {"model": {"hf.co/repo": "bert"}}}
    assert get_path(doc, "attributes.model.hf.co/repo") == "bert"
    assert get_path({"a.b": {"c": 1}}, "a.b.c") == 1


def test_get_path_takes_a_pre_split_tuple_too() -> None:
    assert get_path(DOC, ("resource", "id")) == "AKIA123"
    assert get_path(DOC, ("labels", "app", "kubernetes", "io/name")) == "fraud-scorer"


# --- equality and any-of ------------------------------------------------------------------------


def test_plain_value_is_equality() -> None:
    assert holds("type", "secret.leaked")
    assert not holds("type", "secret")
    assert not holds("type", "SECRET.LEAKED")


def test_list_value_means_any_of() -> None:
    assert holds("type", ["key.used", "secret.leaked"])
    assert not holds("type", ["key.used", "model.drift"])
    assert holds("attributes.cvss|gte", [10, 9.5])
    assert not holds("attributes.cvss|gte", [10, 11])
    assert holds("resource.id|startswith", ["ASIA", "AKIA"])


def test_explicit_eq_modifier() -> None:
    assert holds("resource.kind|eq", "api_key")
    assert not holds("resource.kind|eq", "model")


def test_equality_is_type_strict_except_between_numbers() -> None:
    assert holds("attributes.count", 3)
    assert holds("attributes.count", 3.0)  # int and float are both numbers
    assert holds("attributes.cvss", 9.8)
    assert not holds("attributes.port", 8080)  # "8080" is a string
    assert holds("attributes.port", "8080")
    assert not holds("attributes.count", "3")
    assert holds("attributes.flag", True)
    assert not holds("attributes.flag", 1)  # a bool is not the number 1
    assert not holds("attributes.zero", False)  # nor is 0 false


def test_equality_against_null() -> None:
    assert holds("actor.id", None)
    assert not holds("actor.ip", None)
    assert not holds("actor.missing", None)  # missing is not null


def test_all_hold_is_and() -> None:
    conditions = (
        Condition.parse("type", "secret.leaked"),
        Condition.parse("resource.kind", "api_key"),
    )
    assert all_hold(conditions, DOC)
    assert not all_hold((*conditions, Condition.parse("labels.env", "dev")), DOC)


# --- modifiers ----------------------------------------------------------------------------------


def test_contains_on_strings_is_substring() -> None:
    assert holds("title|contains", "serving-config")
    assert not holds("title|contains", "Serving-Config")  # case-sensitive
    assert holds("title|contains", ["nothing", "access key"])


def test_contains_on_lists_is_membership() -> None:
    assert holds("attributes.tags|contains", "pci")
    assert holds("attributes.tags|contains", 7)
    assert not holds("attributes.tags|contains", "pc")  # no substring inside items
    assert not holds("attributes.tags|contains", "7")


def test_contains_on_other_types_is_false() -> None:
    assert not holds("attributes.count|contains", 3)
    assert not holds("attributes.nested|contains", "depth")


def test_startswith_and_endswith() -> None:
    assert holds("resource.id|startswith", "AKIA")
    assert not holds("resource.id|startswith", "123")
    assert holds("resource.id|endswith", "123")
    assert not holds("resource.id|endswith", "AKIA")
    assert not holds("attributes.count|startswith", "3")  # not a string


def test_re_searches_anywhere_unless_anchored() -> None:
    assert holds("resource.id|re", r"\d{3}")
    assert holds("resource.id|re", r"^AKIA[0-9]+$")
    assert not holds("resource.id|re", r"^\d")
    assert holds("resource.id|re", [r"^zzz", r"^AK"])
    assert not holds("attributes.count|re", r"3")  # not a string


@pytest.mark.parametrize(
    ("modifier", "bound", "expected"),
    [
        ("gt", 9.8, False),
        ("gt", 9.7, True),
        ("gte", 9.8, True),
        ("gte", 9.9, False),
        ("lt", 9.8, False),
        ("lt", 10, True),
        ("lte", 9.8, True),
        ("lte", 9, False),
    ],
)
def test_numeric_comparisons(modifier: str, bound: float, expected: bool) -> None:
    assert holds(f"attributes.cvss|{modifier}", bound) is expected


def test_numeric_comparison_of_int_with_float() -> None:
    assert holds("attributes.count|gte", 3.0)
    assert holds("attributes.count|gt", 2.5)
    assert not holds("attributes.count|lt", 3.0)


def test_numeric_comparison_with_non_numbers_is_false() -> None:
    assert not holds("attributes.port|gt", 80)  # "8080" is a string, never compared as number
    assert not holds("attributes.port|lt", 100000)
    assert not holds("attributes.tags|gte", 0)
    assert not holds("attributes.nested|lte", 10)
    assert not holds("actor.id|gte", 0)  # null


def test_bool_is_not_a_number_in_comparisons() -> None:
    assert not holds("attributes.flag|gt", 0)
    assert not holds("attributes.flag|gte", 1)
    assert not holds("attributes.flag|lte", 1)


def test_missing_path_matches_nothing() -> None:
    for key, value in [
        ("attributes.absent", "x"),
        ("attributes.absent|contains", "x"),
        ("attributes.absent|startswith", "x"),
        ("attributes.absent|endswith", "x"),
        ("attributes.absent|re", ".*"),
        ("attributes.absent|gt", -1),
        ("attributes.absent|gte", -1),
        ("attributes.absent|lt", 1),
        ("attributes.absent|lte", 1),
    ]:
        assert not holds(key, value), key


def test_exists_true_and_false() -> None:
    assert holds("actor.ip|exists", True)
    assert not holds("actor.ip|exists", False)
    assert holds("actor.user|exists", False)
    assert not holds("actor.user|exists", True)
    # a falsy value exists
    assert holds("attributes.zero|exists", True)
    # a null does not
    assert holds("actor.id|exists", False)
    assert not holds("actor.id|exists", True)


def test_exists_on_a_dotted_label_key() -> None:
    assert holds("labels.app.kubernetes.io/name|exists", True)
    assert holds("labels.app.kubernetes.io/version|exists", False)


# --- parse-time errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("type|equals", "x", "unknown modifier 'equals'"),
        ("type|CONTAINS", "x", "unknown modifier"),
        ("", "x", "invalid field path"),
        ("|eq", "x", "invalid field path"),
        ("resource..id", "x", "invalid field path"),
        ("resource.id.", "x", "invalid field path"),
        ("title|re", "(unclosed", "invalid regular expression"),
        ("title|re", "[z-a]", "invalid regular expression"),
        ("title|re", ["ok", "*bad"], "invalid regular expression"),
        ("attributes.cvss|gt", "9", "gt needs a number"),
        ("attributes.cvss|gte", True, "gte needs a number"),
        ("attributes.cvss|lt", None, "lt needs a number"),
        ("attributes.cvss|lte", [1, "2"], "lte needs a number"),
        ("title|startswith", 5, "startswith needs a string"),
        ("title|endswith", None, "endswith needs a string"),
        ("title|re", 5, "re needs a string"),
        ("actor.ip|exists", "yes", "exists takes true or false"),
        ("actor.ip|exists", 1, "exists takes true or false"),
        ("type", {"a": 1}, "needs a scalar value"),
        ("type", [["a"]], "needs a scalar value"),
        ("title|contains", {"a": 1}, "needs a scalar value"),
        ("type", [], "empty list"),
    ],
)
def test_invalid_conditions_raise_value_error_at_parse(key: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Condition.parse(key, value)


def test_parse_keeps_path_modifier_and_values() -> None:
    c = Condition.parse("labels.app.kubernetes.io/name|startswith", ["fraud", "risk"])
    assert (c.path, c.modifier, c.values) == (
        "labels.app.kubernetes.io/name",
        "startswith",
        ("fraud", "risk"),
    )
    assert Condition.parse("type", "a.b").modifier == "eq"
