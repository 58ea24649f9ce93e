"""A tiny, hand-made 0 A.D.-like asset tree for tests (no game data needed).

``source_files()`` returns {path inside public.zip: bytes}: one human actor (a box man) with a
shield prop, body textures in several families, a shield actor, and four animations, all in the
game's own (mirrored) file convention: the box man faces -z and his *_L bones are at +x, exactly
like the real files. ``build_tiny_pack(dir)`` runs the real pack builder on them.

The box man's body texture is split in vertical halves: u < 0.5 red (left arm's UVs), u >= 0.5
blue (right arm, torso, legs, head); its top quarter has alpha 0 (team-colour area).
"""
from __future__ import annotations

import io
import os

import numpy as np

from .formats import Animation, Mesh, PropPoint, write_pmd, write_psa
from .skeleton import BONE, NUM_BONES

# Bone origins in FILE convention (character faces -z, its left at +x); rotations identity.
BONE_ORIGINS = {
    "hip": (0, 2.0, 0), "spine": (0, 2.3, 0), "spine1": (0, 2.6, 0), "chest": (0, 2.9, 0),
    "shoulder_L": (0.1, 3.4, 0), "arm_L": (0.45, 3.4, 0), "forearm_L": (0.5, 2.8, 0),
    "hand_L": (0.55, 2.2, 0), "shield_arm": (0.5, 2.6, 0),
    "shoulder_R": (-0.1, 3.4, 0), "arm_R": (-0.45, 3.4, 0), "forearm_R": (-0.5, 2.8, 0),
    "hand_R": (-0.55, 2.2, 0), "weapon_R": (-0.55, 2.2, 0),
    "neck": (0, 3.5, 0), "head": (0, 3.7, 0), "helmet": (0, 4.1, 0),
    "thigh_L": (0.25, 2.0, 0), "leg_L": (0.25, 1.0, 0), "foot_L": (0.25, 0.1, 0),
    "thigh_R": (-0.25, 2.0, 0), "leg_R": (-0.25, 1.0, 0), "foot_R": (-0.25, 0.1, 0),
}
# Boxes of the body mesh, FILE convention: (centre, size, bone, uv rectangle u0, v0, u1, v1)
BOX_UV_LEFT = (0.05, 0.3, 0.45, 0.95)  # red half of the body texture
BOX_UV_RIGHT = (0.55, 0.3, 0.95, 0.95)  # blue half
BODY_BOXES = [
    ((0, 2.7, 0), (0.8, 1.4, 0.4), "chest", BOX_UV_RIGHT),
    ((0.55, 2.8, 0), (0.2, 1.2, 0.2), "arm_L", BOX_UV_LEFT),
    ((-0.55, 2.8, 0), (0.2, 1.2, 0.2), "arm_R", BOX_UV_RIGHT),
    ((0.25, 1.05, 0), (0.25, 2.0, 0.25), "thigh_L", BOX_UV_RIGHT),
    ((-0.25, 1.05, 0), (0.25, 2.0, 0.25), "thigh_R", BOX_UV_RIGHT),
    ((0, 3.85, 0), (0.4, 0.5, 0.4), "head", BOX_UV_RIGHT),
    ((0, 3.85, -0.25), (0.1, 0.1, 0.1), "head", BOX_UV_RIGHT),  # the nose: the face is at -z
]
SHIELD_OFFSET = (0.2, 0.0, 0.0)  # the shield_arm prop point, relative to its bone (file)
SHIELD_SIZE = (0.05, 0.8, 0.6)
BODY_TEXTURES = ["skeletal/test/tunic_01_01.png", "skeletal/test/tunic_01_02.png",
                 "skeletal/test/cloak_01.png", "skeletal/test/robe_02_01.png",
                 "skeletal/test/robe_03_01.png", "skeletal/test/mail_01.png"]
ACTOR = "units/test/infantry_box.xml"
SHIELD_ACTOR = "props/units/shields/test_shield.xml"
ANIMATIONS = ["biped/test/idle.dae", "biped/test/idle_b.dae", "biped/test/walk_relax.dae",
              "biped/test/walk_ready.dae"]
WALK_SPEED = 2.0  # world units per second of the test walk cycles
FRAME_MS = 1000.0 / 30.0


def box(center, size, uv_rect, bone):
    """24 vertices (4 per face, outward normals), 12 triangles; all weight on ``bone``."""
    c = np.asarray(center, np.float32)
    h = np.asarray(size, np.float32) / 2
    pos, nrm, uvs, faces = [], [], [], []
    u0, v0, u1, v1 = uv_rect
    for axis in range(3):
        for sign in (-1.0, 1.0):
            n = np.zeros(3, np.float32)
            n[axis] = sign
            a, b = [(axis + 1) % 3, (axis + 2) % 3]
            base = len(pos)
            for da, db in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                p = c.copy()
                p[axis] += sign * h[axis]
                p[a] += da * h[a]
                p[b] += db * h[b]
                pos.append(p)
                nrm.append(n)
                uvs.append((u0 + (da + 1) / 2 * (u1 - u0), v0 + (db + 1) / 2 * (v1 - v0)))
            if sign > 0:  # counter-clockwise seen from outside
                faces += [(base, base + 1, base + 2), (base, base + 2, base + 3)]
            else:
                faces += [(base, base + 2, base + 1), (base, base + 3, base + 2)]
    nv = len(pos)
    bi = np.full((nv, 4), 255, np.uint8)
    bw = np.zeros((nv, 4), np.float32)
    if bone is not None:
        bi[:, 0] = BONE[bone]
        bw[:, 0] = 1.0
    return (np.array(pos, np.float32), np.array(nrm, np.float32), np.array(uvs, np.float32),
            bi, bw, np.array(faces, np.uint16))


def merge(boxes) -> Mesh:
    """One mesh in FILE convention: like the game's files, triangles are clockwise seen from
    outside in right-handed terms (the boxes are built counter-clockwise, so they are flipped)."""
    pos, nrm, uvs, bi, bw, faces = [], [], [], [], [], []
    n = 0
    for p, q, t, i, w, f in boxes:
        pos.append(p)
        nrm.append(q)
        uvs.append(t)
        bi.append(i)
        bw.append(w)
        faces.append(f + n)
        n += len(p)
    return Mesh(positions=np.concatenate(pos), normals=np.concatenate(nrm),
                uvs=np.concatenate(uvs), bone_indices=np.concatenate(bi),
                bone_weights=np.concatenate(bw),
                faces=np.concatenate(faces)[:, [0, 2, 1]].astype(np.uint16),
                bind_pose=np.zeros((0, 7), np.float32))


def bind_pose_file() -> np.ndarray:
    """[46,7] bind states, file convention (identity rotations)."""
    b = np.zeros((NUM_BONES, 7), np.float32)
    b[:, 6] = 1.0
    b[:, :3] = BONE_ORIGINS["hip"]
    for name, p in BONE_ORIGINS.items():
        b[BONE[name], :3] = p
    return b


def body_mesh() -> Mesh:
    # the body texture's v axis goes up in the file (PMD) and down in the pack: pass v up here
    boxes = []
    for c, s, bone, (u0, v0, u1, v1) in BODY_BOXES:
        boxes.append(box(c, s, (u0, 1 - v0, u1, 1 - v1), bone))
    m = merge(boxes)
    m.bind_pose = bind_pose_file()
    m.prop_points = [
        PropPoint("head", np.zeros(3, np.float32), np.array([0, 0, 0, 1], np.float32), BONE["head"]),
        PropPoint("shield_arm", np.array(SHIELD_OFFSET, np.float32),
                  np.array([0, 0, 0, 1], np.float32), BONE["shield_arm"]),
        PropPoint("root", np.zeros(3, np.float32), np.array([0, 0, 0, 1], np.float32), 255),
    ]
    return m


def shield_mesh() -> Mesh:
    return merge([box((0, 0, 0), SHIELD_SIZE, (0.1, 0.1, 0.9, 0.9), None)])


def body_texture_png(seed: int) -> bytes:
    from PIL import Image
    t = np.zeros((16, 16, 4), np.uint8)
    t[:, :8, 0] = 220  # left half red (the left arm)
    t[:, 8:, 2] = 220  # right half blue
    t[:, :, 1] = 20 + 10 * seed
    t[..., 3] = 255
    t[:4, :, 3] = 0  # top quarter: team colour
    buf = io.BytesIO()
    Image.fromarray(t).save(buf, "PNG")
    return buf.getvalue()


def solid_png(rgb) -> bytes:
    from PIL import Image
    t = np.zeros((8, 8, 3), np.uint8)
    t[:] = rgb
    buf = io.BytesIO()
    Image.fromarray(t).save(buf, "PNG")
    return buf.getvalue()


def walk_cycle(frames: int = 31, phase: float = 0.0) -> np.ndarray:
    """File-convention states of a walk in place: one foot planted (y = 0.1) slides +z (backwards
    for a character facing -z) at WALK_SPEED while the other swings; hip x encodes the frame."""
    b = np.repeat(bind_pose_file()[None], frames, 0)
    half = (frames - 1) // 2
    dt = FRAME_MS / 1000.0
    for f in range(frames):
        b[f, BONE["hip"], 0] = 0.01 * f  # lets tests read the source frame back
        g = (f + phase) % (frames - 1)
        stance, swing = ("foot_L", "foot_R") if g < half else ("foot_R", "foot_L")
        k = g if g < half else g - half
        z = -0.5 * WALK_SPEED * half * dt + WALK_SPEED * k * dt
        b[f, BONE[stance], 1], b[f, BONE[stance], 2] = 0.1, z
        b[f, BONE[swing], 1], b[f, BONE[swing], 2] = 0.5, -z
    return b


def idle(frames: int = 10) -> np.ndarray:
    b = np.repeat(bind_pose_file()[None], frames, 0)
    for f in range(frames):
        b[f, BONE["hip"], 0] = 0.01 * f
    return b


def actor_xml(mesh: str, textures, props, anims, material: str) -> bytes:
    g1 = "".join(f'<prop actor="{a}" attachpoint="{p}"/>' for p, a in props)
    g2 = "".join(f'<variant frequency="1" name="t{i}"><textures><texture file="{t}" '
                 f'name="baseTex"/></textures></variant>' for i, t in enumerate(textures))
    g3 = "".join(f'<animation file="{f}" name="{n}" speed="50"/>' for n, f in anims)
    return (f'<?xml version="1.0" encoding="utf-8"?><actor version="1"><group><variant '
            f'frequency="1" name="Base"><mesh>{mesh}</mesh><props>{g1}</props></variant>'
            f'</group><group>{g2}</group><group><variant frequency="1" name="Idle">'
            f'<animations>{g3}</animations></variant></group>'
            f'<material>{material}</material></actor>').encode()


def source_files() -> dict:
    files = {}
    files["art/meshes/skeletal/new/m_box.dae.cached.pmd"] = write_pmd(body_mesh())
    files["art/meshes/props/test_shield.dae.cached.pmd"] = write_pmd(shield_mesh())
    for i, t in enumerate(BODY_TEXTURES):
        files[f"art/textures/skins/{t}"] = body_texture_png(i)
    files["art/textures/skins/props/test_shield.png"] = solid_png((30, 200, 30))
    files[f"art/actors/{ACTOR}"] = actor_xml(
        "skeletal/new/m_box.dae", BODY_TEXTURES, [("shield_arm", SHIELD_ACTOR)],
        [("Idle", ANIMATIONS[0]), ("Walk", ANIMATIONS[2])], "player_trans.xml")
    files[f"art/actors/{SHIELD_ACTOR}"] = actor_xml("props/test_shield.dae",
                                                    ["props/test_shield.png"], [], [],
                                                    "default.xml")
    anims = {ANIMATIONS[0]: idle(10), ANIMATIONS[1]: idle(16), ANIMATIONS[2]: walk_cycle(31),
             ANIMATIONS[3]: walk_cycle(31, 7.0)}
    for name, bones in anims.items():
        files[f"art/animation/{name}.cached.psa"] = write_psa(Animation(name, FRAME_MS, bones))
    # horseback animations are never packed
    files["art/animation/biped/rider/test/ride.dae.cached.psa"] = write_psa(
        Animation("ride", FRAME_MS, idle(4)))
    return files


def build_tiny_pack(out_dir: str) -> dict:
    from .build_asset_pack import build_from_files
    files = source_files()
    os.makedirs(out_dir, exist_ok=True)
    return build_from_files(files.__getitem__, set(files), out_dir, "synth.testing")
