"""An action policy, checked before any action reaches the driver — whoever proposed it: a script, the
cache or the model.

``allow_domains`` / ``block_domains`` (a host, or ``*.host``; a domain covers its subdomains) govern what
``open`` may load and where a click may navigate (the browser refuses the document request); file:// and
chrome:// are refused to a model unless ``allow_domains`` names the scheme. ``allow_apps`` lists the
Android packages ``open_app`` may start. ``allow_upload_from`` the folders files may be uploaded from (a
task file's own folder by default). ``confirm`` holds patterns (regular expressions, case aside) matched
against what an action targets: a match asks a person on the terminal when there is one (in the console's
Live page for a run started there), and is refused otherwise (``--yes`` allows them all). ``forbid`` names actions never performed (click, type, key, drag,
scroll, open, upload, open_app, …). A refusal fails the step with the rule that refused it; in a goal run
the model is told the rule and goes on.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pixelpilot.agent.errors import StepFailed
from pixelpilot.tools import actions as A

__all__ = ["Policy", "PolicyRefused"]

MODEL_KINDS = ("goal", "act")
"""Steps whose actions the model proposed."""


class PolicyRefused(StepFailed):
    """An action the policy does not allow; ``rule`` says which rule refused it."""

    def __init__(self, message: str, *, rule: str) -> None:
        self.rule = rule
        super().__init__(f"{message} [policy {rule}]")


def _terminal_confirm(question: str) -> bool:
    """Ask a person at the terminal (only when there is one)."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return False
    answer = input(f"{question} [y/N] ")
    return answer.strip().lower() in ("y", "yes")


@dataclass
class Policy:
    allow_domains: Sequence[str] = ()
    block_domains: Sequence[str] = ()
    allow_apps: Sequence[str] | None = None
    allow_upload_from: Sequence[str | Path] | None = None
    confirm: Sequence[str] = ()
    forbid: Sequence[str] = ()
    yes: bool = False
    """Allow every ``confirm`` action without asking (``--yes``)."""
    ask: Callable[[str], bool] = field(default=_terminal_confirm, repr=False)
    """How a person is asked (the terminal; the console answers from its Live page)."""

    def __post_init__(self) -> None:
        self._confirm = [re.compile(p, re.I) for p in self.confirm]
        self._confirmed: set[str] = set()

    # -- checks ------------------------------------------------------------------------------------
    def check_action(self, kind: str, action: A.Action, what: str) -> None:
        """Before ``action`` of a step of ``kind`` (``what``: the instruction and target, for
        ``confirm``)."""
        name = action.action
        if name in self.forbid or (
            name in ("left_click", "double_click", "right_click") and "click" in self.forbid
        ):
            raise PolicyRefused(f"the policy forbids {name!r} actions", rule=f"forbid: {name}")
        if (
            isinstance(action, A.OpenApp)
            and self.allow_apps is not None
            and action.app not in self.allow_apps
        ):
            raise PolicyRefused(
                f"the policy allows opening only {', '.join(self.allow_apps) or 'no app'}, not {action.app!r}",
                rule=f"allow_apps: {list(self.allow_apps)}",
            )
        if self._confirm and name not in ("mouse_move", "scroll", "wait", "answer", "terminate"):
            hit = next((p for p in self._confirm if p.search(what)), None)
            if hit is not None and what not in self._confirmed:
                if not (
                    self.yes
                    or self.ask(f"pixelpilot: allow {name} on {what!r} (rule confirm: {hit.pattern})?")
                ):
                    raise PolicyRefused(
                        f"{name} on {what!r} needs a person's confirmation (confirm: {hit.pattern}); it was "
                        "refused, or there was no one to ask (no terminal; --yes allows it)",
                        rule=f"confirm: {hit.pattern}",
                    )
                self._confirmed.add(what)

    def check_url(self, url: str, *, by_model: bool) -> None:
        """Before loading ``url`` (``open``; a model's navigation)."""
        if "open" in self.forbid:
            raise PolicyRefused("the policy forbids 'open'", rule="forbid: open")
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme in ("file", "chrome", "chrome-extension", "about", "javascript", "data") and by_model:
            if f"{scheme}:" not in self.allow_domains and scheme != "about":
                raise PolicyRefused(
                    f"a model may not open {scheme}: URLs ({url[:80]})",
                    rule=f"default: no {scheme}: for a model",
                )
            return
        if scheme not in ("http", "https"):
            return
        if not self.allows_host(parts.hostname or ""):
            raise PolicyRefused(
                f"the policy does not allow {parts.hostname!r} ({url[:120]})",
                rule=self.host_rule(parts.hostname or ""),
            )

    def allows_host(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        if any(_covers(d, host) for d in self.block_domains):
            return False
        return not self.allow_domains or any(_covers(d, host) for d in self.allow_domains if ":" not in d)

    def host_rule(self, host: str) -> str:
        """The rule that refuses ``host``."""
        blocked = next((d for d in self.block_domains if _covers(d, host.lower())), None)
        return f"block_domains: {blocked}" if blocked else f"allow_domains: {list(self.allow_domains)}"

    def check_upload(self, path: Path, base: Path | None) -> None:
        """Before choosing ``path`` in a file chooser."""
        if "upload" in self.forbid:
            raise PolicyRefused("the policy forbids 'upload'", rule="forbid: upload")
        folders = [Path(p) for p in self.allow_upload_from] if self.allow_upload_from is not None else []
        if base is not None and self.allow_upload_from is None:
            folders = [base]
        if not folders:
            return
        real = path.resolve()
        if not any(real.is_relative_to(f.resolve()) for f in folders):
            raise PolicyRefused(
                f"the policy allows uploads only from {', '.join(str(f) for f in folders)}, not {path}",
                rule=f"allow_upload_from: {[str(f) for f in folders]}",
            )

    @property
    def limits_navigation(self) -> bool:
        return bool(self.allow_domains or self.block_domains)


def _covers(domain: str, host: str) -> bool:
    d = domain.lower().removeprefix("*.").rstrip(".")
    return host == d or host.endswith("." + d)
