"""Import public checkpoints into the standin architecture with strict key checking.

Sources (file names as published):
  Moore-AnimateAnyone / MusePose ``pretrained_weights``:
    denoising_unet.pth   UNet2DConditionModel / UNet3DConditionModel keys  -> denoising_unet.*
    reference_unet.pth   UNet2DConditionModel keys                          -> reference_unet.*
    motion_module.pth    ``*.motion_modules.N.temporal_transformer.*`` keys -> denoising_unet.*
                         (a key also in denoising_unet.pth takes that file's value, as upstream)
    pose_guider.pth      PoseGuider keys (conv_in, blocks.N, conv_out)      -> pose_guider.*
  sd-vae-ft-mse/diffusion_pytorch_model.{safetensors,bin}   diffusers AutoencoderKL -> vae.*
      (old attention names query/key/value/proj_attn are renamed to to_q/to_k/to_v/to_out.0)
  image_encoder/{model.safetensors,pytorch_model.bin}        transformers CLIPVisionModelWithProjection
                                                            -> image_encoder.* (position_ids dropped)

All names are identical to ours except the VAE's old attention names; ``conv_in.weight`` of the
denoising UNet is [320,4,3,3] in the checkpoints and is copied into the first 4 input channels
of ours ([320,9,3,3]); the rest stays zero.  Parts that exist only in Animate Anyone 2 (object
blending, pose modulation, the object guider) are not in any public checkpoint: they are
initialised so that they are no-ops (zero gates / zero output projections) and reported as such.

The planning works on shapes only (``plan_part``), so the mapping can be verified at sd15 scale
without allocating weights.
"""
from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from .config import ModelConfig, replace
from .model import StandinModel, build_model

Shape = Tuple[int, ...]

PART_FILES = {
    "denoising_unet": ["denoising_unet.pth"],
    "reference_unet": ["reference_unet.pth"],
    "motion_module": ["motion_module.pth"],
    "pose_guider": ["pose_guider.pth"],
    "vae": ["sd-vae-ft-mse/diffusion_pytorch_model.safetensors", "sd-vae-ft-mse/diffusion_pytorch_model.bin",
            "vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.bin"],
    "image_encoder": ["image_encoder/model.safetensors", "image_encoder/pytorch_model.bin"],
}

# parts of the denoising UNet / pose guider that no public checkpoint has (zero / inert at init)
ADDITION_PREFIXES = {
    "denoising_unet": ("mid_object_blender.", "up_object_blenders.", "pose_temporal."),
    "pose_guider": ("depth_conv_in.", "depth_blocks.", "modulation_norm.", "modulation_norm_depth.",
                    "modulation_attn."),
}
# model keys a checkpoint may lack without harm
IGNORABLE_MISSING = {
    "reference_unet": ("conv_norm_out.", "conv_out."),   # the ReferenceNet stops before them
    "denoising_unet": (".pos_encoder.pe",),              # deterministic buffer, recomputed
    "image_encoder": ("vision_model.embeddings.position_ids",),
}
IGNORABLE_UNEXPECTED = {
    "image_encoder": ("vision_model.embeddings.position_ids",),
}


# ----------------------------------------------------------------------------- reading files
_ST_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
              "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
              "BOOL": torch.bool}


def read_safetensors(path: str, shapes_only: bool = False) -> Dict:
    """Minimal safetensors reader (8-byte header length, JSON header, raw little-endian data)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        header.pop("__metadata__", None)
        if shapes_only:
            return {k: tuple(v["shape"]) for k, v in header.items()}
        data = f.read()
    out = {}
    for k, v in header.items():
        b, e = v["data_offsets"]
        dt = _ST_DTYPES[v["dtype"]]
        buf = bytearray(data[b:e])
        t = torch.frombuffer(buf, dtype=dt) if e > b else torch.empty(0, dtype=dt)
        out[k] = t.reshape(v["shape"]).clone()
    return out


def read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    if path.endswith(".safetensors"):
        sd = read_safetensors(path)
    else:
        sd = torch.load(path, map_location="cpu")
    for wrapper in ("state_dict", "module", "model"):
        if isinstance(sd, dict) and wrapper in sd and isinstance(sd[wrapper], dict) and len(sd) <= 3:
            sd = sd[wrapper]
    if not isinstance(sd, dict):
        raise ValueError(f"{path}: not a state dict")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in sd.items() if torch.is_tensor(v)}


# ----------------------------------------------------------------------------- key conversion
_OLD_ATTN = re.compile(r"^(.*\.attentions\.\d+)\.(query|key|value|proj_attn)\.(weight|bias)$")
_NEW_NAME = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def convert_vae(sd: Dict) -> Dict:
    """diffusers AutoencoderKL, old or new attention names; 1x1-conv-shaped attention weights squeezed."""
    out = {}
    for k, v in sd.items():
        m = _OLD_ATTN.match(k)
        if m:
            k = f"{m.group(1)}.{_NEW_NAME[m.group(2)]}.{m.group(3)}"
        if re.search(r"\.attentions\.\d+\.(to_q|to_k|to_v|to_out\.0)\.weight$", k):
            v = _squeeze(v)
        out[k] = v
    return out


def _squeeze(v):
    if isinstance(v, tuple):  # shape
        return v[:2] if len(v) == 4 else v
    return v[:, :, 0, 0] if v.dim() == 4 else v


def convert_identity(sd: Dict) -> Dict:
    return dict(sd)


CONVERTERS: Dict[str, Callable[[Dict], Dict]] = {
    "vae": convert_vae, "image_encoder": convert_identity, "reference_unet": convert_identity,
    "denoising_unet": convert_identity, "pose_guider": convert_identity,
}


# ----------------------------------------------------------------------------- planning (shapes only)
@dataclass
class PartReport:
    part: str
    files: List[str] = field(default_factory=list)
    loaded: List[str] = field(default_factory=list)
    partial: List[str] = field(default_factory=list)        # conv_in: first input channels copied
    missing: List[str] = field(default_factory=list)        # in the model, not in the checkpoint
    unexpected: List[str] = field(default_factory=list)     # in the checkpoint, not in the model
    mismatched: List[Tuple[str, Shape, Shape]] = field(default_factory=list)
    additions: List[str] = field(default_factory=list)      # AA2-only keys, left at their no-op init
    ignored: List[str] = field(default_factory=list)        # harmless missing / unexpected keys

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def line(self) -> str:
        s = (f"{self.part:15s} loaded {len(self.loaded):5d}  partial {len(self.partial)}  "
             f"missing {len(self.missing)}  unexpected {len(self.unexpected)}  mismatched {len(self.mismatched)}  "
             f"aa2-additions {len(self.additions)}  ignored {len(self.ignored)}")
        for name, items in (("missing", self.missing), ("unexpected", self.unexpected),
                            ("mismatched", self.mismatched)):
            for it in items[:8]:
                s += f"\n    {name}: {it}"
            if len(items) > 8:
                s += f"\n    ... {len(items) - 8} more {name}"
        return s


@dataclass
class ImportReport:
    parts: Dict[str, PartReport] = field(default_factory=dict)
    files: Dict[str, str] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)
    layout: Optional[str] = None   # "moore-aa" | "musepose" | None (detect_layout)

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.parts.values())

    def summary(self) -> str:
        lines = ["checkpoint import:"] + [p.line() for p in self.parts.values()] + [f"  note: {n}" for n in self.notes]
        lines.append("  result: " + ("OK (strict)" if self.ok else "MISMATCH"))
        return "\n".join(lines)


def plan_part(part: str, model_shapes: Dict[str, Shape], ckpt_shapes: Dict[str, Shape]) -> PartReport:
    r = PartReport(part)
    adds = ADDITION_PREFIXES.get(part, ())
    ign_missing = IGNORABLE_MISSING.get(part, ())
    ign_unexp = IGNORABLE_UNEXPECTED.get(part, ())
    for k, shp in ckpt_shapes.items():
        shp = tuple(shp)
        if k not in model_shapes:
            (r.ignored if any(p in k for p in ign_unexp) else r.unexpected).append(k)
            continue
        ms = tuple(model_shapes[k])
        if shp == ms:
            r.loaded.append(k)
        elif (part == "denoising_unet" and k == "conv_in.weight" and len(shp) == 4 and shp[0] == ms[0]
              and shp[2:] == ms[2:] and shp[1] < ms[1]):
            r.partial.append(k)
        elif k.endswith(".pos_encoder.pe") and len(shp) == 3 and shp[2] == ms[2]:
            r.mismatched.append((k, shp, ms))  # different max_len: caller adapts the config first
        else:
            r.mismatched.append((k, shp, ms))
    for k in model_shapes:
        if k in ckpt_shapes:
            continue
        if any(k.startswith(p) for p in adds):
            r.additions.append(k)
        elif any(p in k for p in ign_missing):
            r.ignored.append(k)
        else:
            r.missing.append(k)
    return r


def model_part_shapes(model: StandinModel, part: str) -> Dict[str, Shape]:
    mod = getattr(model, part)
    return {k: tuple(v.shape) for k, v in mod.state_dict().items()}


def _shapes(sd: Dict) -> Dict[str, Shape]:
    return {k: tuple(v) if isinstance(v, (tuple, list, torch.Size)) else tuple(v.shape) for k, v in sd.items()}


def merge_unet_sources(unet_sd: Optional[Dict], motion_sd: Optional[Dict]) -> Dict:
    """One denoising-UNet state dict from denoising_unet.pth and motion_module.pth.

    Upstream (Moore-AA and MusePose ``UNet3DConditionModel.from_pretrained_2d``) puts the motion
    module's weights into the model first and then loads denoising_unet.pth over them, so for a
    key that both files hold denoising_unet.pth wins; so here.
    """
    merged = dict(motion_sd or {})
    merged.update(unet_sd or {})
    return merged


def shared_unet_keys(unet_sd: Optional[Dict], motion_sd: Optional[Dict]) -> List[str]:
    """Keys that both denoising_unet.pth and motion_module.pth hold (denoising_unet.pth's are used)."""
    return sorted(set(unet_sd or {}) & set(motion_sd or {}))


# The public checkpoints differ in the motion modules' position-table length (their inference
# configs' temporal_position_encoding_max_len): that is how an import tells them apart.
LAYOUT_BY_MOTION_LEN = {32: "moore-aa", 128: "musepose"}


def detect_layout(sources: Dict[str, Dict]) -> Optional[str]:
    """"moore-aa" | "musepose" from the denoising UNet's pos_encoder.pe length; None if unknown."""
    unet = sources.get("denoising_unet", {})
    lengths = {tuple(v.shape if torch.is_tensor(v) else v)[1] for k, v in unet.items() if k.endswith(".pos_encoder.pe")}
    if len(lengths) != 1:
        return None
    return LAYOUT_BY_MOTION_LEN.get(lengths.pop())


def plan_import(model: StandinModel, sources: Dict[str, Dict]) -> ImportReport:
    """sources: part -> converted state dict (tensors or shapes); 'denoising_unet' already merged."""
    rep = ImportReport()
    for part, sd in sources.items():
        rep.parts[part] = plan_part(part, model_part_shapes(model, part), _shapes(sd))
    return rep


# ----------------------------------------------------------------------------- loading
def find_files(ckpt_dir: str) -> Dict[str, str]:
    """Locate the public files below ckpt_dir (shallowest match wins)."""
    found: Dict[str, str] = {}
    all_files = []
    for root, _, files in os.walk(ckpt_dir):
        for f in files:
            p = os.path.join(root, f)
            all_files.append((p.count(os.sep), os.path.relpath(p, ckpt_dir).replace(os.sep, "/"), p))
    all_files.sort()
    for part, names in PART_FILES.items():
        for name in names:
            hits = [p for _, rel, p in all_files if rel == name or rel.endswith("/" + name)]
            if hits:
                found[part] = hits[0]
                break
    return found


def load_sources(files: Dict[str, str], notes: Optional[List[str]] = None) -> Dict[str, Dict]:
    raw = {part: read_state_dict(path) for part, path in files.items()}
    sources = {}
    for part in ("vae", "image_encoder", "reference_unet", "pose_guider"):
        if part in raw:
            sources[part] = CONVERTERS[part](raw[part])
    if "denoising_unet" in raw or "motion_module" in raw:
        sources["denoising_unet"] = merge_unet_sources(raw.get("denoising_unet"), raw.get("motion_module"))
        shared = shared_unet_keys(raw.get("denoising_unet"), raw.get("motion_module"))
        if shared and notes is not None:
            notes.append(f"{len(shared)} keys are in both denoising_unet.pth and motion_module.pth: "
                         f"denoising_unet.pth's are used (upstream's load order), e.g. {shared[0]}")
    return sources


def adapt_config(cfg: ModelConfig, sources: Dict[str, Dict]) -> ModelConfig:
    """Take sizes that legitimately vary between public checkpoints from the checkpoint itself."""
    unet = sources.get("denoising_unet", {})
    pes = [v for k, v in unet.items() if k.endswith(".pos_encoder.pe")]
    if pes:
        max_len = tuple(pes[0].shape if torch.is_tensor(pes[0]) else pes[0])[1]
        if max_len != cfg.unet.motion_max_len:
            import copy
            u = copy.deepcopy(cfg.unet)
            u.motion_max_len = int(max_len)
            cfg = replace(cfg, unet=u)
    has_motion_mid = any(k.startswith("mid_block.motion_modules.") for k in unet)
    has_motion = any(".motion_modules." in k for k in unet)
    if has_motion and not has_motion_mid and cfg.unet.motion_mid_block:
        import copy
        u = copy.deepcopy(cfg.unet)
        u.motion_mid_block = False
        cfg = replace(cfg, unet=u)
    return cfg


@torch.no_grad()
def apply_sources(model: StandinModel, sources: Dict[str, Dict], rep: ImportReport) -> None:
    from .export import zero_additions
    zero_additions(model)  # AA2-only parts start as no-ops
    for part, sd in sources.items():
        pr = rep.parts[part]
        target = getattr(model, part).state_dict()
        for k in pr.loaded:
            target[k].copy_(sd[k].to(target[k].dtype))
        for k in pr.partial:
            src = sd[k]
            target[k].zero_()
            target[k][:, : src.shape[1]].copy_(src.to(target[k].dtype))


def load_pretrained(cfg: ModelConfig, ckpt_dir: Optional[str] = None, files: Optional[Dict[str, str]] = None,
                    strict: bool = True, seed: int = 0):
    """Build the model for ``cfg`` and load the public checkpoints; returns (model, ImportReport).

    With ``strict`` any missing, unexpected or mismatched key (other than the documented AA2
    additions and ignorable keys) raises ValueError carrying the report.
    """
    files = dict(files or {})
    if ckpt_dir:
        for k, v in find_files(ckpt_dir).items():
            files.setdefault(k, v)
    if not files:
        raise FileNotFoundError(f"no checkpoint files found in {ckpt_dir}")
    load_notes: List[str] = []
    sources = load_sources(files, load_notes)
    cfg = adapt_config(cfg, sources)
    torch.manual_seed(seed)
    model = build_model(cfg)
    rep = plan_import(model, sources)
    rep.files = {k: os.path.abspath(v) for k, v in files.items()}
    rep.notes.extend(load_notes)
    rep.layout = detect_layout(sources)
    rep.notes.append(f"layout: {rep.layout}" if rep.layout else
                     "layout: unknown (motion position tables of neither Moore-AA (32) nor MusePose (128))")
    for part in ("vae", "image_encoder", "reference_unet", "denoising_unet", "pose_guider"):
        if part not in sources:
            rep.notes.append(f"{part}: no checkpoint file found (kept at its seeded initialisation)")
    if "motion_module" not in files:
        rep.notes.append("motion_module.pth not given (motion keys taken from denoising_unet.pth if present)")
    if model.object_guider is not None:
        rep.notes.append("object_guider: AA2-only, not in public checkpoints; seeded init, inert (blend gates 0)")
    missing_parts = [p for p in ("vae", "image_encoder", "reference_unet", "denoising_unet", "pose_guider")
                     if p not in sources]
    if strict and (not rep.ok or missing_parts):
        raise ValueError(rep.summary() + (f"\n  missing parts: {missing_parts}" if missing_parts else ""))
    apply_sources(model, sources, rep)
    return model.eval(), rep
