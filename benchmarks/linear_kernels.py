"""The text decoder's matrix products alone, on the GPU: cuBLAS (bf16) against the engine's own Triton
kernels (``agent.models.linear``) over bf16 and FP8 weights, for Qwen3-VL's 2B and 4B decoder shapes.

Each form runs as the engine runs it: a whole pass's products (q/k/v packed, o, gate/up packed, down;
every layer its own weights, so nothing is left in L2 from the layer before) captured in one CUDA
graph, replayed. Reported: ms per pass, the weight bytes read and the rate (TB/s), for decode (1 row),
jump-forward chunks (2–64 rows) and a prefill (1,152 rows: ms and TFLOP/s); a tile sweep for
``matvec``; and how far FP8 outputs are from bf16's (relative error, random normal weights).

    python benchmarks/linear_kernels.py --out $OUT/linear_kernels_h200.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from _timing import graph_ms

MODELS = {  # hidden, intermediate, query heads, key/value heads, layers (head dim 128)
    "2b": (2048, 6144, 16, 8, 28),
    "4b": (2560, 9728, 32, 8, 36),
}


def shapes(model: str) -> list[tuple[str, int, int]]:
    hidden, inter, h, kv, _ = MODELS[model]
    return [
        ("qkv", (h + 2 * kv) * 128, hidden),
        ("o", hidden, h * 128),
        ("gate_up", 2 * inter, hidden),
        ("down", hidden, inter),
    ]


def bench(model: str, L, dev) -> dict:  # noqa: N803
    """The measurements for one model's shapes."""
    layers = MODELS[model][4]
    sh = shapes(model)
    bf = [
        [torch.randn(n, k, device=dev, dtype=torch.bfloat16) * 0.02 for _, n, k in sh] for _ in range(layers)
    ]
    f8 = [[L.quantize_fp8(w) for w in layer] for layer in bf]
    weight_bytes = sum(n * k for _, n, k in sh) * layers
    res: dict = {"layers": layers, "shapes": sh, "bf16_bytes_per_pass": weight_bytes * 2}

    def xs(rows: int) -> list[torch.Tensor]:
        return [torch.randn(rows, k, device=dev, dtype=torch.bfloat16) for _, _, k in sh]

    def pass_fn(ws: list, x: list, how: str, only: int | None = None):
        def run() -> None:
            for layer in ws:
                for j, w in enumerate(layer):
                    if only is not None and j != only:
                        continue
                    if how == "cublas":
                        torch.nn.functional.linear(x[j], w)
                    else:
                        L.project(x[j], w, matvec_bf16=how == "triton_bf16")

        return run

    def form(how: str, rows: int, tile=None, only: int | None = None) -> float:
        ws = f8 if how.endswith("fp8") else bf
        saved = (L.MATVEC_TILE, L.MATMUL_TILE)
        if tile is not None:
            if rows <= L.MATVEC_ROWS:
                L.MATVEC_TILE = tile
            else:
                L.MATMUL_TILE = tile
        try:
            return graph_ms(pass_fn(ws, xs(rows), how, only))
        finally:
            L.MATVEC_TILE, L.MATMUL_TILE = saved

    # tile sweep for a decode pass (1 row), per shape and whole pass
    sweep = []
    for tile in [
        (4, 512, 4),
        (8, 256, 4),
        (8, 512, 4),
        (8, 512, 8),
        (16, 256, 4),
        (16, 512, 8),
        (4, 1024, 4),
        (8, 1024, 8),
        (2, 1024, 4),
    ]:
        for how in ("triton_bf16", "triton_fp8"):
            per = [form(how, 1, tile, only=j) for j in range(len(sh))]
            sweep.append({"tile": tile, "how": how, "per_shape_ms": per, "pass_ms": form(how, 1, tile)})
            print(model, how, tile, [round(p, 3) for p in per], round(sweep[-1]["pass_ms"], 3), flush=True)
    res["matvec_sweep"] = sweep
    res["cublas_per_shape_ms"] = [form("cublas", 1, only=j) for j in range(len(sh))]
    print(model, "cublas per shape", [round(p, 3) for p in res["cublas_per_shape_ms"]], flush=True)
    table = []
    for rows in (1, 2, 4, 8, 16, 32, 64, 1152):
        row = {"rows": rows}
        for how in ("cublas", "triton_bf16", "triton_fp8"):
            if how == "triton_bf16" and rows > L.MATVEC_ROWS:
                continue
            ms = form(how, rows)
            nbytes = weight_bytes * (1 if how.endswith("fp8") else 2)
            row[how] = {"ms": ms, "tb_s": nbytes / ms / 1e9, "tflop_s": 2 * rows * weight_bytes / ms / 1e9}
        table.append(row)
        print(model, row, flush=True)
    res["passes"] = table
    # FP8 against bf16: relative error of the outputs (random normal weights and inputs)
    x = xs(1)
    errs = []
    for j, (name, _, _) in enumerate(sh):
        want = torch.nn.functional.linear(x[j], bf[0][j]).float()
        got = L.project(x[j], f8[0][j]).float()
        errs.append({"shape": name, "rel_err": float((got - want).norm() / want.norm())})
    res["fp8_rel_err"] = errs
    # the products on the tensor cores (_linear.matvec_t)
    x1 = xs(1)
    dot = []
    for mode in (0, 1, 2):
        ws = bf if mode == 0 else f8
        for bn, bk, warps, stages in [
            (16, 256, 4, 4),
            (16, 512, 4, 3),
            (32, 256, 4, 4),
            (32, 512, 4, 3),
            (64, 256, 4, 4),
            (64, 128, 4, 6),
        ]:

            def run(ws=ws, mode=mode, bn=bn, bk=bk, warps=warps, stages=stages) -> None:
                for layer in ws:
                    for j, w in enumerate(layer):
                        data, scale = (w, w) if mode == 0 else (w.data, w.scale)
                        L.run_t(x1[j], data, scale, mode, bn, bk, warps, stages)

            try:
                ms = graph_ms(run)
            except Exception as exc:  # a tile Triton cannot build
                dot.append({"mode": mode, "tile": (bn, bk, warps, stages), "error": str(exc)[:200]})
                print(model, "dot", mode, (bn, bk, warps, stages), "error", str(exc)[:200], flush=True)
                continue
            nbytes = weight_bytes * (2 if mode == 0 else 1)
            dot.append(
                {"mode": mode, "tile": (bn, bk, warps, stages), "pass_ms": ms, "tb_s": nbytes / ms / 1e9}
            )
            print(
                model,
                "dot",
                mode,
                (bn, bk, warps, stages),
                round(ms, 3),
                round(nbytes / ms / 1e9, 2),
                flush=True,
            )
    for mode in (0, 1, 2):
        w = bf[0][2] if mode == 0 else f8[0][2]
        data, scale = (w, w) if mode == 0 else (w.data, w.scale)
        got = L.run_t(x1[2], data, scale, mode, 32, 256, 4, 4).float()
        want = torch.nn.functional.linear(x1[2], bf[0][2]).float()
        dot.append({"mode": mode, "rel_err_gate_up": float((got - want).norm() / want.norm())})
        print(model, "dot err", mode, dot[-1], flush=True)
    res["dot"] = dot
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--models", default="2b,4b")
    args = ap.parse_args()
    import _linear as L

    dev = torch.device("cuda")
    result: dict = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "command": " ".join(sys.argv),
    }
    import triton

    result["triton"] = triton.__version__
    for model in args.models.split(","):
        result[model] = bench(model, L, dev)
        torch.cuda.empty_cache()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
