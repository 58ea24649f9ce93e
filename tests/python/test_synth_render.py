"""The renderer on the tiny box man of synth.testing: skinning, coverage, depth, keypoints,
visibility, premultiplied colour, determinism and handedness."""
import dataclasses
import math

import numpy as np
import pytest

from synth import AssetPack, Camera, Light, keypoints_world, posed_vertices, prepare, render
from synth import testing as T
from synth.renderer import bake_texture
from synth.skeleton import BONE, OPENPOSE_NAMES

W, H = 128, 192
KP = {n: i for i, n in enumerate(OPENPOSE_NAMES)}


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("synth_render_pack"))
    T.build_tiny_pack(out)
    return AssetPack.load(out)


@pytest.fixture(scope="module")
def ident(pack):
    i = pack.sample_identity(np.random.default_rng(0), split="all")
    return dataclasses.replace(i, jitter_hsv=(0.0, 1.0, 1.0), team_color=(1.0, 1.0, 1.0))


@pytest.fixture(scope="module")
def bind(pack, ident):
    return pack.mesh(ident.parts[0].mesh)["bind_pose"].astype(np.float32)


def front_projection(cam, p, size=(W, H), offset=(0.0, 0.0)):
    """Pinhole projection written out for azimuth 0, elevation 0, no roll: the camera sits on
    +z at distance D looking down -z, image x = world x, image y = -world y."""
    f = 0.5 * size[1] / math.tan(math.radians(cam.fov_deg) / 2)
    d = f / cam.scale
    x, y, z = p[0] + offset[0], p[1], p[2] + offset[1]
    zc = d - z
    return (cam.origin_px[0] + f * x / zc, cam.origin_px[1] - f * y / zc, (zc - d) * cam.scale)


def test_bind_pose_skinning_is_identity_and_one_bone_moves_only_its_vertices(pack, ident, bind):
    body = pack.mesh(ident.parts[0].mesh)
    v0, part = posed_vertices(pack, ident, bind)
    np.testing.assert_allclose(v0[part == 0], body["positions"], atol=1e-5)
    posed = bind.copy()
    s = math.sqrt(0.5)
    posed[BONE["arm_L"], 3:] = (0.0, 0.0, s, s)  # 90 degrees about z, around its own origin
    v1, _ = posed_vertices(pack, ident, posed)
    moved = (body["bone_indices"][:, 0] == BONE["arm_L"])
    assert moved.sum() == 24  # the left arm box
    o = bind[BONE["arm_L"], :3]
    rel = body["positions"][moved] - o
    expected = np.stack([-rel[:, 1], rel[:, 0], rel[:, 2]], 1) + o
    np.testing.assert_allclose(v1[part == 0][moved], expected, atol=1e-5)
    np.testing.assert_allclose(v1[part == 0][~moved], body["positions"][~moved], atol=1e-6)
    np.testing.assert_allclose(v1[part == 1], v0[part == 1], atol=1e-6)  # shield: other bone


def test_coverage_where_the_geometry_projects(pack, ident, bind):
    cam = Camera(azimuth_deg=0, elevation_deg=0, scale=40, origin_px=(64, 180), fov_deg=25)
    out = render(pack, ident, bind, cam, Light(), size=(W, H), supersample=2)
    # inside the torso's front face (x in +-0.4, y in 2.0..3.4 at z = +0.2)
    x0, y_top, _ = front_projection(cam, (-0.3, 3.3, 0.2))
    x1, y_bot, _ = front_projection(cam, (0.3, 2.1, 0.2))
    assert (out.alpha[int(y_top) + 1:int(y_bot), int(x0) + 1:int(x1)] == 1.0).all()
    # what is seen there is the torso's front face (z = +0.2), not its inside: back faces of
    # opaque materials are culled as in the game, and the depth buffer keeps the nearest
    _, yc, _ = front_projection(cam, (0.0, 2.7, 0.2))
    assert out.depth[int(yc), int(cam.origin_px[0])] == pytest.approx(-0.2 * cam.scale, abs=0.05)
    # nothing beyond the shield (the outermost part, |x| < 0.75) or above the head (y 4.1)
    xl, _, _ = front_projection(cam, (-0.9, 2.5, 0.5))
    xr, _, _ = front_projection(cam, (0.9, 2.5, 0.5))
    _, yh, _ = front_projection(cam, (0.0, 4.2, 0.5))
    assert (out.alpha[:, :int(xl)] == 0).all() and (out.alpha[:, int(xr) + 1:] == 0).all()
    assert (out.alpha[:int(yh)] == 0).all()
    bx0, by0, bx1, by1 = out.box
    assert bx0 >= int(xl) and bx1 <= int(xr) + 1 and by0 >= int(yh)
    assert out.alpha[by0:by1, bx0:bx1].any() and (out.alpha[:, bx1:] == 0).all()
    # supersampling gives fractional edges; colour is premultiplied by coverage
    assert ((out.alpha > 0) & (out.alpha < 1)).any()
    cap = np.floor(255.0 * out.alpha + 1e-6)
    assert (out.rgb <= cap[..., None]).all()
    assert (out.rgb[out.alpha == 0] == 0).all()
    assert np.isinf(out.depth[out.alpha == 0]).all() and np.isfinite(out.depth[out.alpha > 0]).all()


def test_depth_ordering_and_props_alpha(pack, ident, bind):
    # from the character's left (azimuth 90) the shield is in front of the left arm and torso
    cam = Camera(azimuth_deg=90, elevation_deg=0, scale=40, origin_px=(64, 180), fov_deg=25)
    out = render(pack, ident, bind, cam, Light(), size=(W, H), supersample=2)
    kit = prepare(pack, ident)
    shield_centre = np.array([0.5 + 0.2, 2.6, 0.0])  # shield_arm bone + prop offset (world)
    x, y, _ = cam.project(shield_centre[None], (W, H))[0]
    c, r = int(x), int(y)
    assert out.props_alpha[r, c] == 1.0 and out.alpha[r, c] == 1.0
    # its outer face is at x = 0.7 + 0.025: depth relative to the origin, in pixels
    assert out.depth[r, c] == pytest.approx(-(0.7 + 0.025) * cam.scale, abs=0.05)
    # without the shield the same pixel shows the arm, farther away, and no object
    bare = dataclasses.replace(ident, parts=ident.parts[:1])
    out2 = render(pack, bare, bind, cam, Light(), size=(W, H), supersample=2)
    assert out2.props_alpha[r, c] == 0.0
    assert out2.depth[r, c] == pytest.approx(-(0.55 + 0.1) * cam.scale, abs=0.05)
    assert out2.depth[r, c] > out.depth[r, c]
    assert kit.part_is_object.tolist() == [False, True]
    assert (out.props_alpha <= out.alpha + 1e-6).all()


def test_keypoints_project_where_the_math_says(pack, ident, bind):
    cam = Camera(azimuth_deg=0, elevation_deg=0, scale=30, origin_px=(60.5, 170.25), fov_deg=30)
    offset = (0.4, -0.8)
    out = render(pack, ident, bind, cam, Light(), size=(W, H), supersample=1,
                 world_offset=offset)
    world = keypoints_world(prepare(pack, ident), bind)
    for i, p in enumerate(world):
        assert out.keypoints[i, :3] == pytest.approx(front_projection(cam, p, offset=offset),
                                                     abs=1e-3)
    # body keypoints are bone origins: the left wrist is hand_L, the neck the shoulders' mean
    np.testing.assert_allclose(world[KP["l_wrist"]], bind[BONE["hand_L"], :3], atol=1e-6)
    np.testing.assert_allclose(world[KP["neck"]], (bind[BONE["arm_L"], :3] +
                                                   bind[BONE["arm_R"], :3]) / 2, atol=1e-6)
    # a tilted, rolled camera agrees with Camera.project (used for the keypoints)
    cam2 = Camera(azimuth_deg=40, elevation_deg=25, scale=30, origin_px=(60, 170), roll_deg=10)
    out2 = render(pack, ident, bind, cam2, Light(), size=(W, H), supersample=1)
    np.testing.assert_allclose(out2.keypoints[:, :3], cam2.project(world, (W, H)), atol=1e-3)


def test_visibility_flags(pack, ident, bind):
    front = Camera(azimuth_deg=0, elevation_deg=5, scale=40, origin_px=(64, 180))
    back = dataclasses.replace(front, azimuth_deg=180)
    kf = render(pack, ident, bind, front, Light(), size=(W, H)).keypoints
    kb = render(pack, ident, bind, back, Light(), size=(W, H)).keypoints
    for name in ("nose", "r_eye", "l_eye", "l_wrist", "r_wrist", "neck", "l_knee"):
        assert kf[KP[name], 3] == 1, name
    for name in ("nose", "r_eye", "l_eye"):  # the head is in the way
        assert kb[KP[name], 3] == 0, name
    assert kb[KP["l_wrist"], 3] == 1
    # seen from its left side, the right wrist is behind the torso
    side = render(pack, ident, bind, dataclasses.replace(front, azimuth_deg=90), Light(),
                  size=(W, H)).keypoints
    assert side[KP["l_wrist"], 3] == 1 and side[KP["r_wrist"], 3] == 0
    # outside the image: flagged 0 but still reported where it projects
    low = render(pack, ident, bind, dataclasses.replace(front, origin_px=(64, 250)), Light(),
                 size=(W, H)).keypoints
    assert low[KP["r_ankle"], 3] == 0 and low[KP["r_ankle"], 1] > H


def test_handedness_left_side_on_the_image_right_from_the_front(pack, ident, bind):
    """The box man's left arm (bones *_L, +x in the files, which face -z) has the red half of
    the texture. Seen from the front the person's left must be on the image's right."""
    cam = Camera(azimuth_deg=0, elevation_deg=0, scale=40, origin_px=(64, 180))
    bare = dataclasses.replace(ident, parts=ident.parts[:1])
    out = render(pack, bare, bind, cam, Light(ambient=1.0, diffuse=0.0), size=(W, H))
    red = (out.rgb[..., 0] > 150) & (out.rgb[..., 2] < 80)
    blue = (out.rgb[..., 2] > 150) & (out.rgb[..., 0] < 80)
    assert red.sum() > 20 and blue.sum() > 200
    assert np.nonzero(red)[1].mean() > 64 + 10  # left arm: image right
    kp = out.keypoints
    assert kp[KP["l_wrist"], 0] > 64 > kp[KP["r_wrist"], 0]
    assert kp[KP["l_eye"], 0] > kp[KP["r_eye"], 0]
    # the face looks at the camera: the nose is the nearest part of the head
    assert kp[KP["nose"], 2] < kp[KP["l_ear"], 2]
    nose_px = out.depth[int(kp[KP["nose"], 1]), int(kp[KP["nose"], 0])]
    assert nose_px == pytest.approx(-0.3 * cam.scale, abs=0.5)  # the nose box's front, z=+0.3
    # from behind, mirrored on the image
    back = render(pack, bare, bind, dataclasses.replace(cam, azimuth_deg=180),
                  Light(ambient=1.0, diffuse=0.0), size=(W, H))
    red_b = (back.rgb[..., 0] > 150) & (back.rgb[..., 2] < 80)
    assert np.nonzero(red_b)[1].mean() < 64 - 10


def test_same_seed_same_pixels(pack):
    outs = []
    for _ in range(2):
        rng = np.random.default_rng(11)
        ident = pack.sample_identity(rng)
        motion = pack.sample_motion(rng, frames=3, identity=ident)
        cam = Camera(azimuth_deg=float(rng.uniform(0, 360)), elevation_deg=10, scale=35,
                     origin_px=(64, 180))
        pack.kit_cache.clear()
        outs.append(render(pack, ident, motion.bones[2], cam, Light(), size=(W, H)))
    a, b = outs
    for field in ("rgb", "alpha", "props_alpha", "depth", "keypoints"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    assert a.box == b.box


def test_bake_texture_team_colour_and_transparency():
    tex = np.zeros((2, 2, 4), np.uint8)
    tex[..., :3] = 200
    tex[0, :, 3] = 0  # team-colour area
    tex[1, :, 3] = 255
    team = (1.0, 0.5, 0.0)
    p = bake_texture(tex, "player", (), team)
    np.testing.assert_array_equal(p[0, 0, :3], [200, 100, 0])
    np.testing.assert_array_equal(p[1, 0, :3], [200, 200, 200])
    assert (p[..., 3] == 255).all()
    t = bake_texture(tex, "trans", (), team)
    np.testing.assert_array_equal(t[..., 3], tex[..., 3])  # alpha kept for the alpha test
    np.testing.assert_array_equal(t[..., :3], tex[..., :3])
    o = bake_texture(tex, "object", (0.5, 0.5, 0.5), team)
    np.testing.assert_array_equal(o[0, 0, :3], [100, 100, 100])
    j = bake_texture(tex, "opaque", (), team, jitter=(0.0, 1.0, 0.5))
    np.testing.assert_array_equal(j[..., :3], 100)
