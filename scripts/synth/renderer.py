"""Camera, light and render(): one character from a pack, posed, lit and drawn on the CPU.

Conventions (docs/SYNTH.md has the long version):
- World: right-handed, y up, the character's root on y = 0 at ``world_offset`` = (dx, dz), facing
  +z in bind pose (its left at +x).
- Camera: looks at the world origin (0, 0, 0) from azimuth/elevation, at the distance where one
  world unit at the origin's depth is ``scale`` pixels for a vertical field of view ``fov_deg``;
  the origin projects to ``origin_px`` (the principal point). azimuth 0 = camera in front of the
  character (+z), seeing its face; 90 = on the character's left (+x). elevation tilts the camera
  up and looking down. roll turns it about its viewing axis (positive: the scene turns clockwise).
- Pixels: (col c, row r) covers [c, c+1) x [r, r+1); keypoints are continuous in that frame.
- Depth: camera-space depth minus the origin's depth, times ``scale`` (so the same units as x/y at
  the origin's depth); +inf where nothing is drawn.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from . import kernels
from .skeleton import BONE, FACE_KEYPOINTS, FACE_OFFSETS, NUM_BONES, OPENPOSE_BONES, \
    OPENPOSE_NAMES, file_to_world_states, states_to_matrices

KIT_CACHE_SIZE = 32
NEAR_FRACTION = 0.05  # triangles closer than this fraction of the camera distance are dropped
JOINT_DEPTH_TOLERANCE = 0.45  # world units: joints sit inside limbs/torso
FACE_DEPTH_TOLERANCE = 0.12  # world units: nose/eyes/ears are on the surface
UNTEXTURED_GREY = 200
# The standard body's "head" prop point, used when a body mesh lacks one (file values, mirrored)
_DEFAULT_HEAD_PROP = file_to_world_states(np.array([0, 0, 0, -0.70710677, 0, 0, -0.70710677],
                                                   np.float32))

_KP_BONES = np.array([BONE[OPENPOSE_BONES[n]] if n in OPENPOSE_BONES else (-2 if n == "neck" else -1)
                      for n in OPENPOSE_NAMES], np.int64)
_FACE_OFFSETS = np.array([FACE_OFFSETS.get(n, (0.0, 0.0, 0.0)) for n in OPENPOSE_NAMES],
                         np.float64)
_KP_TOLERANCE = np.array([FACE_DEPTH_TOLERANCE if n in FACE_KEYPOINTS else JOINT_DEPTH_TOLERANCE
                          for n in OPENPOSE_NAMES])

__all__ = ["Camera", "Light", "RenderOutput", "render", "prepare", "skeleton_world",
           "keypoints_world", "posed_vertices"]


@dataclass(frozen=True)
class Camera:
    azimuth_deg: float = 0.0
    elevation_deg: float = 10.0
    scale: float = 40.0  # pixels per world unit at the origin's depth (a man is ~4.3 units)
    origin_px: tuple = (64.0, 176.0)  # where the world origin projects (output pixels)
    roll_deg: float = 0.0
    fov_deg: float = 25.0  # vertical field of view of the output image

    def focal_px(self, height: int) -> float:
        return 0.5 * height / math.tan(math.radians(self.fov_deg) * 0.5)

    def distance(self, height: int) -> float:
        """Camera-to-origin distance (world units) that gives ``scale`` at the origin."""
        return self.focal_px(height) / self.scale

    def rotation(self) -> np.ndarray:
        """World -> camera rotation; rows = camera right, up, forward (x right, y up, z ahead)."""
        az, el, ro = (math.radians(a) for a in (self.azimuth_deg, self.elevation_deg,
                                                 self.roll_deg))
        ca, sa, ce, se = math.cos(az), math.sin(az), math.cos(el), math.sin(el)
        fwd = (-sa * ce, -se, -ca * ce)
        right = (ca, 0.0, -sa)  # fwd x (0, 1, 0), normalised
        up = (right[1] * fwd[2] - right[2] * fwd[1],
              right[2] * fwd[0] - right[0] * fwd[2],
              right[0] * fwd[1] - right[1] * fwd[0])
        cr, sr = math.cos(ro), math.sin(ro)
        r2 = [cr * right[i] + sr * up[i] for i in range(3)]
        u2 = [-sr * right[i] + cr * up[i] for i in range(3)]
        return np.array([r2, u2, list(fwd)])

    def view_matrix(self, height: int, world_offset=(0.0, 0.0)) -> np.ndarray:
        """[3,4] character space -> camera space (the character placed at world_offset)."""
        rot = self.rotation()
        eye = -rot[2] * self.distance(height)  # camera position in world
        off = np.array([world_offset[0], 0.0, world_offset[1]])
        m = np.zeros((3, 4))
        m[:, :3] = rot
        m[:, 3] = rot @ (off - eye)
        return m

    def project(self, points, size, world_offset=(0.0, 0.0), view=None) -> np.ndarray:
        """Character-space points [N,3] -> [N,3]: x, y (output pixels), depth (pixel units,
        relative to the origin's depth). ``view``: view_matrix(size[1], world_offset) if
        already computed."""
        h = size[1]
        p = np.asarray(points, np.float64).reshape(-1, 3)
        v = self.view_matrix(h, world_offset) if view is None else view
        cam = p @ v[:, :3].T + v[:, 3]
        f = self.focal_px(h)
        z = np.maximum(cam[:, 2], 1e-9)
        out = np.empty((len(p), 3))
        out[:, 0] = self.origin_px[0] + f * cam[:, 0] / z
        out[:, 1] = self.origin_px[1] - f * cam[:, 1] / z
        out[:, 2] = (cam[:, 2] - self.distance(h)) * self.scale
        return out


@dataclass(frozen=True)
class Light:
    direction: tuple = (0.4, 0.75, 0.55)  # towards the light, world space (normalised here)
    ambient: float = 0.5
    diffuse: float = 0.6
    tint: tuple = (1.0, 1.0, 1.0)


@dataclass
class RenderOutput:
    rgb: np.ndarray  # uint8 [H,W,3], premultiplied by alpha: composite = rgb + bg * (1 - alpha)
    alpha: np.ndarray  # float32 [H,W] coverage of everything drawn
    props_alpha: np.ndarray  # float32 [H,W] coverage of held/carried objects
    depth: np.ndarray  # float32 [H,W] visible surface depth (pixel units, origin = 0), +inf empty
    keypoints: np.ndarray  # float32 [18,4] OpenPose-18: x, y, depth, visible (1/0)
    box: tuple  # (x0, y0, x1, y1) of alpha > 0, end exclusive; (0, 0, 0, 0) when empty

    def composite(self, background: np.ndarray) -> np.ndarray:
        """Over an RGB uint8 background of the same size."""
        bg = background.astype(np.float32)
        out = self.rgb.astype(np.float32) + bg * (1.0 - self.alpha[..., None])
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- per-identity preparation

@dataclass
class Kit:
    positions: np.ndarray
    normals: np.ndarray
    uvs: np.ndarray
    bone_indices: np.ndarray
    bone_weights: np.ndarray
    faces: np.ndarray
    tri_part: np.ndarray
    part_alpha_test: np.ndarray
    part_cull: np.ndarray
    part_is_object: np.ndarray
    tex: np.ndarray
    tex_off: np.ndarray
    tex_w: np.ndarray
    tex_h: np.ndarray
    inv_bind: np.ndarray  # [46,4,4] float64
    part_parent: list
    part_prop: list  # per part: (local [4,4] float64, bone) relative to its parent, or None
    head_prop: np.ndarray  # [4,4] the body's head prop point (face keypoints hang on it)


def _jitter_hsv(rgb: np.ndarray, jitter) -> np.ndarray:
    """rgb float32 [h,w,3] in 0..1 -> hue shifted (turns), saturation and value scaled."""
    import cv2
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb, np.float32), cv2.COLOR_RGB2HSV)
    hsv[..., 0] = np.mod(hsv[..., 0] + 360.0 * jitter[0], 360.0)
    hsv[..., 1] = np.clip(hsv[..., 1] * jitter[1], 0.0, 1.0)
    hsv[..., 2] = np.clip(hsv[..., 2] * jitter[2], 0.0, 1.0)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def bake_texture(rgba: np.ndarray, material: str, color, team, jitter=None) -> np.ndarray:
    """The colour a part shows before lighting, as uint8 RGBA: the game's rule
    rgb * mix(colour, 1, alpha) for player (team colour) and object (<color>) materials; alpha
    kept only for transparent materials (alpha test), else 255."""
    rgb = rgba[..., :3].astype(np.float32) / 255.0
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    if jitter is not None:
        rgb = _jitter_hsv(rgb, jitter)
    if material == "player":
        rgb = rgb * (np.asarray(team, np.float32) * (1.0 - a) + a)
    elif material == "object" and color:
        rgb = rgb * (np.asarray(color, np.float32) * (1.0 - a) + a)
    out = np.empty(rgba.shape[:2] + (4,), np.uint8)
    out[..., :3] = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
    out[..., 3] = rgba[..., 3] if material == "trans" else 255
    return out


def prepare(pack, ident) -> Kit:
    """Everything about an identity that does not change with the pose (cached on the pack)."""
    kit = pack.kit_cache.get(ident)
    if kit is not None:
        pack.kit_cache.move_to_end(ident)
        return kit
    pos, nrm, uvs, bidx, bw, faces, tri_part = [], [], [], [], [], [], []
    texs, tex_off, tex_w, tex_h, alpha_test, is_obj = [], [], [], [], [], []
    part_prop, part_parent = [], []
    nv = off = 0
    body = pack.mesh(ident.parts[0].mesh)
    inv_bind = np.tile(np.eye(4), (NUM_BONES, 1, 1))
    if body["bind_pose"] is not None:
        inv_bind = np.linalg.inv(states_to_matrices(body["bind_pose"]))
    for k, part in enumerate(ident.parts):
        m = pack.mesh(part.mesh)
        n = len(m["positions"])
        pos.append(m["positions"])
        nrm.append(m["normals"])
        uvs.append(m["uvs"])
        if k == 0:
            bidx.append(m["bone_indices"])
            bw.append(m["bone_weights"])
        else:  # rigid: one palette entry per part after the 46 bones
            bi = np.full((n, 4), -1, np.int32)
            bi[:, 0] = NUM_BONES + k
            ww = np.zeros((n, 4), np.float32)
            ww[:, 0] = 1.0
            bidx.append(bi)
            bw.append(ww)
        faces.append(m["faces"] + nv)
        tri_part.append(np.full(len(m["faces"]), k, np.int32))
        nv += n
        if part.texture >= 0:
            rgba = pack.texture(part.texture)
        else:
            rgba = np.full((1, 1, 4), UNTEXTURED_GREY, np.uint8)
        baked = bake_texture(rgba, part.material, part.color, ident.team_color,
                             ident.jitter_hsv if k == 0 else None)
        texs.append(baked.reshape(-1))
        tex_off.append(off)
        tex_h.append(baked.shape[0])
        tex_w.append(baked.shape[1])
        off += baked.size
        alpha_test.append(part.material == "trans")
        is_obj.append(part.is_object)
        part_parent.append(part.parent)
        if k == 0:
            part_prop.append(None)
        else:
            parent_mesh = pack.mesh(ident.parts[part.parent].mesh)
            pp = parent_mesh["props"].get(part.attach)
            if pp is None:
                part_prop.append((np.eye(4), -1))
            else:
                bone = pp[1]
                if bone == 255 or part.parent != 0 or body["bind_pose"] is None:
                    bone = -1
                part_prop.append((states_to_matrices(pp[0]), bone))
    hp = body["props"].get("head")
    head_prop = states_to_matrices(hp[0] if hp is not None else _DEFAULT_HEAD_PROP)
    kit = Kit(positions=np.ascontiguousarray(np.concatenate(pos), np.float32),
              normals=np.ascontiguousarray(np.concatenate(nrm), np.float32),
              uvs=np.ascontiguousarray(np.concatenate(uvs), np.float32),
              bone_indices=np.ascontiguousarray(np.concatenate(bidx), np.int32),
              bone_weights=np.ascontiguousarray(np.concatenate(bw), np.float32),
              faces=np.ascontiguousarray(np.concatenate(faces), np.int32),
              tri_part=np.concatenate(tri_part),
              part_alpha_test=np.array(alpha_test, np.bool_),
              part_cull=~np.array(alpha_test, np.bool_),  # the game culls opaque materials only
              part_is_object=np.array(is_obj, np.bool_),
              tex=np.concatenate(texs), tex_off=np.array(tex_off, np.int64),
              tex_w=np.array(tex_w, np.int64), tex_h=np.array(tex_h, np.int64),
              inv_bind=inv_bind, part_parent=part_parent, part_prop=part_prop,
              head_prop=head_prop)
    pack.kit_cache[ident] = kit
    while len(pack.kit_cache) > KIT_CACHE_SIZE:
        pack.kit_cache.popitem(last=False)
    return kit


def _palette(kit: Kit, bones: np.ndarray):
    """Bone transforms [46,3,4], skinning + part palette [46 + parts, 3, 4]."""
    nparts = len(kit.part_parent)
    anim = np.empty((NUM_BONES, 3, 4))
    pal = np.zeros((NUM_BONES + nparts, 3, 4))
    kernels.bone_palette(np.ascontiguousarray(bones, np.float64), kit.inv_bind, anim,
                         pal[:NUM_BONES])
    full = [None] * nparts
    for k in range(1, nparts):
        local, bone = kit.part_prop[k]
        parent = kit.part_parent[k]
        if parent == 0 and bone >= 0:  # hangs on a bone of the skeleton
            m = anim[bone] @ local
        elif parent == 0:  # on the body's origin
            m = local[:3]
        else:  # on another prop
            m = full[parent][:, :3] @ local[:3]
            m[:, 3] += full[parent][:, 3]
        full[k] = m
        pal[NUM_BONES + k] = m
    return anim, pal


def skeleton_world(bones: np.ndarray) -> np.ndarray:
    """Bone origins [46,3] (character space) of bone states [46,7]."""
    return np.asarray(bones, np.float64)[:, :3].copy()


def keypoints_world(kit_or_head_prop, bones: np.ndarray) -> np.ndarray:
    """OpenPose-18 points [18,3] in character space for bone states [46,7]; the first argument
    is a Kit (see prepare) or the body's head prop point as a [4,4] matrix."""
    head_prop = kit_or_head_prop.head_prop if isinstance(kit_or_head_prop, Kit) \
        else np.asarray(kit_or_head_prop, np.float64)
    out = np.empty((18, 3))
    kernels.keypoints_world(np.asarray(bones, np.float64), head_prop, _FACE_OFFSETS,
                            _KP_BONES, out)
    return out


_local = threading.local()


def _sample_buffers(hs: int, ws: int):
    """Per-thread sample buffers, reused between calls of the same size (no page faults)."""
    bufs = getattr(_local, "bufs", None)
    if bufs is None or bufs[0].shape != (hs, ws):
        bufs = (np.empty((hs, ws), np.float64), np.empty((hs, ws), np.int32),
                np.empty((hs, ws), np.float32), np.empty((hs, ws), np.float32))
        _local.bufs = bufs
    return bufs


def render(pack, ident, bones: np.ndarray, cam: Camera, light: Light = Light(),
           size=(128, 192), supersample: int = 2, world_offset=(0.0, 0.0)) -> RenderOutput:
    """Draw ``ident`` in pose ``bones`` ([46,7], e.g. motion.bones[f]). size = (W, H)."""
    w, h = int(size[0]), int(size[1])
    ss = max(1, int(supersample))
    kit = prepare(pack, ident)
    bones = np.asarray(bones, np.float64)
    if bones.shape != (NUM_BONES, 7):
        raise ValueError(f"bones must be [{NUM_BONES},7] bone states, got {bones.shape}")
    anim, pal = _palette(kit, bones)
    view = cam.view_matrix(h, world_offset)
    fpx = cam.focal_px(h)
    dist = cam.distance(h)
    ox, oy = float(cam.origin_px[0]), float(cam.origin_px[1])
    nv = len(kit.positions)
    xy = np.empty((nv, 2), np.float64)
    zc = np.empty(nv, np.float64)
    shade = np.empty(nv, np.float64)
    cam_xyz = np.empty((nv, 3), np.float64)
    ldir = np.asarray(light.direction, np.float64)
    ldir = ldir / max(float(np.linalg.norm(ldir)), 1e-12)
    kernels.skin_project(kit.positions, kit.normals, kit.bone_indices, kit.bone_weights, pal,
                         view, fpx * ss, ox * ss, oy * ss, ldir, float(light.ambient),
                         float(light.diffuse), xy, zc, shade, cam_xyz)
    hs, ws = h * ss, w * ss
    izbuf, tri, b1, b2 = _sample_buffers(hs, ws)
    bbox = np.empty(4, np.int64)
    kernels.rasterize(xy, zc, kit.uvs, kit.faces, kit.tri_part, kit.part_alpha_test,
                      kit.part_cull, kit.tex, kit.tex_off, kit.tex_w, kit.tex_h,
                      NEAR_FRACTION * dist, izbuf, tri, b1, b2, bbox)
    rgb = np.zeros((h, w, 3), np.uint8)
    alpha = np.zeros((h, w), np.float32)
    props = np.zeros((h, w), np.float32)
    depth = np.full((h, w), np.inf, np.float32)
    box = (0, 0, 0, 0)
    if bbox[0] <= bbox[1]:
        r0, r1 = int(bbox[0]) // ss, int(bbox[1]) // ss + 1
        c0, c1 = int(bbox[2]) // ss, int(bbox[3]) // ss + 1
        box = (c0, r0, c1, r1)
        kernels.shade_resolve(izbuf, tri, b1, b2, kit.faces, kit.tri_part, kit.part_is_object,
                              kit.uvs, shade, kit.tex, kit.tex_off, kit.tex_w, kit.tex_h,
                              np.asarray(light.tint, np.float64), ss, dist, float(cam.scale),
                              r0, r1, c0, c1, rgb, alpha, props, depth)
    kp = keypoints_2d(kit, bones, cam, (w, h), world_offset, depth, view)
    return RenderOutput(rgb=rgb, alpha=alpha, props_alpha=props, depth=depth, keypoints=kp,
                        box=box)


def posed_vertices(pack, ident, bones: np.ndarray):
    """Skinned vertices of every part in character space, [V,3], and each vertex's part index
    [V] (parts as in ident.parts): the same skinning the renderer uses."""
    kit = prepare(pack, ident)
    _, pal = _palette(kit, np.asarray(bones, np.float64))
    nv = len(kit.positions)
    ident_view = np.zeros((3, 4))
    ident_view[:, :3] = np.eye(3)
    out = np.empty((nv, 3))
    kernels.skin_project(kit.positions, kit.normals, kit.bone_indices, kit.bone_weights, pal,
                         ident_view, 1.0, 0.0, 0.0, np.array([0.0, 1.0, 0.0]), 0.5, 0.5,
                         np.empty((nv, 2)), np.empty(nv), np.empty(nv), out)
    part = np.concatenate([np.full(len(pack.mesh(p.mesh)["positions"]), k, np.int64)
                           for k, p in enumerate(ident.parts)])
    return out, part


def keypoints_2d(kit, bones, cam: Camera, size, world_offset, depth: np.ndarray,
                 view=None) -> np.ndarray:
    """[18,4]: x, y, depth (pixel units) and visibility: 1 when inside the image and not behind
    the drawn surface at its pixel by more than the tolerance (joints lie inside the body, so
    they get a larger tolerance than the face points on its surface)."""
    w, h = size
    p = cam.project(keypoints_world(kit, bones), size, world_offset, view)
    out = np.zeros((18, 4), np.float32)
    out[:, :3] = p
    c = np.floor(p[:, 0]).astype(np.int64)
    r = np.floor(p[:, 1]).astype(np.int64)
    inside = (c >= 0) & (c < w) & (r >= 0) & (r < h)
    surface = np.full(18, np.inf)
    surface[inside] = depth[r[inside], c[inside]]
    tol = _KP_TOLERANCE * cam.scale
    out[:, 3] = inside & (~np.isfinite(surface) | (p[:, 2] <= surface + tol))
    return out
