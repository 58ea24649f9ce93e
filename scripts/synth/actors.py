"""Reading 0 A.D. actor XML (build time only).

An actor is a list of groups of variants; a variant may name a file under art/variants/ that is
read first and then overridden by the inline element (the game does the same). This module turns
actors into plain dicts (JSON-able), with every variant already merged with its file:

    {"groups": [[variant, ...], ...], "material": "player_trans.xml"}
    variant = {"name": str, "freq": int, "mesh": str|None, "tex": str|None,
               "props": [[attachpoint, actor_path_or_""], ...], "color": [r, g, b]|None,
               "anims": [[anim_name, anim_file], ...]}

Paths stay as the actor files spell them (mesh "skeletal/new/m_tunic_short.dae", texture
"skeletal/hele/tunic_02_01.png", animation "biped/infantry/hoplite/walk_relax.dae"); the
``*_zip_name`` helpers map them to the names inside public.zip.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

__all__ = ["ActorSource", "mesh_zip_name", "texture_zip_name", "anim_zip_name", "material_kind"]


def mesh_zip_name(mesh: str) -> str:
    return f"art/meshes/{mesh}.cached.pmd"


def texture_zip_names(tex: str) -> list:
    base = f"art/textures/skins/{tex}"
    return [base + ".cached.dds", base]


def texture_zip_name(tex: str) -> str:
    return texture_zip_names(tex)[0]


def anim_zip_name(anim: str) -> str:
    return f"art/animation/{anim}.cached.psa"


def material_kind(material: str) -> str:
    """How a material uses the texture's alpha: 'player' (alpha 0 = team colour), 'object'
    (alpha 0 = the actor's <color>), 'trans' (alpha = transparency) or 'opaque' (ignored)."""
    m = (material or "").lower()
    if m.startswith("player"):
        return "player"
    if m.startswith("objectcolor"):
        return "object"
    if m.startswith(("basic_trans", "basic_glow", "blend")):
        return "trans"
    return "opaque"


def _parse_variant_element(el, into: dict) -> dict:
    """Apply one <variant> element's contents on top of ``into`` (a merged variant dict)."""
    if el.get("name") is not None:
        into["name"] = el.get("name")
    if el.get("frequency") is not None:
        try:
            into["freq"] = int(float(el.get("frequency")))
        except ValueError:
            pass
    for child in el:
        tag = child.tag
        if tag == "mesh" and (child.text or "").strip():
            into["mesh"] = child.text.strip()
        elif tag == "textures":
            for t in child.findall("texture"):
                if t.get("name") == "baseTex" and t.get("file"):
                    into["tex"] = t.get("file")
        elif tag == "props":
            for p in child.findall("prop"):
                into["props"].append([p.get("attachpoint", ""), p.get("actor", "") or ""])
        elif tag == "color" and (child.text or "").strip():
            try:
                rgb = [int(float(v)) for v in child.text.split()[:3]]
                if len(rgb) == 3:
                    into["color"] = rgb
            except ValueError:
                pass
        elif tag == "animations":
            for a in child.findall("animation"):
                if a.get("file") and a.get("name"):
                    into["anims"].append([a.get("name"), a.get("file")])
    return into


def _empty_variant() -> dict:
    return {"name": "", "freq": 0, "mesh": None, "tex": None, "props": [], "color": None,
            "anims": []}


class ActorSource:
    """Reads actors and variant files from a mapping name -> bytes (e.g. a zipfile's read)."""

    def __init__(self, read):
        self._read = read  # callable(zip_name) -> bytes, raises KeyError when missing
        self._actors = {}
        self._variants = {}
        self.problems = []  # (path, message) for files that could not be parsed

    def _xml(self, name: str):
        try:
            return ET.fromstring(self._read(name))
        except KeyError:
            self.problems.append((name, "missing"))
        except ET.ParseError as e:
            self.problems.append((name, f"XML error: {e}"))
        return None

    def variant_file(self, rel: str, depth: int = 0):
        if rel not in self._variants:
            root = self._xml(f"art/variants/{rel}")
            v = _empty_variant()
            if root is not None and depth < 8:
                if root.get("file"):
                    base = self.variant_file(root.get("file"), depth + 1)
                    v = _copy_variant(base) if base else v
                _parse_variant_element(root, v)
            self._variants[rel] = v if root is not None else None
        return self._variants[rel]

    def actor(self, path: str):
        """The merged actor dict for 'units/athenians/infantry_spearman_b.xml' (relative to
        art/actors/), or None when missing or unreadable."""
        if path in self._actors:
            return self._actors[path]
        root = self._xml(f"art/actors/{path}")
        out = None
        if root is not None:
            groups = []
            for g in root.findall("group"):
                variants = []
                for vel in g.findall("variant"):
                    v = _empty_variant()
                    if vel.get("file"):
                        base = self.variant_file(vel.get("file"))
                        if base is not None:
                            v = _copy_variant(base)
                    _parse_variant_element(vel, v)
                    variants.append(v)
                if variants:
                    groups.append(variants)
            mat = root.find("material")
            out = {"groups": groups, "material": (mat.text or "").strip() if mat is not None
                   else ""}
        self._actors[path] = out
        return out


def _copy_variant(v: dict) -> dict:
    return {"name": v["name"], "freq": v["freq"], "mesh": v["mesh"], "tex": v["tex"],
            "props": [list(p) for p in v["props"]], "color": v["color"],
            "anims": [list(a) for a in v["anims"]]}
