"""Secrets: their values are scrubbed from every text, placeholders become values only at the driver."""

import logging

import pytest

from pixelpilot.agent.errors import ConfigError
from pixelpilot.agent.secrets import MASK, ScrubFilter, Secret, SecretStore, reveal, scrub, scrub_obj


def test_a_secret_shows_its_placeholder_and_is_scrubbed_everywhere():
    s = Secret("hunter2-xyz", "API_KEY")
    assert str(s) == "${secret:API_KEY}" and repr(s) == "Secret('API_KEY')" and s.reveal() == "hunter2-xyz"
    assert scrub("token=hunter2-xyz; again hunter2-xyz") == f"token={MASK}; again {MASK}"
    assert scrub_obj({"a": ["x hunter2-xyz"], "b": 3, "p": (1, 2.5)}) == {
        "a": [f"x {MASK}"],
        "b": 3,
        "p": (1, 2.5),
    }
    assert isinstance(scrub_obj({"p": (1, 2)})["p"], tuple)  # records keep their shapes
    assert reveal("key: ${secret:API_KEY} / ${secret:UNKNOWN}") == "key: hunter2-xyz / ${secret:UNKNOWN}"
    with pytest.raises(TypeError):
        __import__("pickle").dumps(s)


def test_log_records_are_scrubbed():
    Secret("p4ssw0rd!", "PW")
    rec = logging.LogRecord("pixelpilot", logging.INFO, __file__, 1, "typed %s", ("p4ssw0rd!",), None)
    ScrubFilter().filter(rec)
    assert rec.getMessage() == f"typed {MASK}"


def test_secrets_come_from_a_dotenv_file_then_the_environment(tmp_path):
    f = tmp_path / "s.env"
    f.write_text('DB_PASSWORD="from file"\n# a comment\nEMPTY=\n')
    store = SecretStore(f, env={"TOKEN": "from env", "DB_PASSWORD": "env loses"})
    assert store.get("DB_PASSWORD").reveal() == "from file"
    assert store.get("TOKEN").reveal() == "from env"
    with pytest.raises(ConfigError, match="no secret named 'MISSING'.*--secrets"):
        store.get("MISSING", where="task.yaml")
    with pytest.raises(ConfigError, match="no secrets file"):
        SecretStore(tmp_path / "nope.env")


def test_task_files_name_secrets_and_environment_values(monkeypatch):
    from pydantic import TypeAdapter, ValidationError

    from pixelpilot.tasks import steps as S
    from pixelpilot.tasks.runner import substitute

    step = TypeAdapter(S.Step).validate_python({"type": {"secret": "DB_PASSWORD", "into": "Password"}})
    assert step.args.secret == "DB_PASSWORD" and step.args.text is None
    with pytest.raises(ValidationError, match="either text: or secret:"):
        TypeAdapter(S.Step).validate_python({"type": {"text": "a", "secret": "B"}})
    monkeypatch.setenv("SHOP_URL", "http://127.0.0.1:9")
    opened = substitute(TypeAdapter(S.Step).validate_python({"open": "${env:SHOP_URL}/login"}), {}, 0)
    assert opened.open == "http://127.0.0.1:9/login"
    kept = substitute(TypeAdapter(S.Step).validate_python({"type": "${secret:DB_PASSWORD}"}), {}, 0)
    assert kept.args.text == "${secret:DB_PASSWORD}"  # a secret stays a placeholder until the driver
    with pytest.raises(ConfigError, match="no environment variable NOPE"):
        substitute(TypeAdapter(S.Step).validate_python({"open": "${env:NOPE}"}), {}, 3)
