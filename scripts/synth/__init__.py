"""Synthetic characters for training: 0 A.D.'s rigged humans, posed and rendered on the CPU.

    from synth import AssetPack, Camera, Light, render
    pack = AssetPack.load(dir)                         # built by synth/build_asset_pack.py
    ident = pack.sample_identity(rng, split="train")   # rng: numpy Generator; small, picklable
    motion = pack.sample_motion(rng, frames=F, fps=10.0, split="train", kinds=None,
                                identity=ident)        # Motion: bones [F,46,7] float32, ...
    cam = Camera(azimuth_deg=30, elevation_deg=10, scale=40, origin_px=(64, 176))
    light = Light(direction=(0.4, 0.75, 0.55), ambient=0.5, diffuse=0.6, tint=(1, 1, 1))
    out = render(pack, ident, motion.bones[f], cam, light, size=(W, H), supersample=2,
                 world_offset=(dx, dz))
    out.rgb (premultiplied uint8), out.alpha, out.props_alpha, out.depth, out.keypoints [18,4],
    out.box

World: right-handed, y up, character on y = 0 facing +z (its left at +x). The source files are
mirrored relative to this; the pack builder converts them (see skeleton.py). Licence of the art in
a pack: CC-BY-SA 3.0, Wildfire Games (pack.manifest["attribution"]). docs/SYNTH.md has the rest.
"""
from .pack import AssetPack, Identity, Motion, PackError, Part  # noqa: F401
from .renderer import (Camera, Light, RenderOutput, keypoints_world, posed_vertices,  # noqa: F401
                       prepare, render)
from .skeleton import BONE_NAMES, BONE_PARENTS, OPENPOSE_NAMES  # noqa: F401

__all__ = ["AssetPack", "Identity", "Motion", "Part", "PackError", "Camera", "Light",
           "RenderOutput", "render", "prepare", "keypoints_world", "posed_vertices", "BONE_NAMES",
           "BONE_PARENTS", "OPENPOSE_NAMES"]
