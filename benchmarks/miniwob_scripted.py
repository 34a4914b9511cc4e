"""MiniWoB++ tasks solved with pixelpilot's documented API only: the locators of README "Locators" (text,
role, label, placeholder, CSS, scopes, layout relations, nth), the reads (text, value, count, all) and the
steps (click, type, select, set_checked, wait_for, expect) — no ui_tree(), no pixel arithmetic, no
polling loops of their own.

Each task's solution reads the episode's instruction (the utterance MiniWoB shows on screen) and acts
through the Agent. The episode harness (seeding, start, reward) follows MiniWoB's own Selenium protocol
through the page's JavaScript; the solutions never touch the DOM themselves.

    python benchmarks/miniwob_scripted.py --seeds 10 --out benchmarks/results/miniwob_scripted.md
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import TimeoutError as PlaywrightTimeout

from pixelpilot.agent import Agent, PixelPilotError
from pixelpilot.agent.locate import Locator
from pixelpilot.drivers import BrowserDriver

Solution = Callable[[Agent, str], None]


def quoted(u: str) -> str:
    m = re.search(r'"([^"]*)"', u)
    if not m:
        raise ValueError(f"no quoted text in {u!r}")
    return m.group(1)


def click_button_word(agent: Agent, u: str) -> None:
    agent.click(re.search(r"button (\w+)", u).group(1))


def click_sequence(agent: Agent, u: str) -> None:
    first, second = re.findall(r"button (\w+)", u)
    agent.click(first)
    agent.click(second)


def click_quoted(agent: Agent, u: str) -> None:
    agent.click(quoted(u))


def click_dialog(agent: Agent, u: str) -> None:
    agent.click("Close")


def click_dialog_2(agent: Agent, u: str) -> None:
    want = quoted(u)
    agent.click("Close" if want == "x" else want)


def click_option(agent: Agent, u: str) -> None:
    agent.click(re.match(r"Select (.*) and click Submit\.", u).group(1))
    agent.click("Submit")


def click_checkboxes(agent: Agent, u: str) -> None:
    names = re.match(r"Select (.*) and click Submit\.", u).group(1)
    if names != "nothing":
        for name in names.split(", "):
            agent.click(name)
    agent.click("Submit")


def enter_text(agent: Agent, u: str) -> None:
    agent.click("role=textbox")  # the only text field; it has no label
    agent.type(quoted(u))
    agent.click("Submit")


def enter_text_2(agent: Agent, u: str) -> None:
    text = quoted(u)
    agent.click("role=textbox")
    agent.type(text.upper() if "upper case" in u else text.lower())
    agent.click("Submit")


def enter_password(agent: Agent, u: str) -> None:
    pw = quoted(u)
    agent.type(pw, into="Password")
    agent.type(pw, into="Verify password")
    agent.click("Submit")


def login_user(agent: Agent, u: str) -> None:
    user, pw = re.findall(r'"([^"]*)"', u)
    agent.type(user, into="Username")
    agent.type(pw, into="Password")
    agent.click("Login")


def focus_text(agent: Agent, u: str) -> None:
    agent.click("role=textbox")


def focus_text_2(agent: Agent, u: str) -> None:
    n = {"1st": 1, "2nd": 2, "3rd": 3}[re.search(r"the (\w+) input", u).group(1)]
    agent.click("role=textbox", nth=n)


def click_tab(agent: Agent, u: str) -> None:
    agent.click(re.search(r"(Tab #\d)", u).group(1))


def choose_list(agent: Agent, u: str) -> None:
    agent.select(re.match(r"Select (.*) from the list", u).group(1))
    agent.click("Submit")


# -- the locator language (README "Locators"): scope, relations, reads --------------------------------
AREA = {"css": "#area"}
"""The task's own area: the instruction above it names the target too."""
ORDINAL = {
    "1st": 1,
    "2nd": 2,
    "3rd": 3,
    "4th": 4,
    "5th": 5,
    "6th": 6,
    "7th": 7,
    "8th": 8,
    "9th": 9,
    "10th": 10,
}


def click_button(agent: Agent, u: str) -> None:
    agent.click({"text": quoted(u), "inside": AREA, "first": True})  # two identical buttons: either is right


def click_collapsible(agent: Agent, u: str) -> None:
    agent.click({"role": "tab", "first": True})
    agent.click({"role": "button", "name": "Submit"})


def _reveal_and_click(agent: Agent, u: str, tab: dict) -> None:
    link = {"text": quoted(u), "exact": True, "inside": AREA}
    for i in range(1, agent.count(tab) + 1):
        if agent.count(link):
            break
        agent.click({**tab, "nth": i})
    agent.click({**link, "first": True})  # a word can be a link twice: either is the one


def click_collapsible_2(agent: Agent, u: str) -> None:
    _reveal_and_click(agent, u, {"role": "tab"})


def click_tab_2(agent: Agent, u: str) -> None:
    _reveal_and_click(agent, u, {"role": "tab"})


def click_widget(agent: Agent, u: str) -> None:
    agent.click({"css": f'#area [data-type="{quoted(u)}"]', "first": True})


def _number(s: str) -> int:
    return int(s.replace("−", "-"))


def simple_arithmetic(agent: Agent, u: str) -> None:
    a, op, b = re.match(r"\s*(-?\d+)\s*([-+x*/])\s*(-?\d+)", agent.text({"css": "#math-problem"})).groups()
    x, y = _number(a), _number(b)
    answer = {"+": x + y, "-": x - y, "x": x * y, "*": x * y, "/": x // y if y else 0}[op]
    agent.type(str(answer), into={"role": "textbox", "inside": AREA})
    agent.click("Submit")


def simple_algebra(agent: Agent, u: str) -> None:
    problem = agent.text({"css": "#math-problem"}).replace(" ", "")
    left, right = problem.split("=")
    total = _number(right)
    m = re.fullmatch(r"(-?\d+)([-+])x", left) or re.fullmatch(r"x([-+])(-?\d+)", left)
    if left.startswith("x"):
        op, n = m.group(1), _number(m.group(2))
        x = total - n if op == "+" else total + n
    else:
        n, op = _number(m.group(1)), m.group(2)
        x = total - n if op == "+" else n - total
    agent.type(str(x), into={"role": "textbox", "inside": AREA})
    agent.click("Submit")


def read_table(agent: Agent, u: str) -> None:
    key = re.search(r"value of (.+?) into", u).group(1)
    value = agent.text({"role": "cell", "row": {"role": "cell", "name": key, "exact": True}})
    agent.type(value, into={"role": "textbox", "inside": AREA})
    agent.click("Submit")


def read_table_2(agent: Agent, u: str) -> None:
    for label in agent.all({"role": "label", "inside": {"css": "#form"}}):
        key = label.text.rstrip(":")
        value = agent.text({"role": "cell", "row": {"role": "cell", "name": key, "exact": True}})
        agent.type(value, into={"role": "textbox", "right_of": {"text": label.text, "exact": True}})
    agent.click("Submit")


def copy_paste(agent: Agent, u: str) -> None:
    agent.type(agent.value({"css": "#to-copy"}) or "", into={"css": "#answer-input"})
    agent.click("Submit")


def odd_or_even(agent: Agent, u: str) -> None:
    for i, number in enumerate(agent.all({"css": ".display-number"}), 1):
        agent.click({"role": "button", "name": "Even" if _number(number.text) % 2 == 0 else "Odd", "nth": i})
    agent.click("Submit")


def find_word(agent: Agent, u: str) -> None:
    n = ORDINAL[re.search(r"the (\w+) word", u).group(1)]
    words = agent.text({"css": "#area p"}).split()
    agent.type(words[n - 1].strip(".,;:!?"), into={"role": "textbox", "inside": AREA})
    agent.click("Submit")


def _post(user: str) -> dict:
    return {"css": "#area .media", "has_text": user}


def _social(agent: Agent, user: str, button: str, post: dict) -> None:
    icon = {"css": "." + button.lower(), "inside": post}  # reply, retweet, like, share: icons
    if button.isalpha() and agent.count(icon):
        agent.click(icon)
    else:  # the post's "more" menu, then its item (the menu drops below the post)
        agent.click({"css": ".more", "inside": post})
        agent.click({"role": "listitem", "has_text": button, "inside": AREA})


def social_media(agent: Agent, u: str) -> None:
    user = re.search(r"(@\S+?),? ", u).group(1)
    _social(agent, user, quoted(u), _post(user))


def social_media_all(agent: Agent, u: str) -> None:
    user = re.search(r"by (@\S+?) and", u).group(1)
    for i in range(1, agent.count(_post(user)) + 1):
        _social(agent, user, quoted(u), {**_post(user), "nth": i})
    agent.click("Submit")


def social_media_some(agent: Agent, u: str) -> None:
    m = re.search(r"on (\d+) posts? by (@\S+?) and", u)
    k, user = int(m.group(1)), m.group(2)
    for i in range(1, k + 1):
        _social(agent, user, quoted(u), {**_post(user), "nth": i})
    agent.click("Submit")


def _movie(u: str) -> dict[str, str]:
    m = re.search(r"Search for (.+?) movies directed by (.+?) from year (\d+)", u)
    return {"genre": m.group(1), "director": m.group(2), "year": m.group(3)}


def multi_orderings(agent: Agent, u: str) -> None:
    want = _movie(u)
    for label, key in (("Year", "year"), ("Genre", "genre"), ("Director", "director")):
        agent.type(want[key], into={"role": "textbox", "row": {"role": "columnheader", "name": label}})
    agent.click({"text": "Submit", "inside": AREA})


def _submit_any(agent: Agent) -> None:
    """The form's submit control: a button, or a text drawn as one."""
    if agent.count({"role": "button", "inside": AREA}):
        agent.click({"role": "button", "inside": AREA, "first": True})
        return
    for word in ("Submit", "Search", "Go"):
        if agent.count({"text": word, "inside": AREA}):
            agent.click({"text": word, "inside": AREA})
            return


def multi_layouts(agent: Agent, u: str) -> None:
    want = _movie(u)
    for words, key in ((("Year", "Date"), "year"), (("Genre",), "genre"), (("Director",), "director")):
        for word in words:
            caption = {"text": word, "inside": AREA}
            forms = [  # the layouts: a placeholder, a caption left of, above or below the field
                {"placeholder": word},
                {"role": "textbox", "row": caption},
                {"role": "textbox", "below": caption, "distance": 3},
                {"role": "textbox", "above": caption, "distance": 3},
            ]
            field = next((f for f in forms if agent.count(f)), None)
            if field is not None:
                agent.type(want[key], into=field)
                break
    _submit_any(agent)


def form_sequence_2(agent: Agent, u: str) -> None:
    m = re.search(r"Check the (\w+) radio button and enter the number \"(-?\d+)\" into the (\w+) textbox", u)
    agent.set_checked({"role": "radio", "nth": ORDINAL[m.group(1)]})
    agent.type(m.group(2), into={"role": "textbox", "nth": ORDINAL[m.group(3)]})
    agent.click("Submit")


def form_sequence_3(agent: Agent, u: str) -> None:
    option = re.search(r"Choose (.+?) from the dropdown", u).group(1)
    agent.click({"css": ".selectric"})  # a drawn dropdown over a hidden <select>
    agent.click({"role": "listitem", "name": option, "exact": True})
    agent.click({"role": "button", "name": quoted(u), "exact": True})


def use_autocomplete(agent: Agent, u: str) -> None:
    first, last = re.findall(r'"([^"]*)"', u) + [""] if "ends with" not in u else re.findall(r'"([^"]*)"', u)
    agent.type(first, into="Tags")
    item = {"text": f"/^{re.escape(first)}.*{re.escape(last)}$/", "inside": {"css": ".ui-autocomplete"}}
    agent.wait_for(item)  # the suggestions come a moment after the typing
    agent.click({**item, "first": True})
    agent.click("Submit")


def copy_paste_2(agent: Agent, u: str) -> None:
    n = ORDINAL[re.search(r"the (\w+) text area", u).group(1)]
    text = agent.value({"css": "#area textarea", "nth": n}) or ""
    agent.type(text, into={"css": "#answer-input"})
    agent.click("Submit")


def scroll_text(agent: Agent, u: str) -> None:
    words = (agent.value({"css": "#text-area"}) or "").split()
    agent.type(words[-1].strip(".,;:!?"), into={"css": "#answer-input"})
    agent.click("Submit")


SOLUTIONS: dict[str, Solution] = {
    "click-test": lambda a, u: a.click("Click Me!"),
    "click-test-2": click_button_word,
    "click-test-transfer": click_button_word,
    "click-button": click_button,
    "click-button-sequence": click_sequence,
    "click-link": click_quoted,
    "click-dialog": click_dialog,
    "click-dialog-2": click_dialog_2,
    "click-option": click_option,
    "click-checkboxes": click_checkboxes,
    "click-tab": click_tab,
    "unicode-test": click_quoted,
    "enter-text": enter_text,
    "enter-text-dynamic": enter_text,
    "enter-text-2": enter_text_2,
    "enter-password": enter_password,
    "login-user": login_user,
    "focus-text": focus_text,
    "focus-text-2": focus_text_2,
    "choose-list": choose_list,
    "click-collapsible": click_collapsible,
    "click-collapsible-nodelay": click_collapsible,
    "click-collapsible-2": click_collapsible_2,
    "click-collapsible-2-nodelay": click_collapsible_2,
    "click-tab-2": click_tab_2,
    "click-tab-2-easy": click_tab_2,
    "click-tab-2-medium": click_tab_2,
    "click-widget": click_widget,
    "simple-arithmetic": simple_arithmetic,
    "simple-algebra": simple_algebra,
    "read-table": read_table,
    "read-table-2": read_table_2,
    "copy-paste": copy_paste,
    "odd-or-even": odd_or_even,
    "find-word": find_word,
    "social-media": social_media,
    "social-media-all": social_media_all,
    "social-media-some": social_media_some,
    "multi-orderings": multi_orderings,
    "multi-layouts": multi_layouts,
    "form-sequence-2": form_sequence_2,
    "form-sequence-3": form_sequence_3,
    "use-autocomplete": use_autocomplete,
    "use-autocomplete-nodelay": use_autocomplete,
    "click-tab-2-hard": click_tab_2,
    "click-checkboxes-large": click_checkboxes,
    "click-checkboxes-transfer": click_checkboxes,
    "copy-paste-2": copy_paste_2,
    "scroll-text": scroll_text,
}


def miniwob_html() -> Path:
    import miniwob

    return Path(miniwob.__file__).parent / "html" / "miniwob"


def start_episode(page: Any, seed: int) -> str:
    """A new episode of the task open in ``page`` (MiniWoB's own Selenium protocol): its utterance."""
    page.evaluate("core.endEpisode(0)")
    page.evaluate(f"Math.seedrandom({seed})")
    page.evaluate('core.setDataMode("train")')
    page.evaluate("core.startEpisodeReal()")
    page.wait_for_function("WOB_TASK_READY === true")
    utterance = page.evaluate("core.getUtterance()")
    return str(utterance["utterance"] if isinstance(utterance, dict) else utterance)


def reward(page: Any) -> dict[str, Any]:
    """The episode's raw reward (1: done right), time-discounted reward and MiniWoB's reason."""
    return dict(
        page.evaluate("({raw: WOB_RAW_REWARD_GLOBAL, reward: WOB_REWARD_GLOBAL, reason: WOB_REWARD_REASON})")
    )


def open_task(driver: BrowserDriver, task: str) -> None:
    driver.page.goto((miniwob_html() / f"{task}.html").as_uri())
    driver.page.wait_for_selector("#sync-task-cover", state="visible")


def episode(driver: BrowserDriver, task: str, seed: int) -> dict:
    page = driver.page
    utterance = start_episode(page, seed)
    agent = Agent(driver, locator=Locator(use_ocr=True))
    start = time.perf_counter()
    error = None
    try:
        SOLUTIONS[task](agent, utterance)
    except (PixelPilotError, ValueError, AttributeError) as exc:
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    try:  # a task ends itself once answered (some only when their time runs out: 10-20 s)
        page.wait_for_function("WOB_DONE_GLOBAL === true", timeout=3_000 if error is None else 500)
    except PlaywrightTimeout:
        page.evaluate("core.endEpisode(-1, false, 'no answer')")
        error = error or "the task did not end: no answer given"
    wall = time.perf_counter() - start
    meta = reward(page)
    return {
        "task": task,
        "seed": seed,
        "utterance": utterance,
        "raw": meta["raw"],
        "reward": meta["reward"],
        "seconds": wall,
        "steps": len(agent.steps),
        "error": error,
        "reason": meta["reason"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--tasks", nargs="*", default=list(SOLUTIONS))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/miniwob_scripted.md"))
    args = ap.parse_args(argv)
    rows: list[dict] = []
    t0 = time.perf_counter()
    with BrowserDriver.launch(viewport=(500, 320)) as d:
        for task in args.tasks:
            open_task(d, task)
            for seed in range(args.seeds):
                r = episode(d, task, seed)
                rows.append(r)
                mark = "ok " if r["raw"] == 1 else "BAD"
                print(
                    f"{mark} {task:<22} seed {seed}  raw {r['raw']:+.2f}  {r['seconds'] * 1000:6.0f} ms  {r['error'] or ''}",
                    flush=True,
                )
    total = time.perf_counter() - t0
    write_table(rows, args, total)
    ok = sum(r["raw"] == 1 for r in rows)
    print(f"{ok}/{len(rows)} episodes with raw reward 1 in {total:.1f} s → {args.out}")
    return 0


def write_table(rows: list[dict], args: argparse.Namespace, total: float) -> None:
    import platform

    lines = [
        "# MiniWoB++ scripted with pixelpilot's public API",
        "",
        f"Command: `python benchmarks/miniwob_scripted.py --seeds {args.seeds}`  ",
        f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}, 2 cores (shared); headless Debian Chromium, viewport 500×320.  ",
        f"Date: {time.strftime('%Y-%m-%d')}. Total wall time {total:.1f} s (one browser, episodes back to back).",
        "",
        'Solutions use only the documented API (README "Locators"): locators by text, role, label, placeholder, CSS,',
        "scopes (`inside`, `has_text`), layout relations and `nth`; reads (`text`, `value`, `count`, `all`); steps.",
        "`success` = MiniWoB raw reward 1; `episode ms` = time from the start of the solution to MiniWoB's done flag.",
        "",
        "| task | seeds | success | mean reward | median episode ms | median steps | failures |",
        "|---|---|---|---|---|---|---|",
    ]
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["task"], []).append(r)
    for task, rs in by.items():
        ok = sum(r["raw"] == 1 for r in rs)
        errs = "; ".join(
            sorted({str(r["error"] or r["reason"] or "wrong result") for r in rs if r["raw"] != 1})
        )[:160]
        lines.append(
            f"| {task} | {len(rs)} | {ok}/{len(rs)} | {statistics.mean(r['reward'] for r in rs):.3f} | "
            f"{statistics.median(r['seconds'] for r in rs) * 1000:.0f} | {statistics.median(r['steps'] for r in rs):.0f} | {errs} |"
        )
    ok = sum(r["raw"] == 1 for r in rows)
    lines += [
        "",
        f"**Total: {ok}/{len(rows)} episodes ({100 * ok / len(rows):.1f} %) across {len(by)} tasks.**",
        "",
        "Not attempted: tasks that need pixel positions remembered after the page hides them (ascending-numbers),",
        "drawn shapes and colours, drags and sliders, date/time pickers, and time-discounted waits (button-delay).",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
