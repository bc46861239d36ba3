"""The rig: ``FaceState`` → ``AvatarPose`` (MMD bone rotations and morph weights). Pure.

* Head rotation is shared along the chain: a little to the upper body (lean), then the
  rest split between neck (40%) and head (60%), so the avatar turns like a person does.
* Mirror (on by default): the avatar moves as the user's mirror image — the user turns
  to their own left, the avatar to its own right; left and right eyes swap.
* Eye bones from the gaze, limited; blink/wink morphs from eye openness, vowels, smile
  and brows from the mouth and brow solvers.
* When the tracker has nothing (no face yet) the pose is neutral; the tracker's own hold
  and ease already make a lost face settle smoothly.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..protocols.pose import (BLINK, BOTH_EYES, BROW_DOWN, BROW_UP, HEAD, LEFT_EYE, NECK, RIGHT_EYE, SMILE,
                              UPPER_BODY, VOWEL_MORPHS, WINK_LEFT, WINK_RIGHT, AvatarPose)
from ..tracking.solvers.geometry import quat_from_ypr
from ..tracking.state import FaceState

IDENTITY = (0.0, 0.0, 0.0, 1.0)


@dataclass
class RigOptions:
    mirror: bool = True
    head_gain: float = 1.0
    body_share: tuple[float, float, float] = (0.15, 0.05, 0.15)   # of yaw, pitch, roll to 上半身
    neck_share: float = 0.4                                         # of what is left; the head gets the rest
    gaze_gain: float = 1.0
    gaze_limit: tuple[float, float] = (25.0, 20.0)                  # eye bone yaw, pitch (degrees)
    mouth_gain: float = 1.0


def _clip(v: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo if not v > lo else hi if v > hi else v      # NaN → lo: nothing non-finite leaves the rig


def rig(state: FaceState, opts: RigOptions | None = None, calibrated: bool = False) -> AvatarPose:
    opts = opts or RigOptions()
    pose = AvatarPose(t=state.t if state.t is not None else 0.0, frame=state.frame, found=state.found,
                      calibrated=calibrated)
    if not state.valid:
        pose.bones = {UPPER_BODY: IDENTITY, NECK: IDENTITY, HEAD: IDENTITY, BOTH_EYES: IDENTITY,
                      LEFT_EYE: IDENTITY, RIGHT_EYE: IDENTITY}
        pose.morphs = {BLINK: 0.0, WINK_LEFT: 0.0, WINK_RIGHT: 0.0, SMILE: 0.0, BROW_UP: 0.0, BROW_DOWN: 0.0,
                       **{m: 0.0 for m in VOWEL_MORPHS.values()}}
        return pose
    mirror = opts.mirror                         # read once: the panel may flip it mid-frame
    s = -1.0 if mirror else 1.0                  # mirroring negates yaw and roll
    g = opts.head_gain
    yaw, pitch, roll = s * state.yaw * g, state.pitch * g, s * state.roll * g
    by, bp, br = opts.body_share
    body = (yaw * by, pitch * bp, roll * br)
    rest = (yaw - body[0], pitch - body[1], roll - body[2])
    n = opts.neck_share
    pose.bones[UPPER_BODY] = quat_from_ypr(*body)
    pose.bones[NECK] = quat_from_ypr(rest[0] * n, rest[1] * n, rest[2] * n)
    pose.bones[HEAD] = quat_from_ypr(rest[0] * (1 - n), rest[1] * (1 - n), rest[2] * (1 - n))
    pose.bones[BOTH_EYES] = IDENTITY
    # avatar's own left/right after mirroring
    person = {"left": (state.gaze_left_yaw, state.gaze_left_pitch, state.eye_open_left),
              "right": (state.gaze_right_yaw, state.gaze_right_pitch, state.eye_open_right)}
    av_left, av_right = (person["right"], person["left"]) if mirror else (person["left"], person["right"])
    ly, lp = opts.gaze_limit
    for bone, (gy, gp, _) in ((LEFT_EYE, av_left), (RIGHT_EYE, av_right)):
        pose.bones[bone] = quat_from_ypr(_clip(s * gy * opts.gaze_gain, -ly, ly), _clip(gp * opts.gaze_gain, -lp, lp), 0.0)
    close_l, close_r = 1.0 - _clip(av_left[2]), 1.0 - _clip(av_right[2])
    blink = min(close_l, close_r)
    pose.morphs[BLINK] = blink
    pose.morphs[WINK_LEFT] = close_l - blink
    pose.morphs[WINK_RIGHT] = close_r - blink
    for key, morph in VOWEL_MORPHS.items():
        pose.morphs[morph] = _clip(state.vowels.get(key, 0.0) * opts.mouth_gain)
    pose.morphs[SMILE] = _clip(state.smile)
    brow = (state.brow_left + state.brow_right) / 2.0
    pose.morphs[BROW_UP] = _clip(brow)
    pose.morphs[BROW_DOWN] = _clip(-brow)
    return pose
