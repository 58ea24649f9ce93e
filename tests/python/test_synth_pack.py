"""The pack builder on a tiny hand-made asset tree (synth.testing), identities and motions."""
import dataclasses

import numpy as np
import pytest

from synth import AssetPack
from synth import testing as T
from synth.build_asset_pack import anim_kind, split_animations, split_textures, texture_family
from synth.skeleton import BONE


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("synth_pack"))
    counts = T.build_tiny_pack(out)
    assert counts["problems"] == 0
    return AssetPack.load(out)


def test_pack_contents_and_conversion(pack):
    c = pack.counts
    assert (c["actors"], c["meshes"], c["body_meshes"]) == (1, 2, 1)
    assert c["animations_train"] + c["animations_test"] == 4  # the rider animation is left out
    body = pack.mesh([i for i, m in enumerate(pack.meshes) if m["name"].startswith("skeletal")][0])
    # mirrored into world convention: the left arm stays at +x, the nose moves to +z
    assert body["bind_pose"][BONE["arm_L"], 0] == pytest.approx(0.45)
    nose_z = body["positions"][:, 2].max()
    assert nose_z == pytest.approx(0.3, abs=1e-3)
    # positions survive int16 quantisation to well under a millimetre of a 4-unit man
    src = T.body_mesh()
    expected = src.positions * np.array([1, 1, -1], np.float32)
    assert np.abs(np.sort(body["positions"], 0) - np.sort(expected, 0)).max() < 2e-4
    # PMD v goes up, the pack's v goes down the texture rows
    np.testing.assert_allclose(np.sort(body["uvs"][:, 1]), np.sort(1 - src.uvs[:, 1]), atol=1e-3)


def test_splits_keep_held_out_body_textures_out_of_training(pack):
    test_tex = {i for i, t in enumerate(pack.textures) if t["split"] == "test"}
    assert test_tex, "the tiny pack holds one texture family out"
    rng = np.random.default_rng(0)
    for _ in range(40):
        assert pack.sample_identity(rng, split="train").body_texture not in test_tex
        assert pack.sample_identity(rng, split="test").body_texture in test_tex


def test_split_rules():
    texs = [f"hele/tunic_{i:02d}_{j:02d}.png" for i in range(10) for j in range(5)]
    test = split_textures(texs)
    assert len(test) >= round(0.08 * len(texs))
    fams = {texture_family(t) for t in test}
    assert all(t in test for t in texs if texture_family(t) in fams)  # whole families out
    recs = [{"name": f"a{i}", "cycle": i % 4 == 0} for i in range(100)]
    held = split_animations(recs)
    assert any(r["cycle"] for r in recs if r["name"] in held)
    assert 6 <= len(held) <= 10
    assert split_animations(recs) == held  # deterministic
    assert anim_kind("biped/infantry/hoplite/walk_relax.dae") == "walk"
    assert anim_kind("biped/gatherer/carry_grain_m.dae") == "walk"
    assert anim_kind("biped/gatherer/idle_carry_grain_m.dae") == "idle"
    assert anim_kind("biped/infantry/death_a.dae") == "death"
    assert anim_kind("biped/fisher/gaul_move.dae") == "other"  # rowing, in a boat


def test_identity_parts_and_state(pack):
    ident = pack.sample_identity(np.random.default_rng(1))
    assert [p.attach for p in ident.parts] == ["", "shield_arm"]
    assert ident.parts[0].material == "player" and not ident.parts[0].is_object
    assert ident.parts[1].is_object  # a shield is a held object
    assert ident.animations  # the actor's own Idle/Walk
    dataclasses.replace(ident)  # frozen dataclass, hashable
    assert hash(ident) == hash(dataclasses.replace(ident))


def test_variant_merge_follows_the_game(pack):
    def variant(name="", freq=1, mesh=-1, tex=-1, props=(), anims=()):
        return {"name": name, "freq": freq, "mesh": mesh, "tex": tex, "props": list(props),
                "color": None, "anims": list(anims)}
    base = variant(mesh=3, props=[["head", "head_a", False], ["head", "helmet_b", False],
                                  ["weapon_R", "spear", True]])
    actor = {"groups": [[base],
                        [variant("a", 1, tex=5), variant("b", 0, tex=6)],
                        [variant("Idle", 1), variant("carry", 0, props=[["weapon_R", "", False],
                                                                        ["back", "basket", True]])]]}
    rng = np.random.default_rng(0)
    r = pack._choose(actor, rng, set(), None)
    # two props at one attach point in one variant both stay; frequency 0 is never drawn
    assert r["props"] == [("head", "head_a", False), ("head", "helmet_b", False),
                          ("weapon_R", "spear", True)]
    assert (r["mesh"], r["tex"]) == (3, 5)
    # a selected state variant wins; an empty prop removes, a new one adds
    r = pack._choose(actor, rng, {"carry", "b"}, None)
    assert r["tex"] == 6
    assert r["props"] == [("head", "head_a", False), ("head", "helmet_b", False),
                          ("back", "basket", True)]


def test_walk_cycles_walk_in_place_with_measured_velocity(pack):
    walk = [a for a in pack.animations if a["kind"] == "walk"]
    assert walk and all(a["cycle"] for a in walk)
    for a in walk:
        vx, vz = a["velocity"]
        assert vz == pytest.approx(T.WALK_SPEED, rel=0.02) and abs(vx) < 1e-3
        assert a["root_drift"] < 0.5  # hip x drifts by the test's frame marker only


def test_sample_motion_resamples_and_loops(pack):
    idx = pack.animation_index("biped/test/walk_relax.dae")  # 31 frames at 30 fps
    m = pack.sample_motion(np.random.default_rng(2), frames=12, fps=10.0, split="all", index=idx)
    assert m.bones.shape == (12, 46, 7) and m.bones.dtype == np.float32
    assert m.cycle and m.loops and m.fps == 10.0 and not m.root_moves
    # the test animation writes 0.01 * frame into the hip's x: 30 fps / 10 fps = 3 frames a step,
    # wrapping after 30 frames (the last frame repeats the first)
    src_frame = m.bones[:, BONE["hip"], 0] / 0.01
    expected = (m.start_s * 30.0 + 3.0 * np.arange(12)) % 30.0
    np.testing.assert_allclose(src_frame, expected, atol=0.05)
    np.testing.assert_allclose(np.linalg.norm(m.bones[:, :, 3:], axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(m.ground_offsets()[-1], [0.0, T.WALK_SPEED * 11 / 10.0], atol=0.05)


def test_sample_motion_kinds_and_split(pack):
    rng = np.random.default_rng(3)
    for _ in range(10):
        m = pack.sample_motion(rng, frames=4, split="train", kinds="locomotion")
        assert m.kind == "walk" and m.split == "train"
        assert pack.sample_motion(rng, frames=4, split="test").split == "test"


def test_same_seed_same_identity_and_motion(pack):
    a = np.random.default_rng(7)
    b = np.random.default_rng(7)
    ia, ib = pack.sample_identity(a), pack.sample_identity(b)
    assert ia == ib
    ma = pack.sample_motion(a, frames=5, identity=ia)
    mb = pack.sample_motion(b, frames=5, identity=ib)
    assert ma.name == mb.name
    np.testing.assert_array_equal(ma.bones, mb.bones)


def test_hue_jitter_widens_only_the_hue(pack):
    narrow = [pack.sample_identity(np.random.default_rng(s)) for s in range(40)]
    wide = [pack.sample_identity(np.random.default_rng(s), hue_jitter=0.5) for s in range(40)]
    assert max(abs(i.jitter_hsv[0]) for i in narrow) <= 0.05
    assert max(abs(i.jitter_hsv[0]) for i in wide) > 0.2
    for a, b in zip(narrow, wide):  # the same draws: the same character, another colour
        assert dataclasses.replace(a, jitter_hsv=b.jitter_hsv) == b
        assert a.jitter_hsv[1:] == b.jitter_hsv[1:]
        assert b.jitter_hsv[0] == pytest.approx(a.jitter_hsv[0] * 10)
