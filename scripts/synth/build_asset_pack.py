#!/usr/bin/python3
"""Build the synthetic-character asset pack from Debian's 0ad-data (0 A.D.'s art, CC-BY-SA 3.0).

    /usr/bin/python3 scripts/synth/build_asset_pack.py --source 0ad-data_0.0.26-1_all.deb --out DIR
    /usr/bin/python3 scripts/synth/build_asset_pack.py --source .../mods/public/public.zip --out DIR

Writes DIR/pack.json.gz (actors, meshes, textures, animations, splits), DIR/meshes.npz,
DIR/animations.bin (float16 bone states) and DIR/textures.bin (WebP images). Everything is converted to the package's
world convention (right-handed, y up, character facing +z; see synth/skeleton.py). The output is
deterministic for a given source. Needs Pillow with DDS and WebP support (Debian's python3-pil).
docs/SYNTH.md describes the pack.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import sys
import tarfile
import tempfile
import time
import zipfile

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from synth.actors import (ActorSource, material_kind, mesh_zip_name,  # noqa: E402
                          texture_zip_names)
from synth.formats import FormatError, read_pmd, read_psa  # noqa: E402
from synth.pack import (ANIMATIONS_FILE, MANIFEST_FILE, MESHES_FILE, PACK_FORMAT,  # noqa: E402
                        PACK_VERSION, TEXTURES_FILE, encode_animation_blob)
from synth.skeleton import (BONE_NAMES, BONE_PARENTS, NUM_BONES, file_to_world_points,  # noqa: E402
                            file_to_world_states)

TEXTURE_MAX = 256  # body textures (they cover most of the character)
PROP_TEXTURE_MAX = 128  # heads, helmets, shields, weapons: small on screen
WEBP_QUALITY = 80
HOLDOUT_FRACTION = 0.08
ATTRIBUTION = ("Characters, textures and animations: 0 A.D. by Wildfire Games "
               "(https://play0ad.com), licensed CC-BY-SA 3.0 "
               "(https://creativecommons.org/licenses/by-sa/3.0/); converted (meshes re-encoded, "
               "textures downscaled, animations resampled to float16) by standin's "
               "scripts/synth/build_asset_pack.py.")
HUMAN_BODY_MESH = re.compile(r"^skeletal/new/[mf]_[a-z_]+\.dae$")
# Props that are not drawn: projectiles are spawned by the game, loaded-* only while reloading.
SKIPPED_ATTACHPOINTS = ("projectile", "loaded-")
SKIPPED_PROP_ACTORS = ("props/units/blood",)
WORN_PROP_PREFIXES = ("props/units/heads/", "props/units/helmets/", "props/units/armor/",
                      "props/units/capes/")
WORN_PROP_WORDS = ("quiver", "scabbard", "sheath", "backpack", "_arm_left", "_arm_right")
LOCOMOTION_WORDS = ("walk", "jog", "run", "move")


class BuildError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------- source

def _deb_members(path: str):
    """(name, offset, size) of the members of a Debian .deb (an ar archive)."""
    with open(path, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise BuildError(f"{path}: not a .deb (ar) archive")
        out = []
        while True:
            hdr = f.read(60)
            if len(hdr) < 60:
                break
            name = hdr[:16].decode().strip().rstrip("/")
            size = int(hdr[48:58].decode().strip())
            out.append((name, f.tell(), size))
            f.seek(size + (size & 1), 1)
        return out


def open_source(path: str, workdir: str) -> zipfile.ZipFile:
    if not os.path.exists(path):
        raise BuildError(f"--source {path} does not exist (give 0ad-data_*.deb or public.zip)")
    if zipfile.is_zipfile(path):
        return zipfile.ZipFile(path)
    members = _deb_members(path)
    data = [m for m in members if m[0].startswith("data.tar")]
    if not data:
        raise BuildError(f"{path}: no data.tar.* member; is this 0ad-data's .deb?")
    name, offset, size = data[0]
    log(f"extracting public.zip from {os.path.basename(path)} ({name}, {size >> 20} MiB) "
        f"into {workdir} (several minutes for xz)")
    with open(path, "rb") as f:
        f.seek(offset)
        with tarfile.open(fileobj=f, mode="r|*") as tar:
            for member in tar:
                if member.name.endswith("mods/public/public.zip"):
                    dst = os.path.join(workdir, "public.zip")
                    src = tar.extractfile(member)
                    with open(dst, "wb") as out:
                        while True:
                            chunk = src.read(1 << 22)
                            if not chunk:
                                break
                            out.write(chunk)
                    return zipfile.ZipFile(dst)
    raise BuildError(f"{path}: no mods/public/public.zip inside; is this 0ad-data's .deb?")


# ---------------------------------------------------------------- actors

def is_object_prop(attach: str, actor: str) -> bool:
    """Held or carried objects (shields, weapons, tools, baskets) as opposed to worn parts."""
    a = actor.lower()
    if a.startswith(WORN_PROP_PREFIXES) or any(w in a for w in WORN_PROP_WORDS):
        return False
    return not attach.lower().startswith(("sheath", "quiver"))


def collect_actors(src: ActorSource, names):
    roots = []
    for n in sorted(names):
        if not (n.startswith("art/actors/units/") and n.endswith(".xml")):
            continue
        path = n[len("art/actors/"):]
        a = src.actor(path)
        if a is None:
            continue
        meshes = {v["mesh"] for g in a["groups"] for v in g if v["mesh"]}
        if any(HUMAN_BODY_MESH.match(m) for m in meshes):
            roots.append(path)
    actors, todo = {}, list(roots)
    while todo:
        path = todo.pop()
        if path in actors:
            continue
        a = src.actor(path)
        actors[path] = a
        if a is None:
            continue
        for g in a["groups"]:
            for v in g:
                for attach, prop in v["props"]:
                    if prop and prop not in actors:
                        todo.append(prop)
    return roots, actors


# ---------------------------------------------------------------- meshes

def encode_meshes(read, mesh_names, problems):
    """Read, convert and quantise meshes; returns (records, arrays)."""
    records, pos, nrm, uv, bi, bw, faces, bind = [], [], [], [], [], [], [], []
    nv = nf = nb = 0
    index = {}
    for name in mesh_names:
        zname = mesh_zip_name(name)
        try:
            m = read_pmd(read(zname), zname)
        except KeyError:
            problems.append(f"mesh missing: {zname}")
            continue
        except FormatError as e:
            problems.append(str(e))
            continue
        skinned = len(m.bind_pose) == NUM_BONES
        if not skinned:
            # props with their own small skeleton (bows, slings) are drawn rigid, in bind pose
            m.bone_indices[:] = 255
        p = file_to_world_points(m.positions)
        n = file_to_world_points(m.normals)
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)
        lo, hi = p.min(0), p.max(0)
        span = np.maximum(hi - lo, 1e-6)
        q = np.round((p - lo) / span * 65535.0) - 32768.0
        t = m.uvs.copy()
        t[:, 1] = 1.0 - t[:, 1]  # texture rows go down; PMD's v goes up
        w = m.bone_weights * (m.bone_indices != 255)
        s = w.sum(1, keepdims=True)
        w = np.where(s > 0, w / np.maximum(s, 1e-9), 0.0)
        wq = np.round(w * 255.0).astype(np.int32)
        # keep the quantised weights summing to 255 exactly (the largest absorbs the rounding)
        fix = np.where(wq.sum(1) > 0, 255 - wq.sum(1), 0)
        wq[np.arange(len(wq)), np.argmax(w, 1)] += fix
        props = {}
        for pp in m.prop_points:
            st = file_to_world_states(np.r_[pp.translation, pp.rotation])
            props[pp.name] = [round(float(x), 6) for x in st] + [int(pp.bone)]
        nbind = NUM_BONES if skinned else 0
        rec = {"name": name, "v": [nv, nv + len(p)], "f": [nf, nf + len(m.faces)],
               "bind": [nb, nb + nbind], "lo": [float(x) for x in lo],
               "hi": [float(x) for x in hi], "props": props, "skinned": skinned}
        index[name] = len(records)
        records.append(rec)
        pos.append(q.astype(np.int16))
        nrm.append(np.round(n * 127.0).astype(np.int8))
        uv.append(t.astype(np.float16))
        bi.append(np.where(m.bone_indices == 255, 255, m.bone_indices).astype(np.uint8))
        bw.append(wq.astype(np.uint8))
        # the game's triangles are clockwise seen from outside in right-handed terms; the mirror
        # makes them counter-clockwise-out, the usual convention (99.6 % agree with the normals)
        faces.append(m.faces.astype(np.uint16))
        if skinned:
            bind.append(file_to_world_states(m.bind_pose))
        nv += len(p)
        nf += len(m.faces)
        nb += nbind
    arrays = {"positions": np.concatenate(pos), "normals": np.concatenate(nrm),
              "uvs": np.concatenate(uv), "bone_indices": np.concatenate(bi),
              "bone_weights": np.concatenate(bw), "faces": np.concatenate(faces),
              "bind_poses": np.concatenate(bind).astype(np.float32)}
    return records, arrays, index


# ---------------------------------------------------------------- textures

def encode_textures(read, tex_uses, names, problems, quality: int = WEBP_QUALITY):
    """tex_uses: texture -> set of material kinds that use it. Returns (records, blob, index)."""
    from PIL import Image
    records, chunks, index = [], [], {}
    off = 0
    for tex in sorted(tex_uses):
        zname = next((c for c in texture_zip_names(tex) if c in names), None)
        if zname is None:
            problems.append(f"texture missing: art/textures/skins/{tex}")
            continue
        try:
            im = Image.open(io.BytesIO(read(zname)))
            im.load()
        except Exception as e:  # Pillow raises many types for undecodable DDS variants
            problems.append(f"{zname}: cannot decode ({e})")
            continue
        im = im.convert("RGBA")
        w, h = im.size
        limit = TEXTURE_MAX if tex.startswith("skeletal/") else PROP_TEXTURE_MAX
        if max(w, h) > limit:
            f = limit / max(w, h)
            im = im.resize((max(1, round(w * f)), max(1, round(h * f))), Image.LANCZOS)
        a = np.asarray(im)
        needs_alpha = bool(tex_uses[tex] & {"player", "object", "trans"}) and int(a[..., 3].min()) < 250
        buf = io.BytesIO()
        if needs_alpha:
            im.save(buf, "WEBP", quality=quality, method=4, exact=True)
        else:
            im.convert("RGB").save(buf, "WEBP", quality=quality, method=4)
        data = buf.getvalue()
        index[tex] = len(records)
        records.append({"name": tex, "off": off, "len": len(data), "w": im.size[0],
                        "h": im.size[1], "alpha": needs_alpha})
        chunks.append(data)
        off += len(data)
    return records, b"".join(chunks), index


# ---------------------------------------------------------------- animations

def anim_kind(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    if "death" in base:
        return "death"
    if "/fisher/" in f"/{name}" and "move" in base:
        return "other"  # rowing a fishing boat, not walking
    if base.startswith("idle") or "_idle" in base or base.startswith("idle_carry"):
        return "idle"
    if base.startswith("carry_") or any(w in base for w in LOCOMOTION_WORDS):
        if "run" in base:
            return "run"
        if "jog" in base:
            return "jog"
        return "walk"
    if "attack" in base or "capturing" in base:
        return "attack"
    if any(w in base for w in ("gather", "farming", "seeding", "slaughter", "build", "healing",
                               "pray", "fish")):
        return "work"
    return "other"


def ground_velocity(bones: np.ndarray, frame_s: float):
    """Estimated ground velocity (vx, vz) in world units/s of a walk-in-place cycle: the planted
    foot (the lower ankle, within 0.1 units of its lowest height) slides backwards at minus the
    character's speed. Returns (0, 0) when no foot is planted long enough to measure."""
    feet = [32, 35]  # foot_L, foot_R
    vels = []
    for i in range(len(bones) - 1):
        ys = [bones[i, b, 1] for b in feet]
        b = feet[int(np.argmin(ys))]
        lowest = bones[:, b, 1].min()
        if bones[i, b, 1] > lowest + 0.1 or bones[i + 1, b, 1] > lowest + 0.1:
            continue
        vels.append((bones[i + 1, b, [0, 2]] - bones[i, b, [0, 2]]) / frame_s)
    if len(vels) < 3:
        return 0.0, 0.0
    v = -np.median(np.array(vels), axis=0)
    return float(v[0]), float(v[1])


def encode_animations(read, names, problems):
    anims = sorted(n for n in names if n.startswith("art/animation/biped/")
                   and n.endswith(".psa") and not n.startswith(("art/animation/biped/rider/",
                                                                "art/animation/biped/chariot/")))
    records, chunks, index = [], [], {}
    off = 0
    for zname in anims:
        try:
            a = read_psa(read(zname), zname)
        except FormatError as e:
            problems.append(str(e))
            continue
        if a.bones.shape[1] != NUM_BONES or len(a.bones) < 2:
            problems.append(f"{zname}: {a.bones.shape[1]} bones x {len(a.bones)} frames, skipped")
            continue
        rel = zname[len("art/animation/"):-len(".cached.psa")]
        b = file_to_world_states(a.bones)
        kind = anim_kind(rel)
        frame_s = a.frame_length_ms / 1000.0
        cycle = kind in ("walk", "jog", "run")
        vx, vz = ground_velocity(b, frame_s) if cycle else (0.0, 0.0)
        hip = b[:, 0, :3]
        drift = float(np.linalg.norm(hip[-1, [0, 2]] - hip[0, [0, 2]]))
        index[rel] = len(records)
        records.append({"name": rel, "frames": int(len(b)), "frame_ms": float(a.frame_length_ms),
                        "off": off, "kind": kind, "cycle": cycle, "loops": kind != "death",
                        "velocity": [round(vx, 4), round(vz, 4)],
                        "speed": round(float(np.hypot(vx, vz)), 4),
                        "root_drift": round(drift, 4)})
        chunks.append(b.astype(np.float16))
        off += len(b)
    return records, np.concatenate(chunks), index


# ---------------------------------------------------------------- splits

def _hash_order(items):
    return sorted(items, key=lambda s: hashlib.sha1(s.encode()).hexdigest())


def texture_family(tex: str) -> str:
    """Colour variants of one design share a family: 'hele/tunic_02_01.png' -> 'hele/tunic_02'."""
    stem = tex.rsplit(".", 1)[0]
    return re.sub(r"[_-](\d+|[a-z])$", "", stem)


def split_textures(body_textures):
    """Hold out whole families (in a fixed hash order) until >= 8 % of body textures are out."""
    fams = {}
    for t in body_textures:
        fams.setdefault(texture_family(t), []).append(t)
    target = int(round(HOLDOUT_FRACTION * len(body_textures)))
    if len(body_textures) >= 2:
        target = max(1, target)
    test = set()
    for fam in _hash_order(list(fams)):
        if len(test) >= target:
            break
        test.update(fams[fam])
    return test


def split_animations(records):
    """~8 % of animation files held out, stratified so locomotion cycles are among them."""
    test = set()
    for stratum in (True, False):
        group = [r["name"] for r in records if r["cycle"] == stratum]
        k = max(1, int(round(HOLDOUT_FRACTION * len(group)))) if len(group) >= 2 else 0
        test.update(_hash_order(group)[:k])
    return test


# ---------------------------------------------------------------- main

def build(source: str, out: str, workdir: str, webp_quality: int = WEBP_QUALITY) -> dict:
    z = open_source(source, workdir)
    return build_from_files(z.read, set(z.namelist()), out, os.path.basename(source), webp_quality)


def build_from_files(read, names, out: str, source_name: str = "", webp_quality: int = WEBP_QUALITY) -> dict:
    """The pack from 0 A.D.'s files: ``read(name) -> bytes`` (KeyError when missing) and the set
    of ``names`` (paths as inside public.zip, e.g. 'art/actors/units/...xml')."""
    t0 = time.time()
    problems = []
    src = ActorSource(read)
    roots, raw = collect_actors(src, names)
    log(f"{len(roots)} human unit actors, {len(raw)} actors with their props "
        f"({time.time() - t0:.1f} s)")

    mesh_names, tex_uses = set(), {}
    for path, a in raw.items():
        if a is None:
            continue
        kind = material_kind(a["material"])
        for g in a["groups"]:
            for v in g:
                if v["mesh"]:
                    mesh_names.add(v["mesh"])
                if v["tex"]:
                    tex_uses.setdefault(v["tex"], set()).add(kind)
    mesh_records, mesh_arrays, mesh_index = encode_meshes(read, sorted(mesh_names), problems)
    log(f"{len(mesh_records)} meshes, {len(mesh_arrays['positions'])} vertices, "
        f"{len(mesh_arrays['faces'])} faces ({time.time() - t0:.1f} s)")
    tex_records, tex_blob, tex_index = encode_textures(read, tex_uses, names, problems, webp_quality)
    log(f"{len(tex_records)} textures, {len(tex_blob) >> 10} KiB ({time.time() - t0:.1f} s)")
    anim_records, anim_array, anim_index = encode_animations(read, names, problems)
    log(f"{len(anim_records)} animations, {len(anim_array)} frames ({time.time() - t0:.1f} s)")

    # actors with names replaced by indices; props that are never drawn dropped
    actors = {}
    for path, a in sorted(raw.items()):
        if a is None:
            problems.append(f"actor missing or unreadable: art/actors/{path}")
            continue
        groups = []
        for g in a["groups"]:
            vs = []
            for v in g:
                props = []
                for attach, prop in v["props"]:
                    if attach.startswith(SKIPPED_ATTACHPOINTS):
                        continue
                    if prop and (prop.startswith(SKIPPED_PROP_ACTORS) or raw.get(prop) is None):
                        prop = ""
                    props.append([attach, prop, bool(prop) and is_object_prop(attach, prop)])
                anims = [[n, anim_index[f]] for n, f in v["anims"] if f in anim_index]
                vs.append({"name": v["name"], "freq": v["freq"],
                           "mesh": mesh_index.get(v["mesh"], -1) if v["mesh"] else -1,
                           "tex": tex_index.get(v["tex"], -1) if v["tex"] else -1,
                           "props": props, "color": v["color"], "anims": anims})
            groups.append(vs)
        actors[path] = {"material": material_kind(a["material"]), "groups": groups}

    # identities: root actors and their body textures
    root_records, body_textures = [], set()
    for path in roots:
        a = actors.get(path)
        if a is None:
            continue
        bodies = {v["mesh"] for g in a["groups"] for v in g
                  if v["mesh"] >= 0 and HUMAN_BODY_MESH.match(mesh_records[v["mesh"]]["name"])}
        texs = sorted({v["tex"] for g in a["groups"] for v in g if v["tex"] >= 0})
        if not bodies or not texs:
            problems.append(f"{path}: no usable body mesh/texture, skipped")
            continue
        body_textures.update(tex_records[t]["name"] for t in texs)
        root_records.append({"actor": path, "body_textures": texs})
    test_tex = split_textures(sorted(body_textures))
    for t in tex_records:
        t["body"] = t["name"] in body_textures
        t["split"] = ("test" if t["name"] in test_tex else "train") if t["body"] else "any"
    for r in root_records:
        r["train_textures"] = [t for t in r["body_textures"] if tex_records[t]["split"] == "train"]
        r["test_textures"] = [t for t in r["body_textures"] if tex_records[t]["split"] == "test"]
    test_anims = split_animations(anim_records)
    for r in anim_records:
        r["split"] = "test" if r["name"] in test_anims else "train"

    counts = {
        "actors": len(root_records),
        "actors_train": sum(1 for r in root_records if r["train_textures"]),
        "actors_test": sum(1 for r in root_records if r["test_textures"]),
        "prop_actors": len(actors) - len(root_records),
        "meshes": len(mesh_records),
        "body_meshes": sum(1 for m in mesh_records if HUMAN_BODY_MESH.match(m["name"])),
        "textures": len(tex_records),
        "body_textures_train": sum(1 for t in tex_records if t["split"] == "train"),
        "body_textures_test": sum(1 for t in tex_records if t["split"] == "test"),
        "animations_train": sum(1 for r in anim_records if r["split"] == "train"),
        "animations_test": sum(1 for r in anim_records if r["split"] == "test"),
        "cycles_train": sum(1 for r in anim_records if r["split"] == "train" and r["cycle"]),
        "cycles_test": sum(1 for r in anim_records if r["split"] == "test" and r["cycle"]),
        "animation_frames": int(len(anim_array)),
    }
    manifest = {
        "format": PACK_FORMAT, "version": PACK_VERSION,
        "licence": "CC-BY-SA-3.0", "attribution": ATTRIBUTION,
        "source": source_name,
        "convention": "world: right-handed, y up, character on y=0 facing +z, its left at +x",
        "bones": list(BONE_NAMES), "parents": list(BONE_PARENTS),
        "meshes": mesh_records, "textures": tex_records, "animations": anim_records,
        "actors": actors, "roots": root_records, "counts": counts,
        "problems": problems,
    }
    os.makedirs(out, exist_ok=True)
    np.savez_compressed(os.path.join(out, MESHES_FILE), **mesh_arrays)
    with open(os.path.join(out, ANIMATIONS_FILE), "wb") as f:
        f.write(encode_animation_blob(anim_array, [r["off"] for r in anim_records]))
    with open(os.path.join(out, TEXTURES_FILE), "wb") as f:
        f.write(tex_blob)
    with open(os.path.join(out, MANIFEST_FILE), "wb") as raw:  # mtime 0: same bytes each build
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as f:
            f.write(json.dumps(manifest, separators=(",", ":")).encode())
    sizes = {n: os.path.getsize(os.path.join(out, n)) for n in
             (MANIFEST_FILE, MESHES_FILE, ANIMATIONS_FILE, TEXTURES_FILE)}
    counts["bytes"] = sizes
    counts["bytes_total"] = sum(sizes.values())
    counts["seconds"] = round(time.time() - t0, 1)
    counts["problems"] = len(problems)
    return counts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", required=True, help="0ad-data_*.deb or mods/public/public.zip")
    ap.add_argument("--out", required=True, help="output directory (created)")
    ap.add_argument("--workdir", default=None,
                    help="where to unpack public.zip from a .deb (default: a temporary dir)")
    ap.add_argument("--webp-quality", type=int, default=WEBP_QUALITY,
                    help="texture quality 1..100 (lower: a smaller pack, e.g. 60 when the pack must travel "
                         "with trained weights under the GPU machine's 64 MiB limit)")
    args = ap.parse_args(argv)
    if not 1 <= args.webp_quality <= 100:
        ap.error("--webp-quality must be in 1..100")
    try:
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            counts = build(args.source, args.out, tmp, args.webp_quality)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    log(json.dumps(counts, indent=1))
    mib = counts["bytes_total"] / 2 ** 20
    log(f"pack: {args.out} {mib:.1f} MiB ({counts['bytes_total'] / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
