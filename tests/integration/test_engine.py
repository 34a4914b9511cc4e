"""The fast engine on the CPU, with tiny Qwen3-VLs: it must give what ``generate`` gives (constraints
off, fp32, greedy), reuse what the cache holds, and with constraints on make every reply a valid tool
call. Speed is measured on the GPU (benchmarks/step_latency.py); this guards correctness in CI."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

from pixelpilot.agent.models.local import LocalModel
from pixelpilot.agent.qwen.constrain import tool_call_grammar
from pixelpilot.agent.qwen.parse import parse_reply, reply_to_action
from pixelpilot.agent.qwen.profile import QwenProfile
from pixelpilot.agent.qwen.prompts import HistoryItem, act_prompt, loop_prompt
from pixelpilot.tools.spaces import get_space

from ..conftest import SIGN_IN_SCRIPT, _need

torch = pytest.importorskip("torch")


def screen(seed: int, size=(640, 400)) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    for _ in range(6):
        x, y = (int(v) for v in torch.randint(0, min(size) - 60, (2,), generator=g))
        c = tuple(int(v) for v in torch.randint(0, 255, (3,), generator=g))
        d.rectangle((x, y, x + 80, y + 40), fill=c)
    return img


@pytest.fixture(scope="module")
def random_model(tiny_random_dir):
    """The tiny random model with an untied random lm_head, so greedy decoding wanders over the vocab
    (with tied weights it repeats one token, which would prove little)."""
    m = LocalModel(str(tiny_random_dir), allow_cpu=True, engine=True, constrain=False)
    torch.manual_seed(3)
    head = torch.nn.Linear(m.model.lm_head.in_features, m.model.lm_head.out_features, bias=False)
    torch.nn.init.normal_(head.weight, std=0.5)
    m.model.lm_head = head
    m.engine.head = head
    return m


def reference(m: LocalModel, prompt, n: int) -> list[int]:
    inputs = m.inputs(prompt)
    with torch.inference_mode():
        out = m.model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False)
    return out[0, inputs["input_ids"].shape[1] :].tolist()


def test_engine_inputs_equal_the_processors(random_model):
    m, eng = random_model, random_model.engine
    prompt = loop_prompt(get_space("computer_use"), "Log in", [], screen(1), m.profile)
    inputs = m.inputs(prompt)
    prep = eng.inputs.prepare(prompt.messages, prompt.tools, dict(m.profile.image_size))
    assert prep["ids"] == inputs["input_ids"][0].tolist()
    _, gh, gw, h, w = prep["grids"][0]
    assert [1, gh, gw] == inputs["image_grid_thw"][0].tolist()
    pixels, _ = eng.inputs.pixels(prompt.images[0], h, w)
    diff = (pixels.float() - inputs["pixel_values"]).abs()
    # GPU-style bicubic resize vs PIL's: the same picture, a few edge pixels off by a few levels
    assert diff.mean() < 1e-3 and diff.max() < 0.15 and (diff > 0.02).float().mean() < 0.01
    positions, _ = eng.inputs.rope_positions(prep["ids"], prep["grids"])
    ids = inputs["input_ids"]
    ref = m.model.model.get_rope_index(
        ids, (ids == 151655).int(), inputs["image_grid_thw"], None, attention_mask=inputs["attention_mask"]
    )[0]
    assert torch.equal(positions, ref[:, 0])


def test_engine_equals_generate_token_for_token_and_reuses_the_prefix(random_model):
    m, eng = random_model, random_model.engine
    assert eng.packed  # q/k/v and gate/up as one product each, as on the GPU
    space = get_space("computer_use")
    first = loop_prompt(space, "Open the inbox", [], screen(2), m.profile)
    want = reference(m, first, 24)
    assert len(set(want)) > 5  # the reply wanders: a real comparison
    out = eng.generate(first.messages, tools=first.tools, size=dict(m.profile.image_size), max_new_tokens=24)
    assert out.tokens == want

    # the next step: same system prompt, a history turn and a new screenshot
    second = loop_prompt(
        space, "Open the inbox", [HistoryItem(screen(2), out.text, "clicked")], screen(3), m.profile
    )
    want2 = reference(m, second, 24)
    out2 = eng.generate(
        second.messages, tools=second.tools, size=dict(m.profile.image_size), max_new_tokens=24
    )
    assert out2.tokens == want2
    system_tokens = len(m.processor.tokenizer.encode(second.messages[0]["content"][0]["text"]))
    assert out2.reused >= system_tokens  # the system prompt and tools were not computed again

    # a different instruction diverges early: still exact
    other = act_prompt(space, "Click Sign in", screen(4))
    assert eng.generate(
        other.messages, tools=other.tools, size=dict(m.profile.image_size), max_new_tokens=16
    ).tokens == reference(m, other, 16)


@pytest.mark.parametrize("space_name", ["computer_use", "mobile_use"])
def test_constrained_replies_always_parse_into_a_valid_action(random_model, space_name):
    _need("xgrammar", "bash scripts/install.sh (pip install --no-deps xgrammar apache-tvm-ffi)")
    m, eng = random_model, random_model.engine
    space = get_space(space_name)
    profile = QwenProfile()
    kinds = set()
    for seed in range(4):
        with torch.no_grad():  # a different random head each time: different replies
            torch.manual_seed(100 + seed)
            torch.nn.init.normal_(eng.head.weight, std=0.5)
        prompt = loop_prompt(space, "Do the task", [], screen(10 + seed), profile)
        out = eng.generate(
            prompt.messages,
            tools=prompt.tools,
            size=dict(m.profile.image_size),
            max_new_tokens=64,
            grammar=tool_call_grammar(space),
        )
        assert out.finish_reason == "stop", out.text
        parsed = parse_reply(out.text)
        action, _ = reply_to_action(parsed, space, (640, 400), divisor=space.grid)
        kinds.add(action.action)
        assert out.jumped > 0 and out.forward_passes < len(out.tokens)  # jump-forward saved passes
    assert kinds  # every reply became an action


def test_a_string_still_open_at_the_end_of_the_budget_is_closed_into_a_whole_call(random_model):
    """The grammar leaves typed text unbounded (a bounded repetition made masking take seconds a
    token): a model that would type forever gets its string closed near the budget's end, and the
    reply is still one whole call that becomes a type action."""
    _need("xgrammar", "bash scripts/install.sh (pip install --no-deps xgrammar apache-tvm-ffi)")
    from pixelpilot.agent.models.grammar import CLOSE_ROOM
    from pixelpilot.agent.qwen.constrain import RESERVE

    m, eng = random_model, random_model.engine
    tok = m.processor.tokenizer
    space = get_space("computer_use")
    opening = '<tool_call>\n{"name": "computer_use", "arguments": {"action": "type", "text": "'
    forced = tok.encode(opening, add_special_tokens=False)
    saved = eng.head.weight.detach().clone()
    try:
        with torch.no_grad():  # every logit equal: the argmax is the first token the grammar allows,
            eng.head.weight.zero_()  # inside a string a character that is not the quote, again and again
        prompt = act_prompt(space, "Type a note", screen(12))
        out = eng.generate(
            prompt.messages,
            tools=prompt.tools,
            size=dict(m.profile.image_size),
            max_new_tokens=16,  # free text up to 16 tokens (none here), then RESERVE for the call
            grammar=tool_call_grammar(space),
            forced=forced,
        )
        # no forced opening: the free text runs to max_new_tokens, then the call is started for it
        rambling = eng.generate(
            prompt.messages,
            tools=prompt.tools,
            size=dict(m.profile.image_size),
            max_new_tokens=40,
            grammar=tool_call_grammar(space),
        )
    finally:
        with torch.no_grad():
            eng.head.weight.copy_(saved)
    assert out.finish_reason == "stop", out.text[-80:]
    assert len(out.tokens) <= RESERVE + 16
    action, _ = reply_to_action(parse_reply(out.text), space, (640, 400), divisor=space.grid)
    assert action.action == "type" and len(set(action.text)) == 1 and '"' not in action.text
    assert len(action.text) >= RESERVE + 16 - CLOSE_ROOM - len(forced)  # it typed until the budget's end
    thought, call = rambling.text.split("<tool_call>")
    assert len(tok.encode(thought, add_special_tokens=False)) == 40 and rambling.finish_reason == "stop"
    reply_to_action(parse_reply(rambling.text), space, (640, 400), divisor=space.grid)


def test_local_backend_with_the_engine_gives_the_scripted_reply(tiny_scripted_dir):
    """LocalModel routes through the engine (constraints off here: the scripted weights only know
    their own tokenization) and returns the same reply as without it."""
    img = screen(5, (1280, 800))
    prompt = act_prompt(get_space("computer_use"), "Sign in", img)
    plain = LocalModel(str(tiny_scripted_dir), allow_cpu=True, engine=False).generate(prompt)
    fast_model = LocalModel(str(tiny_scripted_dir), allow_cpu=True, engine=True, constrain=False)
    fast = fast_model.generate(prompt)
    assert fast.text == plain.text == SIGN_IN_SCRIPT.replace("<tool_call>", "<tool_call>")
    assert fast.image_sizes == plain.image_sizes and fast.tokens_in == plain.tokens_in
    again = fast_model.generate(prompt)
    assert again.text == plain.text and again.extra["engine"]["reused_tokens"] == again.tokens_in - 1


def test_a_prompt_longer_than_the_cache_grows_it_and_stays_exact(random_model):
    from pixelpilot.agent.models.engine import Engine

    m = random_model
    eng = Engine(m.model, m.processor, max_len=1024)
    prompt = loop_prompt(get_space("computer_use"), "Open the inbox", [], screen(7), m.profile)
    out = eng.generate(
        prompt.messages, tools=prompt.tools, size=dict(m.profile.image_size), max_new_tokens=12
    )
    assert eng.max_len >= out.tokens_in + 12 and out.tokens == reference(m, prompt, 12)


def test_fused_kernels_and_packed_projections_give_the_models_logits_and_are_swapped_back(tiny_random_dir):
    """The engine's fused norm/rotary/activation functions (torch.compile; on the GPU through Triton)
    compute what transformers' modules compute; so does each layer's q/k/v and gate/up as one matrix
    product each, its weights made row slices of one tensor (no copy kept); alone and together, and
    the modules are as they were afterwards."""
    from pixelpilot.agent.models.fused import fused_modules, pack_projections, packed_projections

    m = LocalModel(str(tiny_random_dir), allow_cpu=True, engine=False)
    prompt = act_prompt(get_space("computer_use"), "Sign in", screen(9))
    inputs = m.inputs(prompt)
    layers = m.model.model.language_model.layers

    def last8() -> torch.Tensor:  # the head over the last 8 positions only (all 4k: 2.5 GB of logits)
        return m.model(**inputs, logits_to_keep=8).logits[0]

    with torch.inference_mode():
        before = last8()
        with fused_modules(m.model):
            fused = last8()
        assert torch.allclose(before, fused, atol=1e-5)
        assert torch.equal(before, last8())
        assert pack_projections(m.model) == 2 * len(layers)
        assert pack_projections(m.model) == 0  # once per model
        attn, mlp = layers[0].self_attn, layers[0].mlp
        whole = attn.q_proj.weight.data.untyped_storage().data_ptr()
        assert attn.k_proj.weight.data.untyped_storage().data_ptr() == whole
        assert attn.v_proj.weight.data.untyped_storage().data_ptr() == whole
        assert (
            mlp.up_proj.weight.untyped_storage().data_ptr()
            == mlp.gate_proj.weight.untyped_storage().data_ptr()
        )
        calls = []
        with packed_projections(m.model):
            hook = attn.k_proj.register_forward_hook(lambda *a: calls.append("k"))
            packed = last8()
            with fused_modules(m.model):
                both = last8()
            hook.remove()
        after = last8()
    assert calls  # the modules are still called (hooks see them); only the product is shared
    assert torch.allclose(before, packed, atol=1e-5) and torch.allclose(before, both, atol=1e-5)
    assert torch.allclose(before, after, atol=1e-6)
    assert "forward" not in attn.q_proj.__dict__ and "forward" not in mlp.__dict__


def test_the_vision_tower_fed_grid_constants_gives_the_models_features(random_model):
    """The engine hands the vision tower what it would compute from the grid (the inputs its CUDA
    graphs replay with), and runs its patch embedding as one matrix product and its MLPs with the
    GELU in the product's epilogue; the features are the model's own."""
    from pixelpilot.agent.models.engine_vision import fewer_kernels

    m, eng = random_model, random_model.engine
    visual = m.model.model.visual
    with fewer_kernels(visual):  # every block's MLP and the patch embedding: the tiny model's layout
        assert "forward" in visual.patch_embed.__dict__
        assert all("forward" in b.mlp.__dict__ for b in visual.blocks)
    assert "forward" not in visual.patch_embed.__dict__  # transformers' own again
    inputs = m.inputs(act_prompt(get_space("computer_use"), "Sign in", screen(9)))
    grid = tuple(inputs["image_grid_thw"][0].tolist())
    assert eng.vision.constants(grid) is not None  # this transformers takes them: the graphed path
    with torch.inference_mode():
        ref = m.model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])
        got, deep = eng.vision(inputs["pixel_values"], grid, graphs=eng.graphs_on)
    assert torch.allclose(torch.cat(list(ref.pooler_output)), got, atol=1e-5)
    assert len(deep) == len(ref.deepstack_features) > 0
    for want, have in zip(ref.deepstack_features, deep, strict=True):
        assert torch.allclose(torch.cat(list(want)), have, atol=1e-5)
    # under the engine's fused functions (its graph captures), the rotary embedding of queries and
    # keys in one call of the fused rotary, laid out for it: the same features
    import importlib

    from pixelpilot.agent.models.fused import fused_modules

    module = importlib.import_module(type(visual).__module__)
    original = module.apply_rotary_pos_emb_vision
    with fused_modules(m.model, "plain"), torch.inference_mode():
        with fewer_kernels(visual):
            assert module.apply_rotary_pos_emb_vision is not original
        fused, deep = eng.vision(inputs["pixel_values"], grid, graphs=False)
    assert module.apply_rotary_pos_emb_vision is original
    assert torch.allclose(torch.cat(list(ref.pooler_output)), fused, atol=1e-5)
    for want, have in zip(ref.deepstack_features, deep, strict=True):
        assert torch.allclose(torch.cat(list(want)), have, atol=1e-5)


def test_two_screenshots_in_one_prompt_stay_exact(random_model):
    """Recent steps' screenshots ride along in the prompt: several images in the part computed."""
    m, eng = random_model, random_model.engine
    space = get_space("computer_use")
    history = [HistoryItem(screen(11), '<tool_call>\n{"name": "computer_use"}\n</tool_call>', "clicked")]
    prompt = loop_prompt(
        space, "Open the inbox", history, screen(12), QwenProfile(history="window", history_images=1)
    )
    assert len(prompt.images) == 2
    out = eng.generate(
        prompt.messages, tools=prompt.tools, size=dict(m.profile.image_size), max_new_tokens=16
    )
    assert out.tokens == reference(m, prompt, 16)


def test_a_sliding_history_sends_each_screenshot_through_the_vision_tower_once(random_model):
    """A goal loop sends its last screenshots again every step, at new positions once the window
    slides: their kept vision features are used (exact: they do not depend on the position)."""
    m, eng = random_model, random_model.engine
    space = get_space("computer_use")
    profile = QwenProfile(history="window", history_images=2)
    reply = '<tool_call>\n{"name": "computer_use"}\n</tool_call>'
    shots = [screen(30 + k) for k in range(5)]
    eng.reset_stats()
    history: list[HistoryItem] = []
    for k in range(4):
        prompt = loop_prompt(space, "Open the inbox", history, shots[k], profile)
        out = eng.generate(
            prompt.messages, tools=prompt.tools, size=dict(m.profile.image_size), max_new_tokens=8
        )
        assert out.tokens == reference(m, prompt, 8), f"step {k + 1}"
        history.append(HistoryItem(shots[k], reply, f"step {k + 1}"))
    # steps 2 and 3 extend the cached prefix (one new screenshot each); step 4 slides the window (the
    # first screenshot becomes text, everything after the system prompt moves): its two older
    # screenshots are recomputed in the prefill but not in the vision tower (6 runs without that)
    assert eng.stats["vision_runs"] == 4 and eng.stats["vision_kept"] == 2


def test_a_screenshot_is_named_by_its_encoded_bytes_and_a_changed_copy_is_not(random_model):
    """A frame decoded from a screen's JPEG/PNG bytes is named by those bytes (cheap); the same bytes
    decoded again get the same name, a copy drawn on gets its pixels hashed."""
    import io

    from pixelpilot.drivers.base import Screen

    eng = random_model.engine
    buf = io.BytesIO()
    screen(40).save(buf, "PNG")
    data = buf.getvalue()
    a, b = Screen(data, 640, 400).image, Screen(data, 640, 400).image
    assert a is not b and eng.inputs._digest(a, "r") == eng.inputs._digest(b, "r")
    marked = a.copy()
    ImageDraw.Draw(marked).rectangle((0, 0, 10, 10), fill="red")
    assert eng.inputs._digest(marked, "r") not in (
        eng.inputs._digest(a, "r"),
        eng.inputs._digest(a.copy(), "r"),
    )
    assert eng.inputs._digest(a.copy(), "r") == eng.inputs._digest(screen(40), "r")  # pixels, same picture


@pytest.mark.parametrize(
    ("heads", "kv_heads", "q"), [(16, 8, 1), (32, 8, 1), (32, 8, 16), (32, 8, 128), (4, 4, 8)]
)
def test_grouped_attention_equals_sdpa_with_repeated_heads(heads, kv_heads, q):
    """The engine's attention reads each key/value head once; it must give what transformers' sdpa
    path gives after copying them per query head."""
    import torch
    from transformers.integrations.sdpa_attention import repeat_kv

    from pixelpilot.agent.models.attention import grouped_sdpa

    torch.manual_seed(0)
    length, d = 300, 16
    query = torch.randn(1, heads, q, d)
    key, value = torch.randn(1, kv_heads, length, d), torch.randn(1, kv_heads, length, d)
    start = length - q - 7  # a causal mask over a cache bucket, with unused positions past the end
    where = start + torch.arange(q)
    mask = (torch.arange(length)[None, :] <= where[:, None])[None, None]
    got, _ = grouped_sdpa(None, query, key, value, mask, scaling=0.25)
    g = heads // kv_heads
    want = torch.nn.functional.scaled_dot_product_attention(
        query, repeat_kv(key, g), repeat_kv(value, g), attn_mask=mask, scale=0.25
    ).transpose(1, 2)
    assert got.shape == (1, q, heads, d)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_grouped_attention_lays_a_mask_out_once_per_pass_and_follows_it_when_it_changes():
    """Every layer of a pass gets the same mask: laid out once; the engine rewrites it in place for
    the next pass, and the next pass must see the new one."""
    import torch
    from transformers.integrations.sdpa_attention import repeat_kv

    from pixelpilot.agent.models.attention import grouped_sdpa

    torch.manual_seed(1)
    query = torch.randn(1, 16, 1, 16)
    key, value = torch.randn(1, 8, 64, 16), torch.randn(1, 8, 64, 16)
    mask = (torch.arange(64) < 20)[None, None, None, :].clone()

    def want() -> torch.Tensor:
        return torch.nn.functional.scaled_dot_product_attention(
            query, repeat_kv(key, 2), repeat_kv(value, 2), attn_mask=mask, scale=0.25
        ).transpose(1, 2)

    from types import SimpleNamespace

    def layer(i: int) -> torch.Tensor:
        return grouped_sdpa(SimpleNamespace(layer_idx=i), query, key, value, mask, scaling=0.25)[0]

    for i in range(3):  # three layers of one pass
        torch.testing.assert_close(layer(i), want())
    mask[..., 20:40] = True  # the next pass: a longer cache, the same tensor
    for i in range(3):
        torch.testing.assert_close(layer(i), want())


@pytest.fixture
def interpreted_kernels():
    """The engine's Triton kernels, run by Triton's interpreter on the CPU (tests/conftest.py)."""
    import os

    import triton  # a test dependency: these tests never skip

    from pixelpilot.agent.models import kernels

    assert os.environ.get("TRITON_INTERPRET") == "1" and triton.__version__ >= "3"
    assert kernels.available()
    return kernels


@pytest.mark.parametrize(
    ("heads", "kv_heads", "q", "start"),
    [(16, 8, 1, 0), (16, 8, 1, 300), (32, 8, 1, 767), (16, 8, 5, 509), (32, 8, 64, 200), (16, 8, 200, 90)],
)
def test_triton_attention_reads_the_filled_cache_and_equals_sdpa(
    interpreted_kernels, heads, kv_heads, q, start
):
    """The kernels attend over the whole cache buffer and stop where each token's view ends: the
    same as sdpa over the visible part, whatever the positions past it hold (decode, a jump-forward
    chunk, a prefill; slices of the cache that begin past the end and slices cut mid-way)."""
    from transformers.integrations.sdpa_attention import repeat_kv

    torch.manual_seed(q + start)
    length, d = 1024, 16
    query = torch.randn(1, q, heads, d).transpose(1, 2)  # transformers' layout: strided, not contiguous
    key, value = torch.randn(1, kv_heads, length, d), torch.randn(1, kv_heads, length, d)
    key[:, :, start + q :] = 1e4  # what the cache holds past the pass: never read
    value[:, :, start + q :] = float("nan")
    got = interpreted_kernels.attend(query, key, value, torch.tensor(start), 0.25)
    end = start + q
    mask = (torch.arange(end)[None, :] <= (start + torch.arange(q))[:, None])[None, None]
    g = heads // kv_heads
    want = torch.nn.functional.scaled_dot_product_attention(
        query, repeat_kv(key[:, :, :end], g), repeat_kv(value[:, :, :end], g), attn_mask=mask, scale=0.25
    ).transpose(1, 2)
    assert got.shape == (1, q, heads, d)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("decoder", [True, False], ids=["own-decoder", "transformers-decoder"])
def test_the_engine_with_triton_attention_equals_generate_token_for_token(
    random_model, interpreted_kernels, monkeypatch, decoder
):
    """The engine as it runs on a GPU (attention over the whole cache, each pass reading what is
    filled) gives ``generate``'s tokens, the prefix reused: through its own decoder forward (no mask,
    residual adds joined to the norms — the fused add-norm as under its graph captures for the first
    prompt, the modules' own for the second — deepstack features added after the first layers) and
    through transformers' with the kernels as its attention."""
    from pixelpilot.agent.models import engine as engine_module

    m, eng = random_model, random_model.engine
    assert interpreted_kernels.decoder_ready(m.model) and eng.packed
    assert m.model.config.vision_config.deepstack_visual_indexes  # the prefill adds deepstack features
    monkeypatch.setattr(eng, "kernels", True)
    monkeypatch.setattr(eng, "decoder", decoder)
    calls = []
    original = engine_module.decoder_forward
    monkeypatch.setattr(
        engine_module, "decoder_forward", lambda *a, **k: calls.append(a[2].shape[1]) or original(*a, **k)
    )
    # bigger tiles than on a GPU: the interpreter's time goes by the tile, not by its size (the
    # kernels at their real tiles are checked above)
    monkeypatch.setattr(interpreted_kernels, "PREFILL_BLOCK_N", 512)
    monkeypatch.setattr(interpreted_kernels, "SPLIT_BLOCK_N", 512)
    monkeypatch.setattr(interpreted_kernels, "PREFILL_ROWS", 512)
    monkeypatch.setattr(interpreted_kernels, "PREPARE_TOKENS", 512)
    eng._held = []  # nothing the other tests left in the cache is reused
    space = get_space("computer_use")
    first = loop_prompt(space, "Open the inbox", [], screen(5), m.profile)
    from pixelpilot.agent.models.fused import fused_modules

    with fused_modules(m.model, "plain"):  # as in a graph capture: the residual add joined to the norm
        out = eng.generate(
            first.messages, tools=first.tools, size=dict(m.profile.image_size), max_new_tokens=12
        )
    assert out.tokens == reference(m, first, 12)
    if decoder:  # every pass went through it: the prefill, then one token (or a forced run) a pass
        assert len(calls) == out.forward_passes and calls[0] >= out.tokens_in
    else:
        assert not calls and eng.kv.view == eng.max_len  # the passes attended over the whole buffer
    second = loop_prompt(
        space, "Open the inbox", [HistoryItem(screen(5), out.text, "clicked")], screen(6), m.profile
    )
    out2 = eng.generate(
        second.messages, tools=second.tools, size=dict(m.profile.image_size), max_new_tokens=12
    )
    assert out2.tokens == reference(m, second, 12)
    assert out2.reused > 0
    eng._held = []


@pytest.mark.parametrize(("q", "start"), [(1, 0), (1, 77), (5, 30), (40, 3)])
def test_triton_prepare_norms_rotates_and_writes_the_cache_as_transformers_does(
    interpreted_kernels, q, start
):
    """The kernel that replaces q_norm, k_norm, the rotary embedding and the cache writes of a layer:
    queries returned, keys and values at their cache positions, nothing else of the cache touched."""
    from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLTextRMSNorm, apply_rotary_pos_emb

    torch.manual_seed(q)
    heads, kv_heads, d, length = 4, 2, 32, 128
    qkv = torch.randn(1, q, (heads + 2 * kv_heads) * d)
    norms = [Qwen3VLTextRMSNorm(d, eps=1e-6) for _ in range(2)]
    for n in norms:
        torch.nn.init.normal_(n.weight)
    angles = torch.randn(1, q, d // 2).repeat(1, 1, 2)
    cos, sin = angles.cos(), angles.sin()
    k_cache, v_cache = torch.zeros(1, kv_heads, length, d), torch.zeros(1, kv_heads, length, d)
    query = interpreted_kernels.prepare(
        qkv,
        norms[0].weight,
        norms[1].weight,
        1e-6,
        cos,
        sin,
        k_cache,
        v_cache,
        torch.tensor(start),
        heads,
        kv_heads,
    )
    qs, ks, vs = qkv.split([heads * d, kv_heads * d, kv_heads * d], dim=-1)
    wq = norms[0](qs.view(1, q, heads, d)).transpose(1, 2)
    wk = norms[1](ks.view(1, q, kv_heads, d)).transpose(1, 2)
    wq, wk = apply_rotary_pos_emb(wq, wk, cos, sin)
    torch.testing.assert_close(query, wq.transpose(1, 2))
    torch.testing.assert_close(k_cache[:, :, start : start + q], wk)
    torch.testing.assert_close(v_cache[:, :, start : start + q], vs.view(1, q, kv_heads, d).transpose(1, 2))
    outside = torch.ones(length, dtype=torch.bool)
    outside[start : start + q] = False
    assert not k_cache[:, :, outside].any() and not v_cache[:, :, outside].any()


def test_the_engine_falls_back_to_sdpa_when_its_kernels_do_not_run_here(
    random_model, interpreted_kernels, monkeypatch
):
    """The kernels are tried once when the engine starts (a GPU or Triton build they do not compile
    for would otherwise fail every step): they run, or the engine says why and attends with sdpa."""
    from pixelpilot.agent.models.engine import Engine

    m = random_model
    ok = Engine(m.model, m.processor, graphs=False, kernels=True)  # the interpreter runs them
    assert ok.kernels and ok.kernels_error is None

    def broken(*args, **kwargs):
        raise RuntimeError("no kernel image is available for execution on the device")

    monkeypatch.setattr(interpreted_kernels, "attend", broken)
    eng = Engine(m.model, m.processor, graphs=False, kernels=True)
    assert not eng.kernels
    assert eng.kernels_error == "RuntimeError: no kernel image is available for execution on the device"


def test_warm_up_for_a_screen_leaves_the_first_step_nothing_to_start(random_model):
    """``LocalModel.warm_up(screen, space)``: the cache is sized for the history's longest prompt and
    already holds the system prompt with the tool's schema, so a run's first step computes only its
    own part (its screenshot, its goal) — as every later step does."""
    m, eng = random_model, random_model.engine
    eng._held = []
    m.warm_up((640, 400), "computer_use")
    grid_tokens = (400 // 32) * (640 // 32)
    assert eng.max_len >= m.profile.history_max * grid_tokens
    prompt = loop_prompt(get_space("computer_use"), "Open the inbox", [], screen(21), m.profile)
    ids = m.inputs(prompt)["input_ids"][0].tolist()
    start = m.processor.tokenizer.convert_tokens_to_ids("<|im_start|>")
    user_turn = [i for i, t in enumerate(ids) if t == start][1]  # the system turn ends there
    assert user_turn > 100  # the tool's schema
    reply = m.generate(prompt)
    assert reply.extra["engine"]["reused_tokens"] >= user_turn
    eng._held = []
