"""``pixelpilot export`` where no UI tree named what the model acted on (a canvas, a desktop without an
accessibility tree): the text OCR reads at the point, else a picture cut from the recorded frame, else
the step stays the model's with the reason — on a recorded run with real frames and real OCR."""

from __future__ import annotations

import io

import yaml
from PIL import Image, ImageDraw, ImageFont

from pixelpilot.agent.memory import StepRecord
from pixelpilot.agent.runlog import RunWriter
from pixelpilot.tasks.export import export_run
from pixelpilot.tools.template import find_template, load_template


def _frame() -> bytes:
    img = Image.new("RGB", (640, 400), "white")
    d = ImageDraw.Draw(img)
    d.text((60, 60), "Archive", fill="black", font=ImageFont.truetype("DejaVuSans.ttf", 28))
    d.text((60, 300), "Archive", fill="black", font=ImageFont.truetype("DejaVuSans.ttf", 28))
    d.ellipse((400, 150, 470, 220), fill=(220, 40, 40))  # an icon with no text
    d.polygon([(420, 170), (450, 185), (420, 200)], fill="white")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _run(tmp_path, actions: list[dict]) -> RunWriter:
    run = RunWriter(tmp_path / "runs", "canvas", meta={"task_file": str(tmp_path / "canvas.yaml")})
    frame = run.save_frame(_frame(), "png")
    for i, a in enumerate(actions):
        rec = StepRecord(index=i, kind="act", instruction=f"step {i}", frame=frame, screen=(640, 400))
        rec.actions, rec.action, rec.elements = [a], a, [None]
        rec.model = {"action_text": f"do step {i}"}
        run.append(rec)
    run.finish("passed", report=False)
    return run


def test_text_then_a_picture_then_the_model(tmp_path):
    run = _run(
        tmp_path,
        [
            {"action": "click", "at": [100, 75]},  # "Archive", but it is on the screen twice
            {"action": "click", "at": [435, 185]},  # the red icon: no text at all
            {"action": "triple_click", "at": [100, 75]},
        ],
    )
    out = tmp_path / "export" / "canvas.yaml"
    done = export_run(run.path, out)
    steps = yaml.safe_load(done.text)["steps"]

    # "Archive" is on screen twice: the first of them, in reading order (as the locator counts)
    first, second, third = steps
    assert first == {"click": {"text": "Archive", "nth": 1}}
    assert "image" in second["click"]
    picture = out.parent / second["click"]["image"]
    assert picture.is_file() and picture.parent.name == "canvas.images"
    frame = Image.open(io.BytesIO(_frame()))
    (hit,) = find_template(frame, load_template(picture), threshold=0.9)
    x, y = hit.center
    assert abs(x - 435) <= 2 and abs(y - 185) <= 2, "the picture's centre is where the model clicked"
    assert third == {"act": "step 2"}, "an act: step left to the model keeps its instruction"
    assert done.left == ["a triple_click has no scripted step"]
    assert "left to the model: a triple_click has no scripted step\n  - act: step 2\n" in done.text
    assert "1 step(s) are left to the model" in done.text


def test_a_text_on_the_screen_once_is_the_target(tmp_path):
    run = _run(tmp_path, [{"action": "click", "at": [100, 310]}])
    # only the lower "Archive" is clicked; blank out the upper one in the recorded frame
    frame_file = next((run.path / "frames").iterdir())
    img = Image.open(frame_file).convert("RGB")
    ImageDraw.Draw(img).rectangle((0, 0, 639, 200), fill="white")
    img.save(frame_file)
    done = export_run(run.path, tmp_path / "t.yaml")
    assert yaml.safe_load(done.text)["steps"] == [{"click": "Archive"}]
    assert "found by its text on the screen" in done.text


def test_a_python_api_run_exports_its_scripted_steps_and_the_goal_it_ran(tmp_path):
    """No task file behind the run: each step is written from its record; a goal's steps go together."""
    from pixelpilot.agent import Agent, AgentSettings
    from pixelpilot.agent.locate import Locator
    from pixelpilot.agent.models import ScriptedModel
    from pixelpilot.drivers import FakeDriver, FakeWidget

    def login(d: FakeDriver) -> None:
        d.add([FakeWidget(f"Welcome, {d.widget('Username').value}", (20, 200, 300, 30), role="text")])

    d = FakeDriver(
        [
            FakeWidget("Username", (120, 20, 200, 30), role="textbox"),
            FakeWidget("Sign in", (20, 100, 100, 30), on_click=login),
            FakeWidget("Item", (20, 300, 80, 20)),
            FakeWidget("Item", (20, 330, 80, 20)),
        ]
    )
    call = '<tool_call>\n{{"name": "computer_use", "arguments": {}}}\n</tool_call>'
    model = ScriptedModel(
        [
            call.format('{"action": "left_click", "coordinate": [109, 863]}'),  # the second "Item" (60, 340)
            call.format('{"action": "terminate", "status": "success"}'),
        ]
    )
    with Agent(
        d,
        model=model,
        locator=Locator(use_ocr=False),
        settings=AgentSettings(wait_timeout=0.5, poll_interval=0.01),
        output=tmp_path / "runs",
        task="api",
    ) as agent:
        agent.type("alice", into="Username")
        agent.click("Sign in")
        agent.see("Welcome, alice")
        assert agent.run("Open the second item").ok
    done = export_run(agent.recorder.path, tmp_path / "api.yaml")
    assert yaml.safe_load(done.text)["steps"] == [
        {"type": {"text": "alice", "into": "Username"}},
        {"click": "Sign in"},
        {"see": "Welcome, alice"},
        {
            "click": {"role": "button", "name": "Item", "nth": 2}
        },  # two of them: the one it clicked, in reading order
    ]
    assert "  # goal: Open the second item\n  - click:" in done.text and not done.left


def test_an_ask_and_an_unfound_check_stay_the_models_with_their_reasons(tmp_path):
    run = RunWriter(tmp_path / "runs", "asks", meta={"task_file": str(tmp_path / "asks.yaml")})
    frame = run.save_frame(_frame(), "png")
    for i, (kind, params, result) in enumerate(
        [
            ("ask", {"question": "What is archived?"}, {"answer": "nothing"}),
            ("check", {"statement": "The inbox is empty"}, {"result": True, "reason": "no mail is listed"}),
        ]
    ):
        rec = StepRecord(index=i, kind=kind, instruction=kind, frame=frame, params=params, result=result)
        run.append(rec)
    run.finish("passed", report=False)
    done = export_run(run.path, tmp_path / "asks.yaml")
    assert done.left == [
        "an ask's answer is the model's reading of the screen",
        "none of the texts the check relied on is on the screen",
    ]
    assert yaml.safe_load(done.text)["steps"] == [
        {"ask": "What is archived?"},
        {"check": "The inbox is empty"},
    ]
