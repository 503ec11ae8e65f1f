"""Export GLM-4.5V's vision tower to ONNX for Folio (spec §2.2, §5.3).

Run with the pinned stack of ``workers/glm45v/tests/fixtures/requirements.txt``:

    .venv-glm/bin/python workers/glm45v/scripts/export_vision_onnx.py MODEL_DIR [--dtype fp32|fp16]
        [--out PATH] [--external-data auto|always|never] [--check]

MODEL_DIR is a checkpoint directory (zai-org/GLM-4.5V, GLM-4.5V-FP8 or the tiny test fixture). Only the
``model.visual.*`` tensors are read from the safetensors shards, so the 108B text weights are never
loaded. The default output is ``MODEL_DIR/vision.onnx`` (fp32) or ``MODEL_DIR/vision.fp16.onnx``.

Graph contract (Folio computes every input in Rust, ``workers/glm45v/src/vision/inputs.rs``):

    patches     f32 [N, C*T*P*P]   pixel_values rows (merge-block order, as the processor writes them)
    rope_cos    f32 [N, head_dim]  2-D rotary cos (row angles then column angles, duplicated)
    rope_sin    f32 [N, head_dim]
    pos_idx     i64 [N, 16]        bicubic taps into the flattened learned position table
    pos_w       f32 [N, 16]        their weights (Keys kernel a = -0.75, border clamp)
    segment_ids i64 [N]            attention segment of each patch (one per image / video frame)
 -> embeddings  f32 [N/4, out_hidden_size]

The position-embedding interpolation and the rotary tables are inputs because ONNX GridSample is not
PyTorch's ``grid_sample`` (bicubic differs) and is CPU-only in ORT's CUDA EP. Several images run in one
call: patches attend only within their segment (an additive block mask built from ``segment_ids``).
The fp16 export keeps transformers' fp32 islands (RMSNorm statistics, rotary, softmax, position
interpolation); inputs and output stay f32 so callers need not convert.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from transformers import Glm4vMoeConfig
from transformers.models.glm4v_moe.modeling_glm4v_moe import Glm4vMoeVisionModel

FORMAT = "folio-glm45v-vision/1"
INPUTS = ["patches", "rope_cos", "rope_sin", "pos_idx", "pos_w", "segment_ids"]
OUTPUTS = ["embeddings"]
EXTERNAL_DATA_BYTES = 1 << 30  # `auto`: weights go to a side file above this size (protobuf limit 2 GiB)


def load_vision(model_dir: Path, dtype: torch.dtype) -> Glm4vMoeVisionModel:
    """The vision tower of a checkpoint, with only the ``model.visual.*`` weights read."""
    config = Glm4vMoeConfig.from_pretrained(str(model_dir))
    vcfg = config.vision_config
    vcfg._attn_implementation = "eager"
    model = Glm4vMoeVisionModel(vcfg)
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    state = {}
    for name in files:
        with safe_open(str(model_dir / name), framework="pt") as f:
            for key in f.keys():
                for prefix in ("model.visual.", "visual."):
                    if key.startswith(prefix):
                        state[key[len(prefix):]] = f.get_tensor(key).float()
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("inv_freq")]
    if missing or unexpected:
        raise SystemExit(f"vision weights do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model.to(dtype).eval()


class FolioVisionTower(torch.nn.Module):
    """Glm4vMoeVisionModel.forward with the grid-dependent parts (rotary, bicubic taps, segments) as inputs."""

    def __init__(self, vision: Glm4vMoeVisionModel):
        super().__init__()
        cfg = vision.config
        self.v = vision
        self.heads = cfg.num_heads
        self.head_dim = cfg.hidden_size // cfg.num_heads
        self.merge = cfg.spatial_merge_size
        self.out_hidden = cfg.out_hidden_size
        self.dtype = vision.patch_embed.proj.weight.dtype
        w = vision.patch_embed.proj.weight
        self.register_buffer("patch_w", w.reshape(w.shape[0], -1).clone(), persistent=True)
        # The learned table is interpolated in fp32 (as transformers does), whatever the compute dtype.
        self.register_buffer("pos_table", vision.embeddings.position_embedding.weight.float().clone(), persistent=True)

    def attention(self, blk, x, cos, sin, bias):
        n = x.shape[0]
        qkv = blk.attn.qkv(x).reshape(n, 3, self.heads, self.head_dim).permute(1, 2, 0, 3)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [H, N, D]
        q32, k32 = q.float(), k.float()
        half = self.head_dim // 2

        def rot(t):
            return torch.cat((-t[..., half:], t[..., :half]), dim=-1)

        q = (q32 * cos + rot(q32) * sin).to(x.dtype)
        k = (k32 * cos + rot(k32) * sin).to(x.dtype)
        scores = torch.matmul(q, k.transpose(1, 2)) * (self.head_dim ** -0.5)
        probs = torch.softmax(scores.float() + bias, dim=-1).to(x.dtype)
        out = torch.matmul(probs, v).permute(1, 0, 2).reshape(n, -1)
        return blk.attn.proj(out)

    def forward(self, patches, rope_cos, rope_sin, pos_idx, pos_w, segment_ids):
        v = self.v
        x = F.linear(patches.to(self.dtype), self.patch_w, v.patch_embed.proj.bias)
        x = v.post_conv_layernorm(x)
        pos = (self.pos_table[pos_idx] * pos_w.unsqueeze(-1)).sum(dim=1)
        x = x + pos.to(self.dtype)
        cos = rope_cos.unsqueeze(0)
        sin = rope_sin.unsqueeze(0)
        same = segment_ids.unsqueeze(0) == segment_ids.unsqueeze(1)
        bias = torch.where(same, 0.0, float("-inf")).unsqueeze(0)
        for blk in v.blocks:
            x = x + self.attention(blk, blk.norm1(x), cos, sin, bias)
            x = x + blk.mlp(blk.norm2(x))
        x = v.post_layernorm(x)
        x = x.view(-1, self.merge, self.merge, x.shape[-1]).permute(0, 3, 1, 2)
        x = v.downsample(x).view(-1, self.out_hidden)
        return v.merger(x).float()


def reference_inputs(vision: Glm4vMoeVisionModel, grids: list[list[int]], seed: int = 0):
    """Random patches for `grids` and every side input, from transformers' own helpers."""
    from transformers.vision_utils import get_vision_interpolation_indices_and_weights, get_vision_position_ids

    cfg = vision.config
    grid = torch.tensor(grids)
    n = int(grid.prod(-1).sum())
    gen = torch.Generator().manual_seed(seed)
    patch_dim = cfg.in_channels * cfg.temporal_patch_size * cfg.patch_size ** 2
    patches = torch.randn(n, patch_dim, generator=gen)
    pos_ids = get_vision_position_ids(grid, cfg.spatial_merge_size)
    dummy = torch.zeros(1, dtype=torch.float32)
    cos, sin = vision.rotary_pos_emb(dummy, pos_ids)
    side = int(vision.embeddings.position_embedding.weight.shape[0] ** 0.5)
    idx, w = get_vision_interpolation_indices_and_weights(
        grid, side, mode="bicubic", align_corners=False, spatial_merge_size=cfg.spatial_merge_size)
    seg = torch.repeat_interleave(torch.arange(len(grids)), grid.prod(-1))
    return patches, (patches, cos.float(), sin.float(), idx, w.float(), seg), grid


def export(model_dir: Path, out: Path, dtype_name: str, external: str) -> None:
    dtype = {"fp32": torch.float32, "fp16": torch.float16}[dtype_name]
    vision = load_vision(model_dir, dtype)
    tower = FolioVisionTower(vision).eval()
    _, args, _ = reference_inputs(load_vision(model_dir, torch.float32), [[1, 4, 6], [1, 4, 4]])
    n = torch.export.Dim("n_patches", min=4)
    dyn = {"patches": {0: n}, "rope_cos": {0: n}, "rope_sin": {0: n}, "pos_idx": {0: n}, "pos_w": {0: n},
           "segment_ids": {0: n}}
    n_bytes = sum(p.numel() * p.element_size() for p in tower.parameters()) + sum(
        b.numel() * b.element_size() for b in tower.buffers())
    use_external = external == "always" or (external == "auto" and n_bytes > EXTERNAL_DATA_BYTES)
    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        program = torch.onnx.export(tower, args, dynamo=True, input_names=INPUTS, output_names=OUTPUTS,
                                    dynamic_shapes=dyn, optimize=True, external_data=use_external)
    cfg = vision.config
    meta = {
        "folio_format": FORMAT, "dtype": dtype_name, "hidden_size": cfg.hidden_size, "num_heads": cfg.num_heads,
        "head_dim": cfg.hidden_size // cfg.num_heads, "out_hidden_size": cfg.out_hidden_size,
        "spatial_merge_size": cfg.spatial_merge_size, "patch_size": cfg.patch_size,
        "temporal_patch_size": cfg.temporal_patch_size, "in_channels": cfg.in_channels,
        "pos_side": int(vision.embeddings.position_embedding.weight.shape[0] ** 0.5),
        "depth": cfg.depth,
    }
    program.model.metadata_props.update({k: str(v) for k, v in meta.items()})
    program.save(str(out), external_data=use_external)
    print(f"wrote {out} ({dtype_name}, {n_bytes / 1e6:.1f} MB of weights, external data: {use_external})")


@torch.no_grad()
def check(model_dir: Path, onnx_path: Path, dtype_name: str) -> float:
    """Max |ORT − transformers| / max(1, max |ref|) on two images of different grids in one call."""
    import onnxruntime as ort

    vision = load_vision(model_dir, torch.float32)
    grids = [[1, 6, 8], [1, 4, 10]]
    patches, args, grid = reference_inputs(vision, grids, seed=1)
    ref = vision(patches, grid_thw=grid).pooler_output
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feeds = {name: a.numpy() for name, a in zip(INPUTS, args)}
    got = torch.from_numpy(sess.run(OUTPUTS, feeds)[0])
    diff = float((got - ref).abs().max() / max(1.0, float(ref.abs().max())))
    print(f"check {onnx_path.name}: rel max diff vs transformers fp32 = {diff:.3e}")
    return diff


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--dtype", choices=["fp32", "fp16"], default="fp32")
    ap.add_argument("--external-data", choices=["auto", "always", "never"], default="auto")
    ap.add_argument("--check", action="store_true", help="compare ORT (CPU) with transformers on random input")
    a = ap.parse_args()
    torch.set_num_threads(2)
    out = a.out or a.model_dir / ("vision.onnx" if a.dtype == "fp32" else "vision.fp16.onnx")
    export(a.model_dir, out, a.dtype, a.external_data)
    if a.check:
        diff = check(a.model_dir, out, a.dtype)
        limit = 1e-4 if a.dtype == "fp32" else 5e-2
        if diff > limit:
            print(f"FAILED: {diff:.3e} > {limit:g}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
