"""The action policy's rules, one by one."""

import pytest

from pixelpilot.agent.policy import Policy, PolicyRefused
from pixelpilot.tools import actions as A


def test_domains_a_domain_covers_its_subdomains_and_a_block_wins():
    p = Policy(allow_domains=["example.com"], block_domains=["admin.example.com"])
    assert p.allows_host("example.com") and p.allows_host("shop.example.com")
    assert not p.allows_host("admin.example.com") and not p.allows_host("evil.com")
    assert not p.allows_host("notexample.com")  # not a subdomain
    with pytest.raises(PolicyRefused, match=r"\[policy block_domains: admin.example.com\]"):
        p.check_url("https://admin.example.com/users", by_model=False)
    p.check_url("https://shop.example.com/cart", by_model=False)
    with pytest.raises(PolicyRefused, match="no file: for a model"):
        Policy().check_url("file:///etc/passwd", by_model=True)
    Policy().check_url("file:///tmp/page.html", by_model=False)  # a script's own file is its business


def test_forbid_confirm_and_apps():
    p = Policy(forbid=["key"], confirm=["delete|pay"], allow_apps=["com.example.notes"], ask=lambda q: False)
    with pytest.raises(PolicyRefused, match="forbid: key"):
        p.check_action("key", A.Key(keys=["Enter"]), "Enter")
    with pytest.raises(PolicyRefused, match="confirm: delete\\|pay"):
        p.check_action("click", A.Click(at=(1, 2)), 'click button "Delete account"')
    p.check_action("click", A.Click(at=(1, 2)), 'click button "Save"')
    with pytest.raises(PolicyRefused, match="allow_apps"):
        p.check_action("act", A.OpenApp(app="com.evil"), "")
    asked = []
    yes = Policy(confirm=["Pay"], ask=lambda q: asked.append(q) or True)
    yes.check_action("click", A.Click(at=(1, 2)), "Pay now")
    yes.check_action("click", A.Click(at=(1, 2)), "Pay now")  # asked once per target
    assert len(asked) == 1
    Policy(confirm=["Pay"], yes=True, ask=lambda q: False).check_action(
        "click", A.Click(at=(1, 2)), "Pay now"
    )


def test_uploads_come_from_the_task_folder_unless_allowed(tmp_path):
    base = tmp_path / "task"
    (base / "fixtures").mkdir(parents=True)
    inside, outside = base / "fixtures" / "a.txt", tmp_path / "b.txt"
    inside.write_text("a")
    outside.write_text("b")
    Policy().check_upload(inside, base)
    with pytest.raises(PolicyRefused, match="allows uploads only from"):
        Policy().check_upload(outside, base)
    Policy(allow_upload_from=[tmp_path]).check_upload(outside, base)
    with pytest.raises(PolicyRefused, match="allows uploads only from"):
        Policy().check_upload(base / "fixtures" / ".." / ".." / "b.txt", base)  # no way out by ..
