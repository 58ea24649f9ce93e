"""The asset pack: loading, identities (who is drawn) and motions (how they move).

A pack is a directory written by build_asset_pack.py:
    pack.json.gz     manifest: meshes, textures, animations, actors (groups of variants), splits
    meshes.npz       all meshes concatenated (int16 positions, int8 normals, float16 UVs, ...)
    animations.bin   all animations' bone states, float16, delta-coded along frames + zlib
    textures.bin     WebP images back to back (offsets in the manifest)
Everything is in world convention (skeleton.py): right-handed, y up, facing +z, left at +x.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import struct
import zlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .skeleton import quat_slerp_linear

PACK_FORMAT = "standin-synth-pack"
PACK_VERSION = 2  # 2: triangles counter-clockwise seen from outside (culling)
MANIFEST_FILE = "pack.json.gz"
MESHES_FILE = "meshes.npz"
ANIMATIONS_FILE = "animations.bin"
TEXTURES_FILE = "textures.bin"
SPLITS = ("train", "test", "all")
LOCOMOTION_KINDS = ("walk", "jog", "run")
# Actor variants selected by the game's unit state that change props (tools, baskets) and the
# animations that go with them; sample_identity picks one now and then.
STATE_PREFIXES = ("carry_", "gather_", "approach_", "build", "female_carry_", "female_gather_",
                  "female_build")
STATE_PROBABILITY = 0.3
IDENTITY_MOTION_PROBABILITY = 0.7

__all__ = ["PackError", "AssetPack", "Identity", "Part", "Motion", "encode_animation_blob",
           "decode_animation_blob"]


class PackError(RuntimeError):
    """A pack that cannot be used; the message says what to do."""


# ---------------------------------------------------------------- animation blob codec

_ANIM_MAGIC = b"SYNA"


def encode_animation_blob(bones: np.ndarray, offsets) -> bytes:
    """float16 [frames, bones, 7] -> bytes. Lossless: the float16 bit patterns are differenced
    along frames (int16, wrapping), split into low/high byte planes and zlib-compressed."""
    b = np.ascontiguousarray(bones, dtype=np.float16)
    iv = b.view(np.int16)
    d = iv.copy()
    d[1:] = iv[1:] - iv[:-1]
    planes = d.view(np.uint8).reshape(-1, 2)
    body = zlib.compress(np.ascontiguousarray(planes.T).tobytes(), 9)
    head = struct.pack("<4sIII", _ANIM_MAGIC, 1, b.shape[0], b.shape[1])
    return head + body


def decode_animation_blob(data: bytes) -> np.ndarray:
    magic, version, frames, bones = struct.unpack("<4sIII", data[:16])
    if magic != _ANIM_MAGIC or version != 1:
        raise PackError("animations.bin: unknown format; rebuild the pack with "
                        "scripts/synth/build_asset_pack.py")
    raw = np.frombuffer(zlib.decompress(data[16:]), dtype=np.uint8)
    n = frames * bones * 7
    planes = raw.reshape(2, n).T.copy()
    d = planes.view(np.int16).reshape(frames, bones, 7)
    iv = np.cumsum(d, axis=0, dtype=np.int16)
    return iv.view(np.float16)


# ---------------------------------------------------------------- dataclasses

@dataclass(frozen=True)
class Part:
    """One drawn mesh of an identity. parent = index of the part it hangs on (-1: the skeleton;
    the first part is the skinned body); attach = prop point name on the parent's mesh."""
    mesh: int
    texture: int  # -1: untextured (drawn light grey)
    material: str  # 'player' | 'object' | 'trans' | 'opaque'
    color: tuple  # object colour (r, g, b) in 0..1 for 'object' materials, else ()
    parent: int
    attach: str
    is_object: bool  # held/carried object (shield, weapon, tool, basket): goes to props_alpha
    actor: str


@dataclass(frozen=True)
class Identity:
    """Who is drawn: small, hashable and picklable (send it to workers freely)."""
    actor: str
    state: str  # the unit-state variant used ('' = default), e.g. 'carry_food', 'gather_tree'
    body_texture: int
    parts: tuple  # of Part; parts[0] is the body
    team_color: tuple  # (r, g, b) in 0..1
    jitter_hsv: tuple  # (hue shift in turns, saturation scale, value scale) for the body texture
    animations: tuple  # animation indices the actor itself uses in this state (any split)
    split: str


@dataclass
class Motion:
    bones: np.ndarray  # [F, 46, 7] float32: translation xyz + quaternion xyzw, object space
    name: str  # animation file, e.g. 'biped/infantry/hoplite/walk_relax.dae'
    index: int
    kind: str  # 'walk' | 'jog' | 'run' | 'idle' | 'attack' | 'work' | 'death' | 'other'
    cycle: bool  # locomotion cycle (walk/jog/run): walks in place, add ground motion yourself
    loops: bool
    fps: float
    start_s: float  # phase of the first frame in the source animation, seconds
    velocity: tuple  # estimated ground velocity (vx, vz), world units/s (cycles; else (0, 0))
    speed: float  # |velocity|
    root_moves: bool  # False for every 0 A.D. animation: locomotion is in place
    split: str = ""

    def ground_offsets(self) -> np.ndarray:
        """[F, 2] (dx, dz) world offsets of a character walking at this motion's velocity,
        starting at (0, 0): pass offsets[f] (plus your own start) as render's world_offset."""
        t = np.arange(len(self.bones), dtype=np.float64) / self.fps
        return np.stack([t * self.velocity[0], t * self.velocity[1]], 1)


# ---------------------------------------------------------------- the pack

class AssetPack:
    def __init__(self, manifest: dict, mesh_arrays: dict, anim_bones: np.ndarray,
                 textures: bytes, path: str = ""):
        self.path = path
        self.manifest = manifest
        self.meshes = manifest["meshes"]
        self.textures = manifest["textures"]
        self.animations = manifest["animations"]
        self.actors = manifest["actors"]
        self.roots = manifest["roots"]
        self._mesh_arrays = mesh_arrays
        self._anim_bones = anim_bones
        self._texture_blob = textures
        self._mesh_cache = {}
        self._tex_cache = OrderedDict()
        self.kit_cache = OrderedDict()  # renderer's per-identity prepared data
        self._anims_by_split = {
            s: np.array([i for i, a in enumerate(self.animations)
                         if s == "all" or a["split"] == s], dtype=np.int64) for s in SPLITS}
        self._roots_by_split = {
            "train": [r for r in self.roots if r["train_textures"]],
            "test": [r for r in self.roots if r["test_textures"]],
            "all": list(self.roots)}

    # ---- loading
    @classmethod
    def load(cls, directory: str) -> "AssetPack":
        mpath = os.path.join(directory, MANIFEST_FILE)
        if not os.path.exists(mpath):
            raise PackError(f"{directory}: no {MANIFEST_FILE}; build a pack with "
                            f"scripts/synth/build_asset_pack.py --source ... --out {directory}")
        with gzip.open(mpath, "rt") as f:
            manifest = json.load(f)
        if manifest.get("format") != PACK_FORMAT or manifest.get("version") != PACK_VERSION:
            raise PackError(f"{directory}: pack format {manifest.get('format')} "
                            f"v{manifest.get('version')}, this code reads {PACK_FORMAT} "
                            f"v{PACK_VERSION}; rebuild it with build_asset_pack.py")
        with np.load(os.path.join(directory, MESHES_FILE)) as npz:
            meshes = {k: npz[k] for k in npz.files}
        with open(os.path.join(directory, ANIMATIONS_FILE), "rb") as f:
            bones = decode_animation_blob(f.read())
        with open(os.path.join(directory, TEXTURES_FILE), "rb") as f:
            textures = f.read()
        return cls(manifest, meshes, bones, textures, directory)

    @property
    def counts(self) -> dict:
        return dict(self.manifest.get("counts", {}))

    # ---- raw data
    def mesh(self, index: int) -> dict:
        """Decoded mesh: positions/normals/uvs float32, bone_indices int32 (-1 none),
        bone_weights float32, faces int32, bind_pose [46,7] or None, props {name: (state7, bone)}."""
        m = self._mesh_cache.get(index)
        if m is not None:
            return m
        rec = self.meshes[index]
        a = self._mesh_arrays
        v0, v1 = rec["v"]
        f0, f1 = rec["f"]
        lo = np.array(rec["lo"], np.float32)
        hi = np.array(rec["hi"], np.float32)
        q = a["positions"][v0:v1].astype(np.float32)
        pos = lo + (q + 32768.0) / 65535.0 * np.maximum(hi - lo, 1e-6)
        nrm = a["normals"][v0:v1].astype(np.float32) / 127.0
        nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-6)
        bi = a["bone_indices"][v0:v1].astype(np.int32)
        bi[bi == 255] = -1
        bw = a["bone_weights"][v0:v1].astype(np.float32) / 255.0
        bind = None
        if rec["skinned"]:
            b0, b1 = rec["bind"]
            bind = a["bind_poses"][b0:b1].astype(np.float32)
        props = {k: (np.array(v[:7], np.float32), int(v[7])) for k, v in rec["props"].items()}
        m = {"name": rec["name"], "positions": pos, "normals": nrm,
             "uvs": a["uvs"][v0:v1].astype(np.float32), "bone_indices": bi,
             "bone_weights": bw, "faces": (a["faces"][f0:f1].astype(np.int32) - 0),
             "bind_pose": bind, "props": props}
        self._mesh_cache[index] = m
        return m

    def texture(self, index: int) -> np.ndarray:
        """Decoded texture, uint8 [h, w, 4] (alpha 255 where the pack stored RGB)."""
        t = self._tex_cache.get(index)
        if t is not None:
            self._tex_cache.move_to_end(index)
            return t
        from PIL import Image
        rec = self.textures[index]
        data = self._texture_blob[rec["off"]:rec["off"] + rec["len"]]
        t = np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))
        self._tex_cache[index] = t
        while len(self._tex_cache) > 256:
            self._tex_cache.popitem(last=False)
        return t

    def animation(self, index: int) -> np.ndarray:
        """Bone states of one animation, float32 [frames, 46, 7]."""
        rec = self.animations[index]
        return self._anim_bones[rec["off"]:rec["off"] + rec["frames"]].astype(np.float32)

    def animation_index(self, name: str) -> int:
        for i, a in enumerate(self.animations):
            if a["name"] == name:
                return i
        raise KeyError(name)

    # ---- identities
    def _choose(self, actor: dict, rng, selections, tex_ok):
        """One variant per group (the game's rule: a variant named in ``selections`` wins, else a
        draw weighted by frequency, else the first), merged in group order: the last mesh,
        texture and colour win; props as the game's multimap (see below)."""
        out = {"mesh": -1, "tex": -1, "color": None, "props": [], "anims": {}}
        for group in actor["groups"]:
            cands = list(range(len(group)))
            if tex_ok is not None:
                kept = [i for i in cands if group[i]["tex"] < 0 or tex_ok(group[i]["tex"])]
                cands = kept or cands
            match = [i for i in cands if group[i]["name"] and group[i]["name"].lower() in selections]
            if match:
                pick = match[0]
            else:
                freqs = np.array([max(group[i]["freq"], 0) for i in cands], np.float64)
                if freqs.sum() > 0:
                    pick = cands[int(rng.choice(len(cands), p=freqs / freqs.sum()))]
                else:
                    pick = cands[0]
            v = group[pick]
            if v["mesh"] >= 0:
                out["mesh"] = v["mesh"]
            if v["tex"] >= 0:
                out["tex"] = v["tex"]
            if v["color"] is not None:
                out["color"] = v["color"]
            # the game keeps props in a multimap: a variant first drops every prop at the attach
            # points it names, then adds its own (several may share one attach point)
            named = {attach for attach, _, _ in v["props"]}
            out["props"] = [p for p in out["props"] if p[0] not in named]
            out["props"] += [(attach, prop, obj) for attach, prop, obj in v["props"] if prop]
            names = {n for n, _ in v["anims"]}
            for n in names:
                out["anims"][n] = [i for m, i in v["anims"] if m == n]
        return out

    def _add_parts(self, path, rng, selections, parts, parent, attach, is_object, tex_ok,
                   depth=0):
        actor = self.actors.get(path)
        if actor is None or depth > 6:
            return None
        r = self._choose(actor, rng, selections, tex_ok if depth == 0 else None)
        if r["mesh"] < 0:
            return r
        if parent >= 0 and attach != "root" and attach not in self.meshes[parts[parent].mesh]["props"]:
            return r  # the game ignores props whose attach point the mesh lacks
        color = tuple(c / 255.0 for c in r["color"]) if r["color"] is not None else ()
        parts.append(Part(mesh=r["mesh"], texture=r["tex"], material=actor["material"],
                          color=color, parent=parent, attach=attach, is_object=is_object,
                          actor=path))
        me = len(parts) - 1
        for attach2, prop, obj in r["props"]:
            self._add_parts(prop, rng, selections, parts, me, attach2, is_object or obj, None,
                            depth + 1)
        return r

    def sample_identity(self, rng: np.random.Generator, split: str = "train",
                        state: str | None = None, hue_jitter: float = 0.05) -> Identity:
        """A random character of ``split`` ('train', 'test' or 'all'): a human unit actor with
        one variant per group (body texture restricted to the split), props resolved
        recursively, a random team colour and colour jitter. ``state``: None = the default look
        most of the time and a unit-state variant (carry_*, gather_*, ...) otherwise; '' =
        always default; a name = that state when the actor has it. ``hue_jitter``: the body
        texture's hue shift is drawn from +-this many turns (0.5: any hue); the draws are the same
        whatever its value, so a seed gives the same character in another colour."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        roots = self._roots_by_split[split]
        if not roots:
            raise PackError(f"pack has no {split} identities")
        for _ in range(32):
            root = roots[int(rng.integers(len(roots)))]
            allowed = set(root["body_textures"] if split == "all" else root[f"{split}_textures"])
            body_tex = {t for t in root["body_textures"]}
            actor = self.actors[root["actor"]]
            states = sorted({v["name"].lower() for g in actor["groups"] for v in g
                             if v["freq"] == 0 and v["name"].lower().startswith(STATE_PREFIXES)})
            use_state = ""
            if state is None:
                if states and rng.random() < STATE_PROBABILITY:
                    use_state = states[int(rng.integers(len(states)))]
            elif state and state.lower() in states:
                use_state = state.lower()
            parts = []
            r = self._add_parts(root["actor"], rng, {use_state} if use_state else set(), parts,
                                -1, "", False, lambda t: t not in body_tex or t in allowed)
            if not parts or r is None or r["tex"] not in allowed:
                continue
            anims = sorted({i for lst in r["anims"].values() for i in lst})
            h, s, v = rng.random(), rng.uniform(0.45, 1.0), rng.uniform(0.35, 1.0)
            team = tuple(float(c) for c in _hsv_to_rgb(h, s, v))
            jitter = (float(rng.uniform(-hue_jitter, hue_jitter)), float(rng.uniform(0.7, 1.3)),
                      float(rng.uniform(0.8, 1.15)))
            return Identity(actor=root["actor"], state=use_state, body_texture=int(r["tex"]),
                            parts=tuple(parts), team_color=team, jitter_hsv=jitter,
                            animations=tuple(anims), split=split)
        raise PackError(f"could not draw a {split} identity in 32 tries (pack inconsistent?)")

    # ---- motions
    def motion_candidates(self, split: str = "train", kinds=None) -> np.ndarray:
        idx = self._anims_by_split[split]
        if kinds is not None:
            kinds = _expand_kinds(kinds)
            idx = np.array([i for i in idx if self.animations[i]["kind"] in kinds], np.int64)
        return idx

    def sample_motion(self, rng: np.random.Generator, frames: int, fps: float = 10.0,
                      split: str = "train", kinds=None, identity: Identity | None = None,
                      index: int | None = None) -> Motion:
        """``frames`` poses at ``fps`` from one animation of ``split``, starting at a random phase;
        looping animations wrap, the others (deaths) hold their last pose. ``kinds``: e.g.
        ('walk', 'run') or 'locomotion'. With ``identity``, most draws come from the animations
        that identity's actor uses (so a spearman's hands fit his spear), when any are in the
        split. ``index`` forces one animation."""
        if index is None:
            cands = self.motion_candidates(split, kinds)
            if len(cands) == 0:
                raise PackError(f"no {split} animations of kinds {kinds}")
            if identity is not None:
                own = np.intersect1d(cands, np.array(identity.animations, np.int64))
                if len(own) and rng.random() < IDENTITY_MOTION_PROBABILITY:
                    cands = own
            index = int(cands[int(rng.integers(len(cands)))])
        rec = self.animations[index]
        src = self._anim_bones[rec["off"]:rec["off"] + rec["frames"]]
        dt = rec["frame_ms"] / 1000.0
        duration = (rec["frames"] - 1) * dt
        span = (frames - 1) / fps
        if rec["loops"]:
            start = float(rng.uniform(0.0, duration))
            t = np.mod(start + np.arange(frames) / fps, duration)
        else:
            start = float(rng.uniform(0.0, max(duration - span, 0.0)))
            t = np.minimum(start + np.arange(frames) / fps, duration)
        bones = sample_frames(src, t / dt)
        return Motion(bones=bones, name=rec["name"], index=index, kind=rec["kind"],
                      cycle=rec["cycle"], loops=rec["loops"], fps=float(fps), start_s=start,
                      velocity=tuple(rec["velocity"]), speed=float(rec["speed"]),
                      root_moves=False, split=rec["split"])


def sample_frames(src: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Interpolate bone states [N, B, 7] at fractional frame positions (0..N-1): translations
    linearly, quaternions by normalised lerp along the shorter arc."""
    n = len(src)
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    w = (pos - i0).astype(np.float64)
    a = src[i0].astype(np.float64)
    b = src[i1].astype(np.float64)
    out = np.empty(a.shape, np.float32)
    out[..., :3] = a[..., :3] * (1 - w[:, None, None]) + b[..., :3] * w[:, None, None]
    out[..., 3:] = quat_slerp_linear(a[..., 3:], b[..., 3:], np.broadcast_to(
        w[:, None], a.shape[:2]))
    return out


def _expand_kinds(kinds):
    if isinstance(kinds, str):
        kinds = (kinds,)
    out = set()
    for k in kinds:
        out.update(LOCOMOTION_KINDS if k == "locomotion" else (k,))
    return out


def _hsv_to_rgb(h: float, s: float, v: float):
    i = int(h * 6.0) % 6
    f = h * 6.0 - int(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
