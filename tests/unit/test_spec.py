"""Task files: every verb parses; bad files name the file, the line and the offending key."""

import json
from pathlib import Path

import pytest

from pixelpilot.agent.errors import ConfigError, ModelError
from pixelpilot.tasks import spec as S
from pixelpilot.tasks.cli import main


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "task.yaml"
    p.write_text(text)
    return p


def test_every_verb_in_both_forms(tmp_path):
    task = S.load_task(
        write(
            tmp_path,
            """
version: 1
name: all verbs
steps:
  - open: page.html
  - click: Sign in
  - click: {text: Item, nth: 2}
  - type: hello
  - type: {text: alice, into: Username, clear: false}
  - key: ctrl+a
  - scroll: down
  - scroll: {direction: up, amount: 300, target: List}
  - wait_for: Welcome
  - wait_for: {text: Done, timeout: 2.5}
  - see: Dashboard
  - select: Bananas
  - select: {option: Japan, field: Ship to}
""",
        )
    )
    kinds = [type(s).__name__ for s in task.steps]
    assert kinds == [
        "OpenStep",
        "ClickStep",
        "ClickStep",
        "TypeStep",
        "TypeStep",
        "KeyStep",
        "ScrollStep",
        "ScrollStep",
        "WaitForStep",
        "WaitForStep",
        "SeeStep",
        "SelectStep",
        "SelectStep",
    ]
    assert task.steps[2].target == {"text": "Item", "nth": 2}  # a locator mapping
    assert task.steps[4].args.into == "Username" and task.steps[4].args.clear is False
    assert task.steps[7].args.amount == 300
    assert task.steps[9].args.timeout == 2.5
    assert task.steps[12].args.field == "Ship to"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("version: 1\nstep:\n  - click: a\n", 2, "unknown key 'step' (did you mean 'steps'?)"),
        (
            "steps:\n  - open: x\n  - tap: Sign in\n",
            3,
            "steps[1]: a step is a mapping with exactly one of: open, click",
        ),
        (
            "steps:\n  - open: x\n  - click:\n      text: a\n      nht: 2\n",
            4,  # the click's locator mapping
            "steps[1].click: unknown key 'nht' (did you mean 'nth'?)",
        ),
        (
            "steps:\n  - wait_for: {text: a, timeout: soon}\n",
            2,
            "steps[0].wait_for.timeout: Input should be a valid number",
        ),
        ("steps:\n  - click: [a\n", 2, "flow sequence opened here"),  # where it opened
        ("steps:\n  - key: ctrl++\n", 2, "bad key combination 'ctrl++'"),
        ("version: 2\nsteps:\n  - click: a\n", 1, "version: Input should be 1"),
        (
            "driver:\n  browser:\n    viewprt: [1, 2]\nsteps:\n  - click: a\n",
            3,
            "unknown key 'viewprt' in driver.browser",
        ),
        ("- click: a\n", 1, "a task file is a mapping"),
        ("steps: []\n", 1, "steps: List should have at least 1 item"),
    ],
)
def test_bad_files_name_file_line_and_key(tmp_path, text, line, message):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        S.load_task(p)
    err = info.value
    assert err.file == str(p)
    assert err.line == line
    assert message in str(err)
    assert str(err).startswith(f"{p}:{line}: ")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such task file"):
        S.load_task(tmp_path / "nope.yaml")


def test_cli_exits_2_on_a_bad_file_and_runs_nothing(tmp_path, capsys):
    p = write(tmp_path, "steps:\n  - open: x\n  - clik: Sign in\n")
    out = tmp_path / "runs"
    assert main(["run", str(p), "--output", str(out)]) == 2
    text = capsys.readouterr().out
    assert f"{p}:3:" in text and "clik" not in text or "a step is a mapping" in text
    assert not out.exists(), "a bad task file must not start a run"


def test_schema_command_prints_the_json_schema(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "pixelpilot task file"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) >= {"version", "name", "driver", "steps", "settings"}
    # the step union lists every verb
    text = json.dumps(schema)
    for verb in S.STEP_VERBS:
        assert f'"{verb}"' in text


def test_local_model_options_reach_the_loader_and_bad_ones_name_the_line(tmp_path, monkeypatch):
    import pixelpilot.agent.models as models
    from pixelpilot.tasks import RunOptions, run_task

    seen = {}

    def fake_load(spec, *, model_name=None, **options):
        seen.update(spec=spec, **options)
        raise ModelError("stop here: loading is all this test checks")

    monkeypatch.setattr(models, "load_model", fake_load)
    good = write(tmp_path, "model:\n  local: qwen3-vl-2b\n  engine: false\nsteps:\n  - goal: x\n")
    with pytest.raises(ModelError):
        run_task(good, RunOptions(output=tmp_path / "runs"))
    assert seen == {"spec": "qwen3-vl-2b", "engine": False, "constrain": True}

    # quantize: int8 was removed (2x slower than bf16 on an H100): the key is now refused, not ignored
    bad = write(tmp_path, "model:\n  local: qwen3-vl-2b\n  quantize: int8\nsteps:\n  - goal: x\n")
    with pytest.raises(ConfigError) as err:
        S.load_task(bad)
    assert "task.yaml:3" in str(err.value) and "unknown key 'quantize'" in str(err.value)
