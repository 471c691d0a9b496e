"""Bone maps: which bone of a character rig each SMPL-24 bone drives (presets, matcher, JSON).

A bone map is a dict from SMPL-24 *bone* keys to target bone names. The keys are the names of
``scail_protocol.joints.SMPL24_NAMES``; SMPL bone ``j`` starts at joint ``j`` and points at its
child, so ``left_hip`` is the left thigh, ``left_knee`` the shin, ``left_ankle`` the foot,
``left_foot`` the toes, ``left_collar`` the clavicle, ``left_shoulder`` the upper arm,
``left_elbow`` the forearm and ``left_wrist`` the hand (see :data:`ROLES`). Bones left out of a
map simply follow their parents. Two optional keys (:data:`EXTRA_KEYS`) name the bone that
carries the root motion and the bone whose head is the pelvis joint, for rigs that move through
a control above the hips.

Presets are JSON files in ``bonemap_presets/`` (``{"name", "description", "bones": {key:
[candidate names]}}``); the first candidate the rig has wins, and a candidate with a namespace
(``mixamorig:Hips``) also matches the same bone under another namespace (``mixamorig1:Hips``).
Saved maps use the same layout with one name per key. :func:`match_generic` guesses a map for
any rig from bone-name patterns and the hierarchy. No bpy here: the functions take bone names
and a parent table, so the UI, headless scripts and tests share them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from scail_protocol import joints as J
from scail_protocol.errors import ScailError

PRESET_DIR = Path(__file__).resolve().parent / "bonemap_presets"
BONE_KEYS = J.SMPL24_NAMES
ROLES = {  # what each SMPL bone is on a body, for the UI
    "pelvis": "hips", "spine1": "lower spine", "spine2": "middle spine", "spine3": "chest",
    "neck": "neck", "head": "head",
    **{f"{s}_{k}": f"{s} {v}" for s in ("left", "right") for k, v in (
        ("hip", "thigh"), ("knee", "shin"), ("ankle", "foot"), ("foot", "toes"),
        ("collar", "clavicle"), ("shoulder", "upper arm"), ("elbow", "forearm"),
        ("wrist", "hand"), ("hand", "fingers"))},
}
ROLES.update({"root_motion": "root motion", "pelvis_head": "pelvis point"})
# Optional keys beside the SMPL bones: the bone that carries the root motion (its location
# keys; default the pelvis bone) and the bone whose head is the pelvis joint (default the pelvis
# bone). A generated Rigify rig moves through ``torso`` while its hips bend about the spine.
EXTRA_KEYS = ("root_motion", "pelvis_head")
MAP_KEYS = (*BONE_KEYS, *EXTRA_KEYS)
REQUIRED = ("pelvis", "left_hip", "left_knee", "right_hip", "right_knee")  # root and leg lengths


class BoneMapError(ScailError):
    """A bone map file or preset is malformed, or a map does not fit the rig."""


# --- presets and JSON ---------------------------------------------------------------------------

def preset_ids() -> tuple:
    """Ids of the shipped presets (file stems), sorted."""
    return tuple(sorted(p.stem for p in PRESET_DIR.glob("*.json")))


def load_preset(preset_id: str) -> dict:
    """A shipped preset as ``{"name", "description", "bones": {key: [candidates]}}``.

    Raises:
        BoneMapError: no such preset, or the file is malformed.
    """
    path = PRESET_DIR / f"{preset_id}.json"
    if not path.is_file():
        raise BoneMapError(f"no bone-map preset {preset_id!r}; presets: {', '.join(preset_ids())}")
    return _read(path)


def load_map(path) -> dict:
    """A bone map saved with :func:`save_map` (or any preset file): ``{key: name or [names]}``.

    Raises:
        BoneMapError: the file is missing, not JSON, or has unknown keys.
    """
    return _read(Path(path))["bones"]


def save_map(path, bone_map: dict, name: str = "") -> Path:
    """Write ``bone_map`` ({key: target bone name}) as JSON; returns the path.

    Raises:
        BoneMapError: a key is not an SMPL-24 bone.
    """
    _check_keys(bone_map, str(path))
    path = Path(path)
    body = {"name": name or path.stem, "bones": {k: bone_map[k] for k in MAP_KEYS if bone_map.get(k)}}
    path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    return path


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BoneMapError(f"bone map not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BoneMapError(f"bone map {path} is not readable JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("bones"), dict):
        raise BoneMapError(f"bone map {path} must be a JSON object with a 'bones' object")
    _check_keys(data["bones"], str(path))
    for key, value in data["bones"].items():
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise BoneMapError(f"bone map {path}: {key!r} must be a bone name or a list of names")
    return data


def _check_keys(bone_map: dict, where: str) -> None:
    unknown = sorted(set(bone_map) - set(MAP_KEYS))
    if unknown:
        raise BoneMapError(f"bone map {where}: unknown SMPL bone(s) {', '.join(unknown)}; keys "
                           f"are SMPL-24 joint names such as 'left_hip' (the thigh), or "
                           f"{' / '.join(EXTRA_KEYS)}")


# --- resolving against a rig --------------------------------------------------------------------

def resolve(candidates: dict, bone_names) -> dict:
    """Concrete map ``{key: bone name}`` of the candidates that exist on the rig.

    Args:
        candidates: ``{key: name or [names]}`` (a preset's or a saved map's ``bones``).
        bone_names: the rig's bone names.
    """
    names = list(bone_names)
    exact = set(names)
    by_local = {}
    for name in names:
        by_local.setdefault(_local(name), name)
    out = {}
    for key in MAP_KEYS:
        value = candidates.get(key) or []
        for candidate in [value] if isinstance(value, str) else value:
            found = candidate if candidate in exact else by_local.get(_local(candidate))
            if found is not None:
                out[key] = found
                break
    return out


def _local(name: str) -> str:
    """The name without its namespace ('mixamorig1:Hips' -> 'Hips')."""
    return name.rsplit(":", 1)[-1]


def detect(bone_names, parents=None) -> tuple:
    """The best map for a rig: ``(preset id or 'generic', {key: bone name})``.

    The preset resolving the most bones wins when it covers :data:`REQUIRED`; otherwise the
    generic matcher's guess (which needs ``parents``: {bone: parent or None}).
    """
    best_id, best = "", {}
    for preset_id in preset_ids():
        found = resolve(load_preset(preset_id)["bones"], bone_names)
        if len(found) > len(best):
            best_id, best = preset_id, found
    if best and all(k in best for k in REQUIRED):
        return best_id, best
    return "generic", match_generic(bone_names, parents or {})


def missing_required(bone_map: dict) -> list:
    """The :data:`REQUIRED` keys a map lacks."""
    return [k for k in REQUIRED if not bone_map.get(k)]


def check_map(bone_map: dict, bone_names) -> None:
    """Raise BoneMapError when a map lacks required bones or names bones the rig does not have."""
    _check_keys(bone_map, "in use")
    missing = missing_required(bone_map)
    if missing:
        raise BoneMapError(f"the bone map lacks {', '.join(missing)} (the hips, thighs and shins "
                           f"are needed); pick a preset or fill them in")
    names = set(bone_names)
    absent = sorted({v for v in bone_map.values() if v and v not in names})
    if absent:
        raise BoneMapError(f"the target has no bone(s) {', '.join(absent)}; fix the bone map")
    used = [v for k, v in bone_map.items() if v and k not in EXTRA_KEYS]
    twice = sorted({v for v in used if used.count(v) > 1})
    if twice:
        raise BoneMapError(f"bone(s) {', '.join(twice)} are mapped twice; each target bone can "
                           f"follow one SMPL bone")


# --- generic matcher ----------------------------------------------------------------------------

# Body parts by name, most specific first: (part, words that must all appear, words that must
# not), looked for in the lower-case name with its side, namespace and separators removed.
_PART_RULES = (
    ("toe", ("toe",), ()), ("toe", ("ball",), ()),
    ("foot", ("foot",), ("ik", "pole", "heel")), ("foot", ("ankle",), ()),
    ("shin", ("shin",), ()), ("shin", ("calf",), ()), ("shin", ("knee",), ()),
    ("shin", ("lower", "leg"), ()), ("shin", ("leg",), ("up", "upper")),
    ("thigh", ("thigh",), ()), ("thigh", ("up", "leg"), ()), ("thigh", ("upper", "leg"), ()),
    ("hand", ("hand",), ("index", "middle", "ring", "pinky", "thumb")), ("hand", ("wrist",), ()),
    ("forearm", ("forearm",), ()), ("forearm", ("fore", "arm"), ()), ("forearm", ("lower", "arm"), ()),
    ("forearm", ("elbow",), ()),
    ("upper_arm", ("upper", "arm"), ()), ("upper_arm", ("arm",), ("fore", "lower")),
    ("collar", ("clavicle",), ()), ("collar", ("collar",), ()), ("collar", ("shoulder",), ()),
    ("head", ("head",), ("top", "end")), ("neck", ("neck",), ()),
    ("pelvis", ("hips",), ()), ("pelvis", ("pelvis",), ()), ("pelvis", ("hip",), ()),
    ("spine", ("spine",), ()), ("spine", ("chest",), ()), ("spine", ("torso",), ()),
)
_LIMB_KEYS = {"thigh": "hip", "shin": "knee", "foot": "ankle", "toe": "foot", "collar": "collar",
              "upper_arm": "shoulder", "forearm": "elbow", "hand": "wrist"}
_SIDE_TOKENS = {"l": "left", "left": "left", "r": "right", "right": "right"}
_SKIP_PREFIXES = ("mch", "org", "vis", "ik", "pole", "twist", "roll", "ctrl", "end")


def tokens(name: str) -> tuple:
    """(side or None, lower-case word tokens) of a bone name, namespace and side removed.

    'mixamorig:LeftUpLeg' -> ('left', ('up', 'leg')); 'upper_arm.L' -> ('left', ('upper', 'arm')).
    """
    words = re.sub(r"([a-z])([A-Z])", r"\1 \2", _local(name))
    words = re.sub(r"([A-Za-z])(\d)", r"\1 \2", words)
    parts = [w for w in re.split(r"[\s_.\-:]+", words.lower()) if w]
    side = None
    for i in (0, len(parts) - 1):
        if parts and parts[i] in _SIDE_TOKENS and len(parts) > 1:
            side = _SIDE_TOKENS[parts.pop(i)]
            break
    if side is None:
        for i, word in enumerate(parts):
            if word in _SIDE_TOKENS and len(parts) > 1:
                side = _SIDE_TOKENS[parts.pop(i)]
                break
    return side, tuple(parts)


def _part(name: str):
    side, words = tokens(name)
    if not words or words[0] in _SKIP_PREFIXES or any(w in ("twist", "roll", "ik", "pole", "mch")
                                                      for w in words):
        return side, None
    compact = "".join(words)  # 'upperarm' and 'upper_arm' alike
    for part, need, avoid in _PART_RULES:
        if all(w in compact for w in need) and not any(w in compact for w in avoid):
            return side, part
    return side, None


def match_generic(bone_names, parents: dict) -> dict:
    """Guess a bone map from bone-name patterns, then fill the gaps from the hierarchy.

    Args:
        bone_names: the rig's bone names, parents before children (Blender's order).
        parents: {bone name: parent name or None}.

    Returns:
        {key: bone name} for what could be matched (possibly missing required keys).
    """
    names = list(bone_names)
    depth = {n: _depth(n, parents) for n in names}
    found = {}
    spines = []
    for name in names:
        side, part = _part(name)
        if part is None:
            continue
        if part in _LIMB_KEYS:
            if side is None:
                continue
            key = f"{side}_{_LIMB_KEYS[part]}"
        elif part == "spine":
            spines.append(name)
            continue
        else:
            key = part
        if key not in found or depth[name] < depth[found[key]]:
            found[key] = name
    _fill_limbs(found, names, parents)
    _fill_trunk(found, names, parents)
    _fill_spine(found, spines, parents)
    return found


def _depth(name, parents) -> int:
    d = 0
    while parents.get(name):
        name = parents[name]
        d += 1
    return d


def _children(name, names, parents) -> list:
    return [n for n in names if parents.get(n) == name]


def _fill_limbs(found: dict, names, parents) -> None:
    """Walk down from a matched thigh / upper arm to fill shin, foot, toe / forearm, hand."""
    chains = (("hip", "knee", "ankle", "foot"), ("shoulder", "elbow", "wrist"))
    for side in ("left", "right"):
        for chain in chains:
            for upper, lower in zip(chain, chain[1:]):
                above, below = found.get(f"{side}_{upper}"), f"{side}_{lower}"
                if above is None or below in found:
                    continue
                kids = [k for k in _children(above, names, parents) if _part(k)[1] is not None
                        or len(_children(above, names, parents)) == 1]
                if len(kids) == 1:
                    found[below] = kids[0]
        collar = f"{side}_collar"
        arm = found.get(f"{side}_shoulder")
        if collar not in found and arm and parents.get(arm):
            parent = parents[arm]
            if _part(parent)[0] == side:
                found[collar] = parent


def _fill_trunk(found: dict, names, parents) -> None:
    """Pelvis, spine1..3, neck and head from the hierarchy where names did not tell.

    The pelvis is the thighs' common parent, spine3 the collars' common parent, spine1..3 the
    bones from the pelvis up to spine3 (first, middle, last), the neck and head the first and
    last bone of the single chain leaving spine3 that is not a collar (as long as the names
    keep the neck's stem: Rigify's spine.004 .. spine.006).
    """
    def common_parent(a, b):
        pa, pb = parents.get(found.get(a)), parents.get(found.get(b))
        return pa if pa is not None and pa == pb else None

    found.setdefault("pelvis", common_parent("left_hip", "right_hip"))
    chest = common_parent("left_collar", "right_collar")
    pelvis = found.get("pelvis")
    if chest and pelvis:
        chain = [chest]
        while chain[-1] not in (pelvis, None) and len(chain) <= len(names):
            chain.append(parents.get(chain[-1]))
        if chain[-1] == pelvis and len(chain) >= 2:
            chain = chain[:-1][::-1]  # pelvis's child .. chest
            for key, name in (("spine1", chain[0]), ("spine3", chain[-1])):
                found.setdefault(key, name)
            if len(chain) >= 3:
                found.setdefault("spine2", chain[len(chain) // 2])
    if chest and ("neck" not in found or "head" not in found):
        collars = {found.get("left_collar"), found.get("right_collar")}
        walk = [k for k in _children(chest, names, parents) if k not in collars]
        walk = walk[:1] if len(walk) == 1 else []
        stem = tokens(walk[0])[1][:1] if walk else ()
        while walk:
            kids = [k for k in _children(walk[-1], names, parents) if not _is_end(k)]
            if len(kids) != 1 or tokens(kids[0])[1][:1] != stem:
                break
            walk.append(kids[0])
        if len(walk) >= 2:
            found.setdefault("neck", walk[0])
            found.setdefault("head", walk[-1])
    for key in [k for k, v in found.items() if v is None]:
        del found[key]


def _is_end(name: str) -> bool:
    return any(w in ("end", "top", "tip", "nub") for w in tokens(name)[1])


def _fill_spine(found: dict, spines: list, parents) -> None:
    """spine1..3 from the bones between the pelvis and the neck (first, middle, last)."""
    neck, pelvis = found.get("neck"), found.get("pelvis")
    chain = []
    node = parents.get(neck) if neck else None
    while node and node != pelvis:
        chain.append(node)
        node = parents.get(node)
    chain = chain[::-1] if node == pelvis and chain else sorted(spines, key=lambda n: _depth(n, parents))
    if pelvis is None and chain and neck:
        return
    if chain:
        picks = {"spine1": chain[0], "spine3": chain[-1]}
        if len(chain) >= 3:
            picks["spine2"] = chain[len(chain) // 2]
        for key, name in picks.items():
            found.setdefault(key, name)
