"""The engine's inputs: the chat rendered and tokenized with image pads expanded, each image resized,
normalised and patchified on the model's device (the processor's layout, without its CPU work), and
Qwen3-VL's 3-axis rope positions — everything ``Engine`` needs before a forward pass."""

from __future__ import annotations

import hashlib
import warnings
import weakref
from typing import Any

import numpy as np

from pixelpilot.drivers.base import SOURCE_DIGEST

__all__ = ["Grid", "PromptInputs", "stop_ids"]

Grid = tuple[int, int, int, int, int]
"""One image: (t, patch rows, patch columns, resized height, resized width)."""


def stop_ids(model: Any, tokenizer: Any) -> set[int]:
    """The tokens that end a reply: the model's generation config's, else the tokenizer's end."""
    gc = getattr(model, "generation_config", None)
    ids = getattr(gc, "eos_token_id", None) if gc is not None else None
    if ids is None:
        ids = tokenizer.eos_token_id
    return set(ids if isinstance(ids, list) else [ids]) - {None}


def _rgb(image: Any) -> np.ndarray:
    """A picture's pixels as a contiguous (H, W, 3) uint8 array (PIL images through the array
    interface: a third of ``tobytes``' time)."""
    if isinstance(image, np.ndarray):
        return np.ascontiguousarray(image)
    return np.ascontiguousarray(np.asarray(image if image.mode == "RGB" else image.convert("RGB")))


class PromptInputs:
    def __init__(self, config: Any, processor: Any, device: Any, dtype: Any) -> None:
        import torch

        self.processor, self.tokenizer = processor, processor.tokenizer
        self.device, self.dtype = device, dtype
        self.image_token = int(config.image_token_id)
        self.merge = int(config.vision_config.spatial_merge_size)
        self.patch = int(config.vision_config.patch_size)
        self.temporal = int(config.vision_config.temporal_patch_size)
        ip = processor.image_processor
        mean, std = getattr(ip, "image_mean", [0.5] * 3), getattr(ip, "image_std", [0.5] * 3)
        self._mean = torch.tensor(mean, device=device).view(3, 1, 1)
        self._std = torch.tensor(std, device=device).view(3, 1, 1)
        self._encoded: dict[str, list[int]] = {}
        self._digests: dict[int, tuple[Any, str, str]] = {}

    def image_size(self, width: int, height: int, size: dict[str, int] | None) -> tuple[int, int]:
        """(height, width) the processor would resize to (smart_resize with the image budget)."""
        try:  # transformers 5.2x keeps a torchvision-free copy beside the torchvision processor
            from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize
        except ImportError:
            from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

        ip = self.processor.image_processor
        budget = dict(getattr(ip, "size", None) or {})
        budget.update(size or {})
        return smart_resize(
            height,
            width,
            factor=self.patch * self.merge,
            min_pixels=int(budget.get("shortest_edge", 56 * 56)),
            max_pixels=int(budget.get("longest_edge", 28 * 28 * 1280)),
        )

    def pixels(self, image: Any, height: int, width: int) -> Any:
        """Resize, normalise and patchify one picture (PIL image or (H, W, 3) uint8 array) on the
        model's device: the processor's (grid_t·grid_h·grid_w, 3·2·16·16) layout."""
        import torch

        with warnings.catch_warnings():  # a PIL image's array is read-only; it is only copied from
            warnings.simplefilter("ignore", UserWarning)
            x = torch.from_numpy(_rgb(image)).to(self.device, non_blocking=True)
        x = x.permute(2, 0, 1)[None].float()
        if (x.shape[2], x.shape[3]) != (height, width):
            x = torch.nn.functional.interpolate(
                x, size=(height, width), mode="bicubic", antialias=True, align_corners=False
            )
        x = ((x[0] / 255.0) - self._mean) / self._std  # (3, H, W)
        m, ps, tp = self.merge, self.patch, self.temporal
        gh, gw = height // ps, width // ps
        x = x[None].expand(tp, -1, -1, -1)  # one picture = tp identical frames
        x = x.reshape(1, tp, 3, gh // m, m, ps, gw // m, m, ps)
        x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
        return x.reshape(gh * gw, 3 * tp * ps * ps).to(self.dtype), (1, gh, gw)

    def _digest(self, image: Any, resize: str) -> str:
        """What identifies a picture's content, computed once per picture object (a goal loop sends
        its recent screenshots again every step): the sha1 of the encoded frame it was decoded from
        when the screen recorded one (``drivers.base.SOURCE_DIGEST``), else of its pixels."""
        known = self._digests.get(id(image))
        if known is not None and known[0]() is image and known[1] == resize:
            return known[2]
        source = getattr(image, SOURCE_DIGEST, None)
        if source:
            h = hashlib.sha1(f"{source}{image.size}{image.mode}{resize}".encode())
        else:
            a = _rgb(image)
            h = hashlib.sha1(a.data)
            h.update(f"{a.shape}{resize}".encode())
        digest = h.hexdigest()
        try:
            ref = weakref.ref(image)
            weakref.finalize(image, self._digests.pop, id(image), None)
        except TypeError:  # not weak-referenceable (a numpy array): not remembered
            return digest
        self._digests[id(image)] = (ref, resize, digest)
        return digest

    def _encode(self, text: str) -> list[int]:
        """Token ids of one stretch of text between images, remembered: from step to step the system
        prompt with its tools schema (most of the text) comes back unchanged."""
        ids = self._encoded.get(text)
        if ids is None:
            ids = self.tokenizer.encode(text, add_special_tokens=False)
            if len(self._encoded) >= 32:
                self._encoded.pop(next(iter(self._encoded)))
            self._encoded[text] = ids
        return list(ids)

    def prepare(
        self, messages: list[dict[str, Any]], tools: Any, size: dict[str, int] | None
    ) -> dict[str, Any]:
        """Token ids (image pads expanded), image pixels on the device, and per-token image digests."""
        text = self.processor.apply_chat_template(
            messages, tools=tools, tokenize=False, add_generation_prompt=True
        )
        images = [
            c["image"]
            for m in messages
            for c in m.get("content", [])
            if isinstance(c, dict) and c.get("type") == "image"
        ]
        pad = self.tokenizer.convert_ids_to_tokens(self.image_token)
        parts = text.split(pad)
        if len(parts) - 1 != len(images):
            raise ValueError(f"the chat template placed {len(parts) - 1} images for {len(images)} given")
        grids, digests = [], []
        for im in images:
            h, w = self.image_size(im.width, im.height, size)
            grids.append((1, h // self.patch, w // self.patch, h, w))
            digests.append(self._digest(im, f"{h}x{w}"))
        ids: list[int] = []
        owner: list[str | None] = []
        for k, part in enumerate(parts):
            piece = self._encode(part)
            ids += piece
            owner += [None] * len(piece)
            if k < len(images):
                _, gh, gw, _, _ = grids[k]
                n = gh * gw // (self.merge**2)
                ids += [self.image_token] * n
                owner += [digests[k]] * n
        return {"ids": ids, "owner": owner, "images": images, "grids": grids, "digests": digests}

    def rope_positions(self, ids: list[int], grids: list[Grid]) -> Any:
        """Qwen3-VL's 3-axis positions (3, N): text advances all three axes together; an image's
        tokens take (t, row, col) offsets from where it starts; the text after it resumes at max + 1."""
        import torch

        n = len(ids)
        out = np.empty((3, n), dtype=np.int64)
        images = np.flatnonzero(np.asarray(ids) == self.image_token)
        pos, i = 0, 0
        for _, gh, gw, _, _ in grids:
            j = int(np.searchsorted(images, i))
            if j == len(images):
                break
            at = int(images[j])
            out[:, i:at] = pos + np.arange(at - i)  # the text before the image
            pos += at - i
            h, w = gh // self.merge, gw // self.merge
            out[0, at : at + h * w] = pos
            out[1, at : at + h * w] = pos + np.repeat(np.arange(h), w)
            out[2, at : at + h * w] = pos + np.tile(np.arange(w), h)
            pos += max(h, w)
            i = at + h * w
        out[:, i:] = pos + np.arange(n - i)
        pos += n - i
        return torch.from_numpy(out), pos
