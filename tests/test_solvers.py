"""Solvers one by one: rotations, the rigid fit and its sign conventions, eyes, mouth, brows."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from openvtuber.tracking.solvers import eyes, mouth
from openvtuber.tracking.solvers.face_model import RIGID, neutral_face
from openvtuber.tracking.solvers.geometry import (FLIP, kabsch, matrix_from_quat, matrix_from_ypr,
                                                  quat_from_matrix, quat_from_ypr, ypr_from_matrix)
from openvtuber.tracking.solvers.head import Camera, RigidFit, solve_pnp
from openvtuber.tracking.solvers.response import EyeResponse, HeadResponse


def test_rotation_round_trips():
    rng = np.random.default_rng(0)
    for _ in range(200):
        ypr = rng.uniform([-80, -60, -60], [80, 60, 60])
        r = matrix_from_ypr(*ypr)
        assert np.allclose(r @ r.T, np.eye(3)) and np.isclose(np.linalg.det(r), 1.0)
        assert np.allclose(ypr_from_matrix(r), ypr)
        q = quat_from_matrix(r)
        assert np.allclose(q, quat_from_ypr(*ypr)) and np.isclose(np.linalg.norm(q), 1.0)
        assert np.allclose(matrix_from_quat(q), r)


def test_sign_conventions_of_the_person_frame():
    forward, up = np.array([0, 0, 1.0]), np.array([0, 1.0, 0])
    assert (matrix_from_ypr(30, 0, 0) @ forward)[0] > 0     # yaw > 0: nose toward the person's left (+X)
    assert (matrix_from_ypr(0, 20, 0) @ forward)[1] > 0     # pitch > 0: looking up
    assert (matrix_from_ypr(0, 0, 20) @ up)[0] > 0          # roll > 0: top of head toward the left shoulder


def test_kabsch_recovers_a_similarity():
    rng = np.random.default_rng(1)
    model = rng.normal(size=(50, 3))
    r = matrix_from_ypr(25, -10, 40)
    obs = 3.5 * model @ r.T + [1, 2, 3]
    rr, s, t = kabsch(model, obs)
    assert np.allclose(rr, r) and np.isclose(s, 3.5) and np.allclose(t, [1, 2, 3])


def _project(ypr: tuple[float, float, float], scale: float = 1500.0, centre=(320.0, 240.0),
             model: np.ndarray | None = None) -> np.ndarray:
    """The neutral face posed in the person frame, as the network reports it (image frame px)."""
    pts = (neutral_face() if model is None else model) @ matrix_from_ypr(*ypr).T @ FLIP * scale
    return pts + [centre[0], centre[1], 0.0]


@pytest.mark.parametrize("ypr", [(0, 0, 0), (30, 0, 0), (-30, 0, 0), (0, 20, 0), (0, -20, 0), (0, 0, 25),
                                 (20, -15, 10)])
def test_rigid_fit_recovers_pose_and_signs(ypr):
    cam = Camera.from_frame(640, 480)
    fitter = RigidFit()
    fit = fitter.fit(_project(ypr))
    assert fit is not None and fit.rmse < 1e-6
    pose = fitter.solve(fit, cam)
    assert np.allclose((pose.yaw, pose.pitch, pose.roll), ypr, atol=1e-6)
    assert pose.translation[2] == pytest.approx(cam.fx / 1500.0)


@pytest.mark.parametrize("ypr", [(0, 0, 0), (25, 0, 0), (-25, 0, 0), (0, 15, 0), (0, -15, 0), (0, 0, 20)])
def test_the_measured_fit_keeps_every_sign_and_reads_its_own_face_frontal(ypr):
    # the constants fitted on real faces (weights, zero pitch, depth gain): a rigid head posed
    # in the fit's own model frame reads its pose within a few degrees, with every sign right
    fitter = RigidFit.measured()
    pose = fitter.solve(fitter.fit(_project(ypr, model=fitter.model)), Camera.from_frame(640, 480), view=False)
    got = np.array([pose.yaw, pose.pitch, pose.roll])
    assert np.allclose(got, ypr, atol=3.0 if any(ypr) else 1e-6)
    big = np.abs(ypr) > 0
    assert np.all(np.sign(got[big]) == np.sign(np.array(ypr)[big]))


def test_points_without_weight_do_not_move_the_fit():
    w = np.ones(468)
    w[RIGID] = 0.0
    fitter = RigidFit(HeadResponse(weights=tuple(w)))
    pts = _project((20, -10, 5))
    moved = pts.copy()
    moved[RIGID] += 80.0                                       # wild points the fit must ignore
    a, b = fitter.fit(pts), fitter.fit(moved)
    assert np.allclose(a.rotation, b.rotation) and a.scale == pytest.approx(b.scale)


def test_depth_gain_turns_a_turn_that_reads_short_into_the_full_turn():
    # a face whose depth reads flattened under-reads the turn; stretching the depth back before
    # the fit recovers it, and a frontal face stays frontal
    cam = Camera.from_frame(640, 480)
    flat = _project((30, 0, 0)) * [1.0, 1.0, 0.5]
    short = RigidFit().solve(RigidFit().fit(flat), cam).yaw
    stretch = RigidFit(HeadResponse(depth_gain=2.0))
    full = stretch.solve(stretch.fit(flat), cam).yaw
    assert short < 25.0 and abs(full - 30.0) < abs(short - 30.0)
    front = stretch.fit(_project((0, 0, 0)))
    assert np.allclose(stretch.solve(front, cam).rotation, np.eye(3), atol=1e-6)
    assert front.scale == pytest.approx(1500.0) and front.rmse < 1e-6   # from the image plane


def test_yaw_past_the_knee_is_scaled_and_the_other_angles_kept():
    cam = Camera.from_frame(640, 480)
    fitter = RigidFit(HeadResponse(yaw_knee=40.0, yaw_gain=0.5))
    for ypr, want in (((50, 10, -5), (55, 10, -5)), ((-60, -8, 12), (-70, -8, 12)), ((30, 10, 5), (30, 10, 5))):
        pose = fitter.solve(fitter.fit(_project(ypr)), cam, view=False)
        assert np.allclose((pose.yaw, pose.pitch, pose.roll), want, atol=1e-6)


def test_off_axis_face_is_corrected_for_the_viewing_direction():
    cam = Camera.from_frame(640, 480)
    fitter = RigidFit()
    # Right of the optical axis, a face that looks frontal in its crop faces along its ray,
    # i.e. toward the camera: turned to its own right by the ray's angle.
    fit = fitter.fit(_project((0, 0, 0), centre=(600.0, 240.0)))
    pose = fitter.solve(fit, cam)
    ray_yaw = math.degrees(math.atan((600 - cam.cx) / cam.fx))
    assert pose.yaw == pytest.approx(-ray_yaw, abs=0.5)
    assert abs(pose.pitch) < 0.5 and abs(pose.roll) < 0.5
    assert pose.translation[0] > 0
    # a photo (unknown optical axis, often a crop) reads relative to its image plane
    assert np.allclose(fitter.solve(fit, cam, view=False).rotation, np.eye(3), atol=1e-9)


@pytest.mark.parametrize("ray", [(0.0, 0.0), (0.3, 0.0), (-0.2, 0.25), (0.6, -0.4)])
def test_view_rotation_turns_the_optical_axis_onto_the_ray(ray):
    from openvtuber.tracking.solvers.head import _view_rotation

    r = _view_rotation(*ray)
    target = np.array([ray[0], ray[1], 1.0])
    assert np.allclose(r @ [0.0, 0.0, 1.0], target / np.linalg.norm(target))
    assert np.allclose(r @ r.T, np.eye(3)) and np.isclose(np.linalg.det(r), 1.0)
    # the smallest such rotation: nothing turns about the ray itself
    axis = np.cross([0.0, 0.0, 1.0], target)
    if np.linalg.norm(axis) > 0:
        assert np.allclose(r @ axis, axis)


def test_pnp_agrees_on_a_projected_face():
    cam = Camera.from_frame(640, 480)
    # perspective projection of the model at 0.6 m
    model_cam = neutral_face() @ matrix_from_ypr(20, 10, -5).T @ FLIP + [0.0, 0.0, 0.6]
    uv = model_cam[:, :2] / model_cam[:, 2:] * cam.fx + [cam.cx, cam.cy]
    pose = solve_pnp(np.c_[uv, np.zeros(len(uv))], cam)
    assert np.allclose((pose.yaw, pose.pitch, pose.roll), (20, 10, -5), atol=0.2)
    assert pose.translation[2] == pytest.approx(0.6, abs=0.01)


def test_degenerate_landmarks_give_no_fit():
    pts = _project((0, 0, 0))
    fitter = RigidFit.measured()
    nan = pts.copy()
    nan[np.flatnonzero(fitter.response.weights)[0], 1] = np.nan        # a point the fit reads
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                 # and no numpy warning printed
        fit_face = fitter.fit
        assert fit_face(nan) is None
        assert fit_face(np.full_like(pts, 7.0)) is None                 # collapsed to one point
        assert fit_face(np.inf * np.ones_like(pts)) is None
        assert fit_face(np.full_like(pts, 1e300)) is None               # overflows
        assert fit_face(pts[:100]) is None                              # not the whole mesh


def _eye_contour(gap: float, width: float = 30.0, right: bool = True) -> np.ndarray:
    """16 contour points in the iris network's order: lower lid 0..8, upper lid 9..15."""
    c = np.zeros((16, 3))
    xs = np.linspace(0, width, 9)
    c[:9, 0] = xs if right else xs[::-1]
    c[:9, 1] = -gap / 2 * np.sin(np.linspace(0, math.pi, 9))
    up = np.linspace(0, width, 9)[1:8]
    c[9:, 0] = up if right else up[::-1]
    c[9:, 1] = gap / 2 * np.sin(np.linspace(0, math.pi, 9)[1:8])
    return c


def test_eye_ratio_and_openness():
    open_r = eyes.eye_ratio(_eye_contour(9.0))
    shut_r = eyes.eye_ratio(_eye_contour(1.0))
    assert open_r > 5 * shut_r > 0
    assert eyes.openness(open_r, shut_r, open_r) == 1.0
    assert eyes.openness(shut_r, shut_r, open_r) == 0.0
    assert eyes.openness(0.5 * (open_r + shut_r), shut_r, open_r) == pytest.approx(0.5)


@pytest.mark.parametrize("right", [True, False])
def test_iris_offset_signs(right):
    # image coordinates: x right (the person's left when facing the camera), y down
    c = _eye_contour(9.0, right=right)
    c[:, 1] *= -1
    mid = (c[eyes.OUTER, :2] + c[eyes.INNER, :2]) / 2
    ox, oy = eyes.iris_offset(c, mid + [3.0, 0.0], right)
    assert ox == pytest.approx(0.1) and oy == pytest.approx(0.0)
    ox, oy = eyes.iris_offset(c, mid + [0.0, -3.0], right)   # up in the image
    assert oy == pytest.approx(0.1)


EYES = EyeResponse(ratio_yaw=(0.0, 30.0, 50.0), ratio_near=(1.0, 1.1, 1.4), ratio_far=(1.0, 0.9, 0.7),
                   lean=(30.0, 40.0))


def test_near_eye_weight():
    assert eyes.near_eye_weight(0, EYES) == 0.5
    assert eyes.near_eye_weight(20, EYES) > 0.8 > 0.2 > eyes.near_eye_weight(-20, EYES)
    assert eyes.near_eye_weight(30, EYES) == 1.0 and eyes.near_eye_weight(-45, EYES) == 0.0   # only the seen eye


def test_lid_ratio_is_read_as_a_frontal_eye_would_be():
    # yaw > 0: the person's right eye is the near one
    assert eyes.visible_ratio(0.3, 0.0, True, EYES) == pytest.approx(0.3)
    assert eyes.visible_ratio(0.28, 50.0, True, EYES) == pytest.approx(0.2)       # near: divided by 1.4
    assert eyes.visible_ratio(0.28, 50.0, False, EYES) == pytest.approx(0.4)      # far: by 0.7
    assert eyes.visible_ratio(0.27, -30.0, True, EYES) == pytest.approx(0.3)      # the right eye far at −30°
    assert eyes.visible_ratio(0.28, 80.0, False, EYES) == pytest.approx(0.4)      # held flat past the table


def test_far_eye_leans_on_the_near_one_only_on_a_turned_head():
    assert eyes.far_eye_lean(0.0, EYES) == 0.0 and eyes.far_eye_lean(-29.0, EYES) == 0.0
    assert eyes.far_eye_lean(35.0, EYES) == pytest.approx(0.5) and eyes.far_eye_lean(-60.0, EYES) == 1.0


def test_gaze_is_limited_to_what_eyes_can_do():
    gain = (0.2, 0.2)
    assert eyes.gaze_angles((0.05, -0.03), gain) == pytest.approx(
        (math.degrees(math.asin(0.25)), math.degrees(math.asin(-0.15))))       # below the knee: unchanged
    far = eyes.gaze_angles((0.5, -0.5), gain)                                  # beyond what asin can take
    assert eyes.GAZE_KNEE[0] < far[0] < eyes.GAZE_LIMIT[0] and -eyes.GAZE_LIMIT[1] < far[1] < -eyes.GAZE_KNEE[1]
    steps = [eyes.gaze_angles((o, 0.0), gain)[0] for o in np.linspace(0.0, 0.2, 21)]
    assert all(b > a for a, b in zip(steps, steps[1:]))                        # still grows: never pinned


def _rest() -> mouth.MouthMeasure:
    return mouth.MouthMeasure(gap=0.002, width=0.05, corner_lift=0.0)


def test_mouth_at_rest_is_silent():
    shape = mouth.mouth_shape(_rest(), _rest())
    assert shape.open == 0 and shape.smile == 0 and all(v == 0 for v in shape.vowels.values())


@pytest.mark.parametrize("cur,expect", [
    (mouth.MouthMeasure(0.032, 0.05, 0.0), "a"),          # jaw open, width unchanged
    (mouth.MouthMeasure(0.004, 0.058, 0.0), "i"),         # spread, nearly closed
    (mouth.MouthMeasure(0.003, 0.043, 0.0), "u"),         # pursed, nearly closed
    (mouth.MouthMeasure(0.012, 0.057, 0.0), "e"),         # spread, half open
    (mouth.MouthMeasure(0.020, 0.043, 0.0), "o"),         # rounded, open
], ids=list("aiueo"))
def test_vowels_follow_mouth_shape(cur, expect):
    shape = mouth.mouth_shape(cur, _rest())
    assert max(shape.vowels, key=shape.vowels.get) == expect
    assert shape.vowels[expect] > 0.3


def test_smile_from_raised_corners():
    assert mouth.mouth_shape(mouth.MouthMeasure(0.002, 0.055, 0.006), _rest()).smile > 0.7
    assert mouth.mouth_shape(mouth.MouthMeasure(0.002, 0.05, -0.004), _rest()).smile == 0.0


def test_brows_raise_and_lower():
    m = neutral_face().copy()
    rest = mouth.measure_brows(m)
    m[mouth.BROW_RIGHT, 1] += 0.006
    m[mouth.BROW_LEFT, 1] -= 0.004
    right, left = mouth.brow_raise(mouth.measure_brows(m), rest)
    assert right == pytest.approx(0.75) and left == pytest.approx(-0.5)


def test_rigid_points_exclude_lips_lids_and_face_outline():
    moving = set(mouth.BROW_RIGHT + mouth.BROW_LEFT) | {13, 14, 61, 291, 0, 17, 159, 145, 386, 374, 152}
    assert not moving & set(RIGID.tolist())
