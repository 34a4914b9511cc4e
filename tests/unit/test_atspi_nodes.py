"""The accessibility tree as UI nodes: what a step can act on while a modal dialog or a menu is open, and
what a scrolled panel hides."""

from pixelpilot.agent.locate import match_nodes
from pixelpilot.drivers.atspi import (
    ST_ACTIVE,
    ST_EDITABLE,
    ST_FOCUSED,
    ST_MODAL,
    ST_SHOWING,
    AtspiNode,
    ui_nodes,
)

SCREEN = {"left": 0, "top": 0, "width": 1280, "height": 800}
SHOWN = 1 << ST_SHOWING


def node(path: str, role: str, name: str, window: str, extents, states: int = SHOWN) -> AtspiNode:
    return AtspiNode(":1.2", path, role, name, states, extents, window=(":1.2", window))


def test_a_modal_dialog_hides_the_windows_behind_it():
    main = node("/w1", "frame", "Editor", "/w1", (0, 0, 700, 500))
    toolbar_save = node("/b1", "push button", "Save", "/w1", (72, 26, 33, 32))
    dialog = node("/w2", "dialog", "Save As", "/w2", (24, 0, 630, 420), SHOWN | 1 << ST_MODAL)
    dialog_save = node("/b2", "push button", "Save", "/w2", (564, 351, 80, 25), SHOWN | 1 << ST_FOCUSED)
    tree = [main, toolbar_save, dialog, dialog_save]
    names = [(n.role, n.name, n.box.x) for n in ui_nodes(tree, SCREEN, 1.0)]
    assert names == [("dialog", "Save As", 24), ("button", "Save", 564)]
    # without the dialog both the window's buttons are there
    assert [n.name for n in ui_nodes([main, toolbar_save], SCREEN, 1.0)] == ["Editor", "Save"]


def test_the_active_dialog_wins_a_name_its_window_has_when_no_modal_state_is_reported():
    """Qt's AT-SPI bridge reports FeatherPad's Save As dialog (opened with exec()) without its modal
    state now and then: the dialog is still the active window, drawn over the editor, so ``click:
    Save`` is its Save — and the editor's elements stay there for a dialog that is not modal."""
    main = node("/w1", "frame", "Editor", "/w1", (0, 0, 700, 500))
    toolbar_save = node("/b1", "push button", "Save", "/w1", (72, 26, 33, 32))
    text = node("/t1", "text", "", "/w1", (0, 60, 700, 400), SHOWN | 1 << ST_EDITABLE)
    dialog = node("/w2", "file chooser", "Save As", "/w2", (24, 0, 630, 420), SHOWN | 1 << ST_ACTIVE)
    dialog_save = node("/b2", "push button", "Save", "/w2", (564, 351, 80, 25))
    nodes = ui_nodes([main, toolbar_save, text, dialog, dialog_save], SCREEN, 1.0)
    assert [(n.name, n.layer) for n in nodes if n.name == "Save"] == [("Save", 0), ("Save", 1)]
    (hit,) = match_nodes(nodes, "Save", act=True)
    assert hit.box.x == 564
    assert any(n.role == "textbox" for n in nodes)  # not modal: the editor is still there
    # the editor active again (the dialog behind it or gone): two Saves on one layer, as before
    dialog.states, main.states = SHOWN, SHOWN | 1 << ST_ACTIVE
    nodes = ui_nodes([main, toolbar_save, text, dialog, dialog_save], SCREEN, 1.0)
    assert len(match_nodes(nodes, "Save", act=True)) == 2


def test_boxes_are_on_the_captured_region_and_scaled():
    button = node("/b", "push button", "OK", "/w", (300, 200, 80, 30))
    (n,) = ui_nodes([button], {"left": 100, "top": 50, "width": 800, "height": 600}, 2.0)
    assert n.box.as_list() == [400.0, 300.0, 160.0, 60.0] and n.interactive


def test_a_scrolled_panel_hides_what_lies_outside_it_and_cuts_what_it_shows_in_part():
    """Qt Linguist's editor panel (70 px tall) holds a caption and a field further down: AT-SPI gives
    every widget its whole box; what the panel does not show is not on the screen."""
    win = node("/w", "frame", "Linguist", "/w", (0, 0, 1000, 770))
    panel = node("/p", "filler", "", "/w", (262, 538, 738, 70))
    caption = node("/c", "label", "Translation to Deutsch", "/w", (270, 600, 708, 14))
    field = node("/f", "text", "", "/w", (270, 620, 708, 24), SHOWN | 1 << ST_EDITABLE)
    win.children = [(":1.2", "/p")]
    panel.children = [(":1.2", "/c"), (":1.2", "/f")]
    tree = [win, panel, caption, field]
    shown = {n.role: n.box.as_list() for n in ui_nodes(tree, SCREEN, 1.0)}
    assert shown == {"window": [0.0, 0.0, 1000.0, 770.0], "text": [270.0, 600.0, 708.0, 8.0]}
    # beyond the view (what scrolling can bring in): whole boxes, the field too
    beyond = {n.role: n.box.as_list() for n in ui_nodes(tree, SCREEN, 1.0, beyond=True)}
    assert beyond["textbox"] == [270.0, 620.0, 708.0, 24.0] and beyond["text"][3] == 14.0


def test_an_open_menu_is_not_cut_by_its_title_and_its_items_win_a_click():
    """A GTK menu's items are children of its title in the menu bar (a 30 px box); Qt's popup menu is a
    child of the menu bar's item. Either way the items show, on the layer above the window."""
    win = node("/w", "frame", "Editor", "/w", (0, 0, 700, 500))
    bar = node("/bar", "menu bar", "", "/w", (0, 0, 700, 20))
    title = node("/file", "menu", "File", "/w", (0, 0, 30, 20))
    item = node("/save", "menu item", "Save", "/w", (0, 60, 200, 22))
    toolbar_save = node("/tb", "push button", "Save", "/w", (40, 24, 32, 32))
    win.children = [(":1.2", "/bar"), (":1.2", "/tb")]
    bar.children = [(":1.2", "/file")]
    title.children = [(":1.2", "/save")]
    nodes = ui_nodes([win, bar, title, item, toolbar_save], SCREEN, 1.0)
    save = [n for n in nodes if n.name == "Save"]
    assert [(n.role, n.layer) for n in save] == [("menuitem", 2), ("button", 0)]
    (hit,) = match_nodes(nodes, "Save", act=True)
    assert hit.role == "menuitem"
    assert len(match_nodes(nodes, "Save")) == 2  # `see: Save` still counts both
