"""Matching rules of the UI-tree and OCR locators."""

from pixelpilot.agent.locate import match_fields, match_nodes
from pixelpilot.drivers.base import Box, UINode
from pixelpilot.tools.ocr import OcrText, find_text


def node(ref, role, name, box, *, text="", interactive=None, **kw):
    return UINode(
        ref=str(ref),
        role=role,
        name=name,
        box=Box(*box),
        text=text,
        interactive=role not in ("text", "label") if interactive is None else interactive,
        **kw,
    )


def test_button_wins_over_its_own_span_and_list_item_loses_to_its_link():
    tree = [
        node(0, "button", "Sign in", (10, 10, 100, 30)),
        node(1, "text", "Sign in", (20, 15, 60, 20), text="Sign in"),
        node(2, "listitem", "Inbox", (0, 100, 300, 40), interactive=False),
        node(3, "link", "Inbox", (10, 105, 50, 20)),
    ]
    assert [n.ref for n in match_nodes(tree, "Sign in")] == ["0"]
    assert [n.ref for n in match_nodes(tree, "inbox")] == ["3"]


def test_label_points_at_its_input():
    tree = [
        node(0, "label", "I accept the terms", (40, 10, 150, 20), text="I accept the terms"),
        node(1, "checkbox", "I accept the terms", (10, 12, 16, 16)),
    ]
    assert [n.ref for n in match_nodes(tree, "I accept the terms")] == ["1"]


def test_exact_before_contains_and_whole_words_only():
    tree = [
        node(0, "button", "Save draft", (0, 0, 10, 10)),
        node(1, "button", "Save", (0, 20, 10, 10)),
        node(2, "button", "Unsaved", (0, 40, 10, 10)),
    ]
    assert [n.ref for n in match_nodes(tree, "save")] == ["1"]
    assert [n.ref for n in match_nodes(tree, "draft")] == ["0"]
    assert match_nodes(tree, "aved") == []


def test_fields_by_label_placeholder_or_neighbouring_text():
    tree = [
        node(0, "textbox", "Email", (100, 0, 200, 30)),
        node(1, "textbox", "", (100, 50, 200, 30), placeholder="Search…"),
        node(2, "text", "City", (10, 105, 60, 20), text="City"),
        node(3, "textbox", "", (100, 100, 200, 30)),
    ]
    assert [n.ref for n in match_fields(tree, "email")] == ["0"]
    assert [n.ref for n in match_fields(tree, "Search…")] == ["1"]
    assert [n.ref for n in match_fields(tree, "City")] == ["3"]


def test_ocr_matches_lines_then_word_runs():
    found = [
        OcrText("Home Orders Settings", (10, 10, 300, 20), kind="line"),
        OcrText("Home", (10, 10, 60, 20), kind="word"),
        OcrText("Orders", (80, 10, 80, 20), kind="word"),
        OcrText("Settings", (170, 10, 120, 20), kind="word"),
        OcrText("Sign in", (10, 50, 80, 20), kind="line"),
    ]
    assert [t.text for t in find_text(found, "sign in")] == ["Sign in"]
    run = find_text(found, "Orders Settings")
    assert len(run) == 1 and run[0].box == (80, 10, 210, 20)
    assert find_text(found, "Logout") == []


def test_role_targets_use_playwrights_syntax():
    tree = [
        node(0, "textbox", "", (0, 0, 10, 10)),
        node(1, "textbox", "Email", (0, 20, 10, 10)),
        node(2, "button", "Save", (0, 40, 10, 10)),
    ]
    assert [n.ref for n in match_nodes(tree, "role=textbox")] == ["0", "1"]
    assert [n.ref for n in match_nodes(tree, 'role=textbox[name="email"]')] == ["1"]
    assert [n.ref for n in match_nodes(tree, "role=button[name='Save']")] == ["2"]


def test_same_letter_case_breaks_a_tie():
    tree = [
        node(0, "text", "eget", (0, 0, 20, 10), text="eget"),
        node(1, "text", "Eget", (0, 30, 20, 10), text="Eget"),
    ]
    assert [n.ref for n in match_nodes(tree, "Eget")] == ["1"]
    assert [n.ref for n in match_nodes(tree, "EGET")] == ["0", "1"]  # neither has that case: still ambiguous


def test_nearly_equal_boxes_are_one_element():
    # a jQuery UI tab: <li role=tab> around <a>, boxes 1 px apart
    tree = [node(0, "tab", "Tab #2", (50, 57, 42, 24)), node(1, "presentation", "Tab #2", (51, 58, 40, 23))]
    assert len(match_nodes(tree, "Tab #2")) == 1


def test_a_target_to_act_on_is_the_button_not_the_heading_of_the_same_name():
    heading = node("0", "heading", "Sign in", (24, 24, 1232, 38), interactive=False)
    button = node("1", "button", "Sign in", (24, 157, 62, 21))
    tree = [heading, button]
    assert match_nodes(tree, "Sign in", act=True) == [button]  # click: Sign in
    assert match_nodes(tree, "Sign in") == [heading, button]  # see: Sign in — both show it
    text_only = [heading]
    assert match_nodes(text_only, "Sign in", act=True) == [heading]  # nothing interactive: the text
