"""PMD/PSA readers on hand-packed bytes, writer round trips, and the animation blob codec."""
import struct

import numpy as np
import pytest

from synth.formats import FormatError, Mesh, PropPoint, read_pmd, read_psa, \
    write_pmd, write_psa
from synth.pack import decode_animation_blob, encode_animation_blob


def hand_packed_pmd() -> bytes:
    """Version 4, one UV set: a single triangle on bone 0, one bone, one prop point."""
    body = struct.pack("<II", 3, 1)
    verts = [((0, 0, 0), (0, 0, 1), (0.0, 0.0)), ((1, 0, 0), (0, 0, 1), (1.0, 0.0)),
             ((0, 2, 0), (0, 0, 1), (0.0, 1.0))]
    for p, n, uv in verts:
        body += struct.pack("<3f3f2f4B4f", *p, *n, *uv, 0, 255, 255, 255, 1.0, 0, 0, 0)
    body += struct.pack("<I3H", 1, 0, 1, 2)
    body += struct.pack("<I7f", 1, 0.5, 1.5, 2.5, 0, 0, 0, 1)
    name = b"weapon_R"
    body += struct.pack("<II", 1, len(name)) + name + struct.pack("<7fB", 1, 2, 3, 0, 0, 0, 1, 0)
    return b"PSMD" + struct.pack("<II", 4, len(body)) + body


def test_pmd_hand_packed_bytes():
    m = read_pmd(hand_packed_pmd())
    assert m.version == 4
    np.testing.assert_array_equal(m.positions, [[0, 0, 0], [1, 0, 0], [0, 2, 0]])
    np.testing.assert_array_equal(m.uvs[2], [0.0, 1.0])
    np.testing.assert_array_equal(m.faces, [[0, 1, 2]])
    assert m.bone_indices[0].tolist() == [0, 255, 255, 255]
    assert m.bone_weights[0, 0] == 1.0
    np.testing.assert_allclose(m.bind_pose, [[0.5, 1.5, 2.5, 0, 0, 0, 1]])
    assert len(m.prop_points) == 1
    p = m.prop_points[0]
    assert (p.name, p.bone) == ("weapon_R", 0)
    np.testing.assert_array_equal(p.translation, [1, 2, 3])


def test_pmd_version_3_has_no_uv_set_count():
    v4 = hand_packed_pmd()
    # a version-3 file: same layout without the u32 UV-set count after the vertex count
    body = v4[12:16] + v4[20:]
    v3 = b"PSMD" + struct.pack("<II", 3, len(body)) + body
    m = read_pmd(v3)
    assert m.version == 3 and len(m.positions) == 3
    np.testing.assert_array_equal(m.positions[2], [0, 2, 0])


def test_pmd_round_trip():
    rng = np.random.default_rng(0)
    m = Mesh(positions=rng.normal(size=(5, 3)).astype(np.float32),
             normals=rng.normal(size=(5, 3)).astype(np.float32),
             uvs=rng.random((5, 2)).astype(np.float32),
             bone_indices=np.array([[0, 1, 255, 255]] * 5, np.uint8),
             bone_weights=np.array([[0.25, 0.75, 0, 0]] * 5, np.float32),
             faces=np.array([[0, 1, 2], [2, 3, 4]], np.uint16),
             bind_pose=rng.normal(size=(2, 7)).astype(np.float32),
             prop_points=[PropPoint("head", np.ones(3, np.float32),
                                    np.array([0, 0, 0, 1], np.float32), 1)])
    r = read_pmd(write_pmd(m))
    for field in ("positions", "normals", "uvs", "bone_indices", "bone_weights", "faces",
                  "bind_pose"):
        np.testing.assert_array_equal(getattr(r, field), getattr(m, field), err_msg=field)
    assert r.prop_points[0].name == "head" and r.prop_points[0].bone == 1


@pytest.mark.parametrize("damage, message", [
    (lambda b: b"XXXX" + b[4:], "not a PSMD"),
    (lambda b: b[:-5], "header says"),
    (lambda b: b[:12], "truncated"),
])
def test_pmd_errors_say_what(damage, message):
    data = damage(hand_packed_pmd())
    if message == "truncated":  # keep the header's size consistent so the body is what's short
        data = data[:4] + struct.pack("<II", 4, 0)
    with pytest.raises(FormatError, match=message):
        read_pmd(data, "x.pmd")


def test_pmd_rejects_face_index_out_of_range():
    b = bytearray(hand_packed_pmd())
    face_at = 12 + 8 + 3 * (12 + 12 + 8 + 4 + 16) + 4
    struct.pack_into("<H", b, face_at + 4, 7)  # third corner -> vertex 7 of 3
    with pytest.raises(FormatError, match="face index"):
        read_pmd(bytes(b))


def test_psa_hand_packed_bytes_and_round_trip():
    name = b"walk"
    states = np.arange(2 * 3 * 7, dtype=np.float32).reshape(2, 3, 7)
    body = struct.pack("<I", len(name)) + name + struct.pack("<fII", 33.5, 3, 2) + states.tobytes()
    data = b"PSSA" + struct.pack("<II", 1, len(body)) + body
    a = read_psa(data)
    assert a.name == "walk" and a.frame_length_ms == pytest.approx(33.5)
    np.testing.assert_array_equal(a.bones, states)
    assert write_psa(a) == data
    with pytest.raises(FormatError, match="not a PSSA"):
        read_psa(b"PSMD" + data[4:])


def test_animation_blob_is_lossless():
    rng = np.random.default_rng(3)
    bones = rng.normal(size=(50, 46, 7)).astype(np.float16)
    bones[10:20] = bones[9]  # repeated frames (the common case) and wrap-around differences
    bones[30] = np.float16(-65504)
    out = decode_animation_blob(encode_animation_blob(bones, [0, 25]))
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out.view(np.int16), bones.view(np.int16))
