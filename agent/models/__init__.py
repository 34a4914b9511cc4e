"""Model backends behind one protocol: local (transformers), openai (vLLM, SGLang), scripted (tests)."""

from __future__ import annotations

from typing import Any

from pixelpilot.agent.errors import ConfigError
from pixelpilot.agent.models.base import Reply, VisionModel
from pixelpilot.agent.models.scripted import ScriptedModel

__all__ = ["Reply", "ScriptedModel", "VisionModel", "load_model"]


def load_model(spec: str, *, model_name: str | None = None, **options: Any) -> VisionModel:
    """A model from its name: ``qwen3-vl-2b|4b|8b[-thinking]``, a hub id, a local directory, or
    ``openai:<base_url>`` (``model_name`` picks the served model; default: the only one), or
    ``openai:<url>,<url>,...`` for replicas of one server (a run keeps to one; see
    :class:`~pixelpilot.agent.models.replicas.Replicas`; ``session=`` picks which). ``profile=`` a
    :class:`~pixelpilot.agent.qwen.profile.QwenProfile` or the name of one (``gui-owl``: PROFILES)."""
    if isinstance(options.get("profile"), str):  # a profile by name: PROFILES
        from pixelpilot.agent.qwen.profile import named_profile

        options["profile"] = named_profile(options["profile"], thinking="thinking" in spec.lower())
    if spec.startswith("openai:"):
        from pixelpilot.agent.models.openai import OpenAIModel

        url = spec.removeprefix("openai:")
        if "#" in url:
            url, _, embedded = url.partition("#")
            model_name = model_name or embedded
        urls = [u.strip() for u in url.split(",") if u.strip()]
        for u in urls or [url]:
            if not u.startswith(("http://", "https://")):
                raise ConfigError(f"openai models need a base URL: openai:http://host:8000/v1 (got {spec!r})")
        session = options.pop("session", None)
        if len(urls) > 1:
            from pixelpilot.agent.models.replicas import Replicas

            return Replicas(urls, model_name, session=session, **options)
        return OpenAIModel(urls[0], model_name, **options)
    from pixelpilot.agent.models.local import LocalModel

    return LocalModel(spec, **options)
