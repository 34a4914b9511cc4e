"""The accessibility tree as UI nodes: what a step can act on while a modal dialog is open."""

from pixelpilot.drivers.atspi import ST_FOCUSED, ST_MODAL, ST_SHOWING, AtspiNode, ui_nodes

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


def test_boxes_are_on_the_captured_region_and_scaled():
    button = node("/b", "push button", "OK", "/w", (300, 200, 80, 30))
    (n,) = ui_nodes([button], {"left": 100, "top": 50, "width": 800, "height": 600}, 2.0)
    assert n.box.as_list() == [400.0, 300.0, 160.0, 60.0] and n.interactive
