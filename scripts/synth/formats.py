"""Readers and writers for 0 A.D.'s binary model (PMD) and animation (PSA) files.

Both are little-endian. The writers exist so that tests can build tiny assets without the game's
data; they produce exactly what the readers accept.

PMD: b"PSMD", u32 version, u32 data size, u32 vertex count, [version >= 4: u32 UV-set count],
per vertex: position f32x3, normal f32x3, UV f32x2 per set, 4 bone indices u8 (255 = none),
4 weights f32; u32 face count, u16x3 per face; u32 bone count, per bone its bind state
(translation f32x3, quaternion xyzw f32x4, object space); [version >= 2: u32 prop-point count,
each: u32 name length, name bytes, translation f32x3, quaternion f32x4, u8 bone (255 = root)].

PSA: b"PSSA", u32 version, u32 data size, u32 name length, name, f32 frame length (milliseconds),
u32 bone count, u32 frame count, then frame-major bone states (translation f32x3 + quaternion f32x4,
object space).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

__all__ = ["FormatError", "Mesh", "PropPoint", "Animation", "read_pmd", "write_pmd", "read_psa",
           "write_psa"]


class FormatError(ValueError):
    """A PMD/PSA file that cannot be read; the message says what and where."""


@dataclass
class PropPoint:
    name: str
    translation: np.ndarray  # (3,) float32
    rotation: np.ndarray  # (4,) float32 quaternion x, y, z, w
    bone: int  # 255 = the model's root


@dataclass
class Mesh:
    positions: np.ndarray  # (V, 3) float32
    normals: np.ndarray  # (V, 3) float32
    uvs: np.ndarray  # (V, 2) float32, first UV set
    bone_indices: np.ndarray  # (V, 4) uint8, 255 = none
    bone_weights: np.ndarray  # (V, 4) float32
    faces: np.ndarray  # (F, 3) uint16
    bind_pose: np.ndarray  # (B, 7) float32: translation xyz + quaternion xyzw, object space
    prop_points: list = field(default_factory=list)  # list[PropPoint]
    version: int = 4


@dataclass
class Animation:
    name: str
    frame_length_ms: float
    bones: np.ndarray  # (frames, bones, 7) float32: translation xyz + quaternion xyzw


class _Reader:
    def __init__(self, data: bytes, what: str):
        self.data = memoryview(data)
        self.pos = 0
        self.what = what

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise FormatError(f"{self.what}: truncated at byte {self.pos} (wanted {n} more bytes, "
                              f"file has {len(self.data)})")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def f32(self) -> float:
        return struct.unpack("<f", self.take(4))[0]

    def array(self, dtype, count: int) -> np.ndarray:
        dt = np.dtype(dtype)
        return np.frombuffer(self.take(dt.itemsize * count), dtype=dt, count=count).copy()

    def string(self) -> str:
        n = self.u32()
        if n > 4096:
            raise FormatError(f"{self.what}: implausible string length {n} at byte {self.pos - 4}")
        return bytes(self.take(n)).decode("utf-8", errors="replace")


def _header(r: _Reader, magic: bytes) -> int:
    got = bytes(r.take(4))
    if got != magic:
        raise FormatError(f"{r.what}: not a {magic.decode()} file (starts with {got!r})")
    version = r.u32()
    size = r.u32()
    if size != len(r.data) - 12:
        raise FormatError(f"{r.what}: header says {size} data bytes, file has {len(r.data) - 12}")
    return version


def read_pmd(data: bytes, what: str = "PMD") -> Mesh:
    r = _Reader(data, what)
    version = _header(r, b"PSMD")
    if not 1 <= version <= 4:
        raise FormatError(f"{what}: unsupported PMD version {version} (this reader knows 1-4)")
    nverts = r.u32()
    nuv = r.u32() if version >= 4 else 1
    if nuv < 1:
        raise FormatError(f"{what}: mesh without UV set")
    vdt = np.dtype([("pos", "<f4", 3), ("nrm", "<f4", 3), ("uv", "<f4", (nuv, 2)),
                    ("bi", "u1", 4), ("bw", "<f4", 4)])
    verts = r.array(vdt, nverts)
    nfaces = r.u32()
    faces = r.array("<u2", 3 * nfaces).reshape(nfaces, 3)
    if nfaces and nverts and int(faces.max()) >= nverts:
        raise FormatError(f"{what}: face index {int(faces.max())} >= vertex count {nverts}")
    nbones = r.u32()
    bind = r.array("<f4", 7 * nbones).reshape(nbones, 7)
    props = []
    if version >= 2:
        for _ in range(r.u32()):
            name = r.string()
            t = r.array("<f4", 3)
            q = r.array("<f4", 4)
            bone = struct.unpack("<B", r.take(1))[0]
            props.append(PropPoint(name, t, q, bone))
    bi = verts["bi"].copy()
    if nbones == 0:
        bi[:] = 255
    elif ((bi != 255) & (bi >= nbones)).any():
        raise FormatError(f"{what}: vertex bone index >= bone count {nbones}")
    return Mesh(positions=verts["pos"].astype(np.float32), normals=verts["nrm"].astype(np.float32),
                uvs=verts["uv"][:, 0].astype(np.float32), bone_indices=bi,
                bone_weights=verts["bw"].astype(np.float32), faces=faces, bind_pose=bind,
                prop_points=props, version=version)


def write_pmd(mesh: Mesh) -> bytes:
    """Version-4 PMD with one UV set."""
    n = len(mesh.positions)
    vdt = np.dtype([("pos", "<f4", 3), ("nrm", "<f4", 3), ("uv", "<f4", 2), ("bi", "u1", 4),
                    ("bw", "<f4", 4)])
    v = np.zeros(n, vdt)
    v["pos"], v["nrm"], v["uv"] = mesh.positions, mesh.normals, mesh.uvs
    v["bi"], v["bw"] = mesh.bone_indices, mesh.bone_weights
    body = [struct.pack("<II", n, 1), v.tobytes(),
            struct.pack("<I", len(mesh.faces)), np.asarray(mesh.faces, "<u2").tobytes(),
            struct.pack("<I", len(mesh.bind_pose)), np.asarray(mesh.bind_pose, "<f4").tobytes(),
            struct.pack("<I", len(mesh.prop_points))]
    for p in mesh.prop_points:
        name = p.name.encode()
        body += [struct.pack("<I", len(name)), name, np.asarray(p.translation, "<f4").tobytes(),
                 np.asarray(p.rotation, "<f4").tobytes(), struct.pack("<B", p.bone)]
    data = b"".join(body)
    return b"PSMD" + struct.pack("<II", 4, len(data)) + data


def read_psa(data: bytes, what: str = "PSA") -> Animation:
    r = _Reader(data, what)
    version = _header(r, b"PSSA")
    if version != 1:
        raise FormatError(f"{what}: unsupported PSA version {version} (this reader knows 1)")
    name = r.string()
    frame_length = r.f32()
    nbones = r.u32()
    nframes = r.u32()
    states = r.array("<f4", nframes * nbones * 7).reshape(nframes, nbones, 7)
    return Animation(name=name, frame_length_ms=float(frame_length), bones=states)


def write_psa(anim: Animation) -> bytes:
    name = anim.name.encode()
    f, b, _ = anim.bones.shape
    data = (struct.pack("<I", len(name)) + name + struct.pack("<fII", anim.frame_length_ms, b, f)
            + np.asarray(anim.bones, "<f4").tobytes())
    return b"PSSA" + struct.pack("<II", 1, len(data)) + data
