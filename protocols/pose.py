"""``AvatarPose``: what every output receives, one per tracked frame.

Bones are MMD bone names with *local* rotations as quaternions (x, y, z, w) in the frame
three.js's MMDLoader gives a model: right-handed, Y up, the model facing +Z (so +X is the
model's own left). Morphs are MMD morph names with weights 0..1. Bones and blendshapes
received from another VMC performer travel alongside untouched (Unity frame), so a VMC
output can forward them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

Quat = tuple[float, float, float, float]
Vec3 = tuple[float, float, float]

# Standard MMD names (DESIGN.md "Core types").
UPPER_BODY, NECK, HEAD, BOTH_EYES, LEFT_EYE, RIGHT_EYE = "上半身", "首", "頭", "両目", "左目", "右目"
BLINK, WINK_LEFT, WINK_RIGHT = "まばたき", "ウィンク", "ウィンク右"
VOWEL_MORPHS = {"a": "あ", "i": "い", "u": "う", "e": "え", "o": "お"}
SMILE, BROW_UP, BROW_DOWN = "にこり", "上", "下"


# Unity humanoid bones our face tracker drives (a merged performer's are ignored; Jaw too:
# our mouth blendshapes open it), and the spine chain a body tracker takes over when it sends it.
FACE_BONES = frozenset({"Head", "Neck", "LeftEye", "RightEye", "Jaw"})
SPINE_CHAIN = frozenset({"Spine", "Chest", "UpperChest"})


@dataclass
class AvatarPose:
    t: float                                   # source seconds
    frame: int
    found: bool
    bones: dict[str, Quat] = field(default_factory=dict)
    morphs: dict[str, float] = field(default_factory=dict)
    calibrated: bool = False
    vmc_bones: dict[str, tuple[Vec3, Quat]] = field(default_factory=dict)   # received, Unity frame
    vmc_blends: dict[str, float] = field(default_factory=dict)
    vmc_root: tuple[Vec3, Quat] | None = None    # received root transform (Unity frame)


def spine_from_vmc(pose: AvatarPose) -> bool:
    """Whether ``pose.vmc_bones`` carries the spine chain (after a merge: the other performer
    sends it), so an output must not also derive a spine from ``上半身``."""
    return not SPINE_CHAIN.isdisjoint(pose.vmc_bones)
