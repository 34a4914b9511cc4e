"""The browser driver against real Chromium: input, UI tree, hit testing, HiDPI, OCR fallback."""

from __future__ import annotations

import pytest

from pixelpilot.agent import Agent, LocateError
from pixelpilot.drivers import BrowserDriver
from pixelpilot.tools import actions as A

pytestmark = pytest.mark.browser

PAGE = """data:text/html,<html><body style="font-family:sans-serif;margin:20px">
<label for=name>Name</label> <input id=name>
<button id=b onclick="document.getElementById('out').textContent='clicked '+document.getElementById('name').value">Go</button>
<p id=out>nothing yet</p>
<div style="position:relative;height:60px">
  <button id=under style="position:absolute;left:0;top:0;width:120px;height:40px" onclick="document.getElementById('out').textContent='under'">Under</button>
  <div style="position:absolute;left:0;top:0;width:80px;height:40px;background:%23ccc"></div>
  <button id=hidden style="position:absolute;left:200px;top:0;width:100px;height:40px" onclick="document.getElementById('out').textContent='hidden'">Hidden</button>
  <div style="position:absolute;left:190px;top:-5px;width:130px;height:55px;background:%23eee"></div>
</div>
<canvas id=c width=300 height=60></canvas>
<script>
 const c=document.getElementById('c'); const x=c.getContext('2d'); x.font='28px sans-serif'; x.fillText('Canvas Save',10,40);
 c.addEventListener('click', e => { if (e.offsetX < 170) document.getElementById('out').textContent='canvas ' + Math.round(e.offsetX); });
 document.addEventListener('keydown', e => { if (e.ctrlKey && e.key==='k') document.getElementById('out').textContent='combo ctrl+k'; });
</script></body></html>"""


def out_text(d: BrowserDriver) -> str:
    return d.page.text_content("#out") or ""


def test_type_click_and_tree(browser):
    browser.goto(PAGE)
    agent = Agent(browser)
    agent.type("Zoë ✓", into="Name")  # non-ASCII goes through the keyboard as text
    agent.click("Go")
    assert out_text(browser) == "clicked Zoë ✓"
    screen = browser.observe()
    names = {n.name for n in screen.tree}
    assert {"Name", "Go", "clicked Zoë ✓"} <= names
    field = next(n for n in screen.tree if n.role == "textbox")
    assert field.value == "Zoë ✓"


def test_keyboard_focus_names_the_focused_field_and_keeps_the_trees_refs(browser):
    browser.goto(PAGE)
    assert browser.keyboard_focus() is None  # nothing focused: the page's body does not count
    tree = browser.ui_tree()
    name = next(n for n in tree if n.role == "textbox")
    browser.perform(A.Click(at=name.box.center))
    focused = browser.keyboard_focus()
    assert focused is not None and (focused.role, focused.name, focused.box) == ("textbox", "Name", name.box)
    go = next(n for n in tree if n.name == "Go")
    assert browser.hit_point(go) is not None  # a ref from the tree read before the focus query
    assert [n.name for n in browser.ui_tree() if n.focused] == ["Name"]


def test_typing_into_a_field_reads_it_back_and_says_what_it_holds(browser):
    """The field with keyboard focus is read back after typing: a field that rewrites its input
    fails the step with what it holds."""
    from pixelpilot.agent import StepFailed

    browser.goto(
        "data:text/html,<label for=c>Code</label> <input id=c oninput='this.value=this.value.toUpperCase()'>"
        " <label for=n>Note</label> <input id=n>"
    )
    agent = Agent(browser)
    agent.type("note", into="Note")
    assert browser.page.input_value("#n") == "note"
    with pytest.raises(StepFailed, match="holds 'ABC' instead of 'abc'"):
        agent.type("abc", into="Code")
    assert agent.steps[-1].outcome == "failed" and "verify" in agent.steps[-1].timings


def test_hit_testing_clicks_the_visible_part_and_refuses_covered_elements(browser):
    browser.goto(PAGE)
    agent = Agent(browser)
    rec = agent.click("Under")  # its left 80 px are covered: the click must land right of the cover
    assert out_text(browser) == "under"
    assert rec.point[0] > 80
    with pytest.raises(LocateError, match=r"'Hidden' \(button \"Hidden\" at .*\) is covered by div:"):
        agent.click("Hidden")  # the message names both: the target and what is on top of it
    assert out_text(browser) == "under"


def test_text_drawn_on_a_canvas_is_found_by_ocr(browser):
    browser.goto(PAGE)
    agent = Agent(browser)
    rec = agent.click("Canvas Save")
    assert rec.locator == "ocr"
    assert out_text(browser).startswith("canvas ")


def test_key_combo_and_scroll(browser):
    tall = "data:text/html,<body style='height:5000px'><p id=out>-</p><script>document.addEventListener('keydown', e => { if (e.ctrlKey && e.shiftKey && e.key.toLowerCase()==='k') document.getElementById('out').textContent='combo'; });</script></body>"
    browser.goto(tall)
    agent = Agent(browser)
    agent.key("ctrl+shift+k")
    assert out_text(browser) == "combo"
    agent.scroll("down", 600)
    assert browser.page.evaluate("window.scrollY") == pytest.approx(600, abs=2)
    agent.scroll("up", 200)
    assert browser.page.evaluate("window.scrollY") == pytest.approx(400, abs=2)


def test_hidpi_screenshot_and_clicks_use_the_scale(chromium):
    with BrowserDriver.launch(viewport=(640, 400), device_scale_factor=2) as d:
        d.goto(PAGE)
        screen = d.observe()
        assert (screen.width, screen.height, screen.scale) == (1280, 800, 2)
        assert screen.image.size == (1280, 800)
        go = next(n for n in screen.tree if n.name == "Go")
        css = d.page.locator("#b").bounding_box()
        assert go.box.x == pytest.approx(css["x"] * 2, abs=1) and go.box.width == pytest.approx(
            css["width"] * 2, abs=1
        )
        d.perform(A.Click(at=go.box.center))  # screenshot pixels in, CSS pixels to the page
        assert out_text(d).startswith("clicked")


def test_select_a_dropdown_option(browser, demo_url):
    browser.goto(demo_url)
    agent = Agent(browser)
    agent.type("alice", into="Username")
    agent.type("wonderland", into="Password")
    agent.click("Sign in")
    agent.click("New order")
    agent.select("Cherries", field="Product")
    assert browser.page.evaluate("document.getElementById('product').selectedOptions[0].text") == "Cherries"
    agent.select("France")  # the only dropdown offering it
    assert browser.page.evaluate("document.getElementById('country').value") == "France"
    with pytest.raises(LocateError, match="has no option 'Durian'"):
        agent.select("Durian", field="Product")


CLOCK = """data:text/html,<html><body style="font-family:sans-serif;margin:20px">
<p>Time: <span id=clock>0</span></p>
<p id=dead>Just words</p>
<button onclick="document.getElementById('out').textContent='saved'">Save</button>
<p id=out>-</p>
<script>let n = 0; setInterval(() => { document.getElementById('clock').textContent = ++n; }, 150);</script>
</body></html>"""


def test_a_ticking_clock_does_not_make_a_dead_click_look_effective(browser):
    """A page with a clock changes every 150 ms on its own: a click on plain text changes nothing and
    is recorded so (and tried once more), while a click that does something still reads as changed."""
    import time

    browser.goto(CLOCK)
    time.sleep(1.5)  # the clock ticks on its own a few times first
    agent = Agent(browser)
    dead = agent.click("Just words")
    assert dead.effect == "none" and dead.retried
    live = agent.click("Save")
    assert live.effect == "changed" and not live.retried
    assert out_text(browser) == "saved"
    agent.expect({"text": "/^\\d+$/", "right_of": "Time:"}, state="visible")  # the clock is still read


ICONS = """data:text/html,<html><body style="font-family:sans-serif;margin:20px">
<div class=toolbar>
  <span id=trash title="Move to trash" style="display:inline-block;width:24px;height:24px;background:%23c33"></span>
  <img id=star alt="Star this message" width=24 height=24 src="data:image/gif;base64,R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==">
  <span id=more aria-label="More actions" style="display:inline-block;width:24px;height:24px;background:%2333c"></span>
</div>
<p id=out>-</p>
<script>
 for (const id of ['trash', 'star', 'more'])
   document.getElementById(id).addEventListener('click', () => { document.getElementById('out').textContent = id; });
</script></body></html>"""


def test_icons_without_text_are_found_by_title_alt_and_aria_label(browser):
    """Icon-only controls with their listeners attached in script (no role, no onclick attribute):
    their tooltip, alternative text or aria-label is their name."""
    browser.goto(ICONS)
    agent = Agent(browser)
    agent.click({"title": "Move to trash"})
    assert out_text(browser) == "trash"
    agent.click({"alt": "Star this message"})
    assert out_text(browser) == "star"
    agent.click("More actions")  # the short form reads names too
    assert out_text(browser) == "more"


CAPTIONS = """data:text/html,<html><body style="font-family:sans-serif;margin:20px">
<div class=entry><input id=a><div class=caption>Genre</div></div>
<div class=entry><input id=b><div class=caption>Year</div></div>
<table><tr><th>Director</th><td><input id=c></td></tr></table>
</body></html>"""


def test_a_field_is_named_by_the_caption_it_shares_a_container_with(browser):
    """No <label>, no aria-label: each field sits in a small container with its caption — under it, or in
    the same table row. The caption under the first field must not name the field below it."""
    browser.goto(CAPTIONS)
    agent = Agent(browser)
    agent.type("satire", into="Genre")
    agent.type("2017", into="Year")
    agent.type("Mejia", into="Director")
    values = [browser.page.input_value(f"#{i}") for i in "abc"]
    assert values == ["satire", "2017", "Mejia"]
