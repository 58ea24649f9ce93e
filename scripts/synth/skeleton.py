"""The 46-bone biped skeleton, OpenPose-18 keypoints, and the file-to-world coordinate change.

World convention used everywhere in this package (pack, renderer, keypoints): right-handed, y up,
the character stands on y = 0 and faces +z in bind pose, so its LEFT side is +x.

0 A.D.'s files are left-handed relative to that: in them the character faces -z while its *_L bones
are at +x. Negating z (a mirror, determinant -1) turns them into the convention above without
swapping any names: a bone named *_L ends up on the person's left. ``file_to_world_*`` apply it
(positions/normals: z -> -z; quaternions: (x, y, z, w) -> (-x, -y, z, w)). The builder applies it
once; everything in a pack is already in world convention.
"""
from __future__ import annotations

import numpy as np

BONE_NAMES = (
    "hip", "spine", "spine1", "chest", "shoulder_L", "arm_L", "forearm_L", "hand_L", "finger_L",
    "fingertip_L", "shield", "weapon_bow", "ammo", "weapon_L", "shield_arm", "neck", "head",
    "helmet", "neck_guard", "shoulder_R", "arm_R", "forearm_R", "hand_R", "finger_R",
    "fingertip_R", "weapon_R", "projectile", "cape1", "cape2", "cape3", "thigh_L", "leg_L",
    "foot_L", "thigh_R", "leg_R", "foot_R", "sheath_01_R", "sheath_01_L", "sheath_02_R",
    "sheath_02_L", "quiver_R", "quiver_L", "knee_L", "knee_R", "elbow_L", "elbow_R")
NUM_BONES = len(BONE_NAMES)
BONE = {n: i for i, n in enumerate(BONE_NAMES)}
_PARENT_NAMES = {
    "spine": "hip", "spine1": "spine", "chest": "spine1", "shoulder_L": "chest",
    "arm_L": "shoulder_L", "forearm_L": "arm_L", "hand_L": "forearm_L", "finger_L": "hand_L",
    "fingertip_L": "finger_L", "shield": "hand_L", "weapon_bow": "hand_L", "ammo": "hand_L",
    "weapon_L": "hand_L", "shield_arm": "forearm_L", "neck": "chest", "head": "neck",
    "helmet": "head", "neck_guard": "neck", "shoulder_R": "chest", "arm_R": "shoulder_R",
    "forearm_R": "arm_R", "hand_R": "forearm_R", "finger_R": "hand_R", "fingertip_R": "finger_R",
    "weapon_R": "hand_R", "projectile": "hand_R", "cape1": "chest", "cape2": "cape1",
    "cape3": "cape2", "thigh_L": "hip", "leg_L": "thigh_L", "foot_L": "leg_L", "thigh_R": "hip",
    "leg_R": "thigh_R", "foot_R": "leg_R", "sheath_01_R": "hip", "sheath_01_L": "hip",
    "sheath_02_R": "hip", "sheath_02_L": "hip", "quiver_R": "hip", "quiver_L": "hip"}
BONE_PARENTS = tuple(BONE[_PARENT_NAMES[n]] if n in _PARENT_NAMES else -1 for n in BONE_NAMES)

OPENPOSE_NAMES = ("nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow",
                  "l_wrist", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye",
                  "l_eye", "r_ear", "l_ear")
# Body keypoints: the origin of one bone (neck = mean of both arm bones' origins).
OPENPOSE_BONES = {
    "r_shoulder": "arm_R", "r_elbow": "forearm_R", "r_wrist": "hand_R",
    "l_shoulder": "arm_L", "l_elbow": "forearm_L", "l_wrist": "hand_L",
    "r_hip": "thigh_R", "r_knee": "leg_R", "r_ankle": "foot_R",
    "l_hip": "thigh_L", "l_knee": "leg_L", "l_ankle": "foot_L"}
# Face keypoints in the frame of the body mesh's "head" prop point (the frame the head mesh is
# drawn in), world convention: measured on the standard head mesh (props/new/dude_head) by
# rendering it and reading the nose tip, eye centres and ear openings off the surface.
FACE_OFFSETS = {
    "nose": (0.0, 0.132, 0.300),
    "r_eye": (-0.085, 0.234, 0.206), "l_eye": (0.085, 0.234, 0.206),
    "r_ear": (-0.178, 0.189, 0.0), "l_ear": (0.178, 0.189, 0.0)}
# Surface keypoints (face) are tested for visibility with a tighter depth tolerance than joints,
# which lie inside limbs (world units; see render.keypoint_visibility).
FACE_KEYPOINTS = ("nose", "r_eye", "l_eye", "r_ear", "l_ear")


def file_to_world_points(p: np.ndarray) -> np.ndarray:
    out = np.array(p, dtype=np.float32, copy=True)
    out[..., 2] *= -1
    return out


def file_to_world_states(s: np.ndarray) -> np.ndarray:
    """Bone states [..., 7] (translation xyz, quaternion xyzw): mirror z."""
    out = np.array(s, dtype=np.float32, copy=True)
    out[..., 2] *= -1
    out[..., 3] *= -1
    out[..., 4] *= -1
    return out


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Quaternions [..., 4] (x, y, z, w; normalised here) -> rotation matrices [..., 3, 3]."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    m = np.empty(q.shape[:-1] + (3, 3))
    m[..., 0, 0] = 1 - 2 * (y * y + z * z)
    m[..., 0, 1] = 2 * (x * y - z * w)
    m[..., 0, 2] = 2 * (x * z + y * w)
    m[..., 1, 0] = 2 * (x * y + z * w)
    m[..., 1, 1] = 1 - 2 * (x * x + z * z)
    m[..., 1, 2] = 2 * (y * z - x * w)
    m[..., 2, 0] = 2 * (x * z - y * w)
    m[..., 2, 1] = 2 * (y * z + x * w)
    m[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return m


def states_to_matrices(s: np.ndarray) -> np.ndarray:
    """Bone states [..., 7] -> 4x4 matrices [..., 4, 4] (float64)."""
    s = np.asarray(s)
    m = np.zeros(s.shape[:-1] + (4, 4))
    m[..., :3, :3] = quat_to_matrix(s[..., 3:7])
    m[..., :3, 3] = s[..., :3]
    m[..., 3, 3] = 1.0
    return m


def quat_slerp_linear(q0: np.ndarray, q1: np.ndarray, t) -> np.ndarray:
    """Normalised linear interpolation of quaternions [..., 4] (shortest arc)."""
    t = np.asarray(t, dtype=np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    q = q0 * (1 - t) + q1 * t
    return q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
