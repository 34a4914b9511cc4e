"""The locator language on a UI tree: what each form finds, in what order, and what it says when it
finds nothing or too much."""

import re

import pytest

from pixelpilot.agent.errors import ConfigError, LocateError
from pixelpilot.agent.locate import Locator
from pixelpilot.agent.query import Query, resolve
from pixelpilot.drivers.base import Box, Screen, UINode


def node(ref, role, name, x, y, w, h, **kw):
    text = kw.pop("text", name if role == "text" else "")
    return UINode(ref=str(ref), role=role, name=name, box=Box(x, y, w, h), text=text, **kw)


# a page: its instruction names the target too; a table of people with a Delete button per row
TREE = [
    node(0, "text", "Delete the row of Bob", 0, 0, 300, 20),
    node(1, "table", "", 0, 40, 300, 80, test_id="people"),
    node(2, "row", "", 0, 40, 300, 30),
    node(3, "text", "Alice", 5, 45, 50, 20),
    node(4, "button", "Delete", 200, 45, 60, 20, interactive=True, title="Remove Alice"),
    node(5, "row", "", 0, 80, 300, 30),
    node(6, "text", "Bob", 5, 85, 50, 20),
    node(7, "button", "Delete", 200, 85, 60, 20, interactive=True, title="Remove Bob"),
    node(8, "text", "Name", 5, 150, 50, 20),
    node(9, "textbox", "", 100, 150, 100, 20, interactive=True, value="Zoë"),
    node(10, "checkbox", "Subscribe", 5, 180, 80, 20, interactive=True, checked=False, enabled=False),
    node(11, "img", "Company logo", 250, 150, 40, 40),
]


def refs(target, **kw):
    return [n.ref for n in resolve(Query.of(target), TREE, **kw)]


@pytest.mark.parametrize(
    ("target", "want"),
    [
        ({"role": "button", "name": "Delete", "inside": {"role": "row", "has_text": "Bob"}}, ["7"]),
        ({"text": "Delete", "has_text": "x"}, []),
        ({"role": "row", "has": {"text": "Alice"}}, ["2"]),
        ({"text": "Bob", "inside": {"test_id": "people"}}, ["6"]),  # not the instruction's "Bob"
        ({"text": "Delete", "right_of": "Bob"}, ["7", "4"]),  # nearest first
        ({"text": "Delete", "row": "Alice"}, ["4"]),
        ({"role": "textbox", "right_of": "Name"}, ["9"]),
        ({"text": "Delete", "below": "Alice"}, ["7"]),
        ({"text": "Delete", "above": "Bob"}, ["4"]),
        ({"text": "Alice", "left_of": {"text": "Delete", "nth": 1}}, ["3"]),
        ({"role": "img", "near": "Name", "distance": 220}, ["11"]),
        ({"role": "img", "near": "Name"}, []),  # 50 px by default
        ({"text": "/^(Alice|Bob)$/"}, ["3", "6"]),
        ({"text": "/^alice$/i"}, ["3"]),
        ({"text": "bob", "exact": True}, []),
        ({"text": "Bob", "exact": True}, ["6"]),
        ({"title": "Remove Bob"}, ["7"]),
        ({"alt": "Company logo"}, ["11"]),
        ({"role": "checkbox", "name": "subscribe"}, ["10"]),
        ('role=button[name="Delete"]', ["4", "7"]),
    ],
)
def test_locator_forms(target, want):
    assert refs(target, act=True) == want


def test_nth_first_last_and_the_nearest_for_a_relation():
    loc = Locator(use_ocr=False)
    screen = Screen(b"", 400, 300, tree=TREE)
    assert loc.text(screen, {"text": "Delete", "last": True}).node.ref == "7"
    assert loc.text(screen, {"text": "Delete", "nth": 1}).node.ref == "4"
    assert loc.text(screen, {"text": "Delete", "right_of": "Alice"}).node.ref == "4"  # nearest wins
    with pytest.raises(LocateError) as info:
        loc.text(screen, {"role": "button", "name": "Delete"})
    assert info.value.kind == "ambiguous"
    # every match with its box and the filter that picks it
    assert info.value.candidates == [
        'button "Delete" at (200,45 60x20)  → nth: 1',
        'button "Delete" at (200,85 60x20)  → nth: 2',
    ]


def test_not_found_names_the_few_nearest_texts_in_the_scope_not_the_page():
    loc = Locator(use_ocr=False)
    screen = Screen(b"", 400, 300, tree=TREE)
    with pytest.raises(LocateError) as info:
        loc.text(screen, {"text": "Bobby", "inside": {"test_id": "people"}})
    assert "nothing matches" in str(info.value)
    assert info.value.candidates == ["'Bob'"]  # in the table; not the instruction "Delete the row of Bob"


def test_a_role_query_never_falls_back_to_ocr():
    calls = []

    class NoOcr:
        def read(self, image):
            calls.append(image)
            return []

    loc = Locator(ocr_engine=lambda: NoOcr())
    screen = Screen(b"", 400, 300, tree=None)
    with pytest.raises(LocateError) as info:
        loc.text(screen, {"role": "button", "name": "Save"})
    assert calls == [] and "need a UI tree" in str(info.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"txet": "Save"}, "unknown key 'txet' (did you mean 'text'?)"),
        ({"text": "Save", "nth": 0}, "nth: 1 for the first match"),
        ({"inside": {"role": "row"}}, None),  # anything inside a row: allowed
        ({"nth": 2}, "say what to find"),
        ({"text": "/[/"}, "bad regular expression"),
        ({"text": "Save", "first": False}, "write first: true"),
        ("", "an empty target"),
    ],
)
def test_bad_locators_say_what_is_wrong(value, message):
    if message is None:
        Query.of(value)
        return
    with pytest.raises(ConfigError, match=re.escape(message)):
        q = Query.of(value)
        resolve(q, TREE)


def test_describe_reads_like_playwright():
    q = Query.of({"role": "button", "name": "Delete", "inside": {"role": "row", "has_text": "Bob"}, "nth": 1})
    assert q.describe() == 'role=button[name="Delete"] inside (role=row has "Bob") nth=1'
    assert Query.of("Save").describe() == "Save"


def test_android_resource_ids_match_by_their_name():
    tree = [node(0, "button", "", 0, 0, 10, 10, test_id="com.example:id/save", interactive=True)]
    assert [n.ref for n in resolve(Query(test_id="save"), tree)] == ["0"]
    assert [n.ref for n in resolve(Query(test_id="com.example:id/save"), tree)] == ["0"]
