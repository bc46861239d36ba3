"""The synthetic head: sign conventions, ground truth vs. our own networks, options,
the demo source, and the tracking criterion on a ±45° yaw sweep."""
from __future__ import annotations

import itertools
import math
import time

import cv2
import numpy as np
import pytest

from openvtuber.tracking.pipeline import FacePipeline
from openvtuber.tracking.sources.base import Frame
from openvtuber.tracking.sources.demo import BLINKS, PERIOD, DemoSource, demo_pose
from openvtuber.tracking.sources.synthetic import (FacePose, GroundTruth, SyntheticFace,
                                                   head_rotation, write_clip)

NOSE, FOREHEAD, CHIN = 1, 10, 152
SIDES = [234, 454]                       # face-oval points beside the ears
R_CORNERS, L_CORNERS = [33, 133], [362, 263]


@pytest.fixture(scope="module")
def face() -> SyntheticFace:
    return SyntheticFace()


@pytest.fixture(scope="module")
def still() -> FacePipeline:
    return FacePipeline(tracking=False)


def truth(face: SyntheticFace, **kw) -> GroundTruth:
    return face.render(FacePose(**kw))[1]


def nose_offset(lm: np.ndarray) -> np.ndarray:
    """Nose tip relative to the midpoint of the two ear-side oval points."""
    return lm[NOSE, :2] - lm[SIDES, :2].mean(axis=0)


def iris_offsets(right: np.ndarray, left: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """(2, 2): each iris centre relative to the middle of its eye's corners."""
    return np.stack([right[:2] - lm[R_CORNERS, :2].mean(axis=0),
                     left[:2] - lm[L_CORNERS, :2].mean(axis=0)])


# -- sign conventions -----------------------------------------------------------------------

def test_yaw_positive_turns_the_nose_to_image_right(face, still):
    neutral = nose_offset(truth(face).landmarks)[0]
    assert nose_offset(truth(face, yaw=30).landmarks)[0] > neutral + 10
    assert nose_offset(truth(face, yaw=-30).landmarks)[0] < neutral - 10
    # and the pixels agree: our network sees the same turn in the rendered frames
    seen = [nose_offset(still.process(face.render(FacePose(yaw=y))[0]).landmarks)[0]
            for y in (-30, 0, 30)]
    assert seen[0] < seen[1] - 10 and seen[2] > seen[1] + 10


def test_pitch_positive_looks_up(face, still):
    neutral = nose_offset(truth(face).landmarks)[1]
    assert nose_offset(truth(face, pitch=20).landmarks)[1] < neutral - 5
    assert nose_offset(truth(face, pitch=-20).landmarks)[1] > neutral + 5
    seen = [nose_offset(still.process(face.render(FacePose(pitch=p))[0]).landmarks)[1]
            for p in (-20, 20)]
    assert seen[1] < seen[0] - 10


def test_roll_positive_tilts_the_top_of_the_head_to_image_right(face, still):
    gt = truth(face, roll=20)
    assert gt.landmarks[FOREHEAD, 0] > gt.landmarks[CHIN, 0] + 20
    gt = truth(face, roll=-20)
    assert gt.landmarks[FOREHEAD, 0] < gt.landmarks[CHIN, 0] - 20
    lm = still.process(face.render(FacePose(roll=20))[0]).landmarks
    assert lm[FOREHEAD, 0] > lm[CHIN, 0] + 20


def test_gaze_yaw_positive_moves_the_irises_to_image_right(face, still):
    base = truth(face)
    gt = truth(face, gaze_left_yaw=20, gaze_right_yaw=20)
    shift = iris_offsets(gt.iris_right, gt.iris_left, gt.landmarks) - \
        iris_offsets(base.iris_right, base.iris_left, base.landmarks)
    assert (shift[:, 0] > 3).all() and (np.abs(shift[:, 1]) < 0.5).all()
    # the network finds the irises where the truth says, and sees them move
    obs0 = still.process(face.render(FacePose())[0])
    for sign in (1, -1):
        img, gt = face.render(FacePose(gaze_left_yaw=20 * sign, gaze_right_yaw=20 * sign))
        obs = still.process(img)
        seen = iris_offsets(obs.right_eye.centre, obs.left_eye.centre, obs.landmarks) - \
            iris_offsets(obs0.right_eye.centre, obs0.left_eye.centre, obs0.landmarks)
        assert (sign * seen[:, 0] > 1.5).all(), seen
        assert np.linalg.norm(obs.right_eye.centre - gt.iris_right) < 2.0
        assert np.linalg.norm(obs.left_eye.centre - gt.iris_left) < 2.0


def test_gaze_pitch_positive_moves_the_irises_up(face):
    base = truth(face)
    up = truth(face, gaze_left_pitch=15, gaze_right_pitch=15)
    shift = iris_offsets(up.iris_right, up.iris_left, up.landmarks) - \
        iris_offsets(base.iris_right, base.iris_left, base.landmarks)
    assert (shift[:, 1] < -2).all()
    # per eye: only the commanded eye moves
    one = truth(face, gaze_left_yaw=20)
    assert np.allclose(one.iris_right, base.iris_right)
    assert one.iris_left[0] > base.iris_left[0] + 3


def test_rotation_matrix_is_the_documented_composition():
    r = head_rotation(30, 20, 10)
    assert np.allclose(r @ r.T, np.eye(3)) and math.isclose(np.linalg.det(r), 1.0)
    forward = np.array([0.0, 0.0, -1.0])          # the face looks at the camera (-z)
    assert (head_rotation(30, 0, 0) @ forward)[0] > 0.4     # yaw: towards image right
    assert (head_rotation(0, 30, 0) @ forward)[1] < -0.4    # pitch: up is -y
    top = np.array([0.0, -1.0, 0.0])
    assert (head_rotation(0, 0, 30) @ top)[0] > 0.4         # roll: top to image right


# -- ground truth agrees with our networks --------------------------------------------------

def test_neutral_landmarks_match_the_pipeline(face, still):
    img, gt = face.render(FacePose())
    obs = still.process(img)
    assert obs.found and obs.confidence > 0.9
    err = np.linalg.norm(obs.landmarks[:, :2] - gt.landmarks, axis=1)
    assert err.mean() < 3.0, err.mean()
    assert np.linalg.norm(obs.right_eye.centre - gt.iris_right) < 1.5
    assert np.linalg.norm(obs.left_eye.centre - gt.iris_left) < 1.5
    assert gt.visible and gt.landmarks.shape == (468, 2) and gt.landmarks_3d.shape == (468, 3)


@pytest.mark.parametrize("pose", [dict(yaw=30), dict(yaw=-30), dict(pitch=-20),
                                  dict(pitch=20), dict(roll=25), dict(x=0.05, y=-0.03, z=0.8)])
def test_posed_landmarks_match_the_pipeline(face, still, pose):
    img, gt = face.render(FacePose(**pose))
    obs = still.process(img)
    err = np.linalg.norm(obs.landmarks[:, :2] - gt.landmarks, axis=1)
    assert err.mean() < 7.0, err.mean()


def test_ground_truth_projects_its_own_3d_points(face):
    gt = truth(face, yaw=20, pitch=-10, roll=5, x=0.02)
    p = gt.landmarks_3d @ gt.camera_matrix.T
    assert np.allclose(p[:, :2] / p[:, 2:], gt.landmarks, atol=1e-3)
    # the head is ~14 cm wide between the ear-side oval points, whatever the pose
    width = np.linalg.norm(gt.landmarks_3d[454] - gt.landmarks_3d[234])
    assert 0.13 < width < 0.15


def _lid_gap(contour: np.ndarray) -> float:
    """Upper (159-like, index 12) to lower (145-like, index 4) lid in the iris contour."""
    return float(np.linalg.norm(contour[12, :2] - contour[4, :2]))


def test_eye_closure_closes_the_eye_the_network_sees(face, still):
    open_obs = still.process(face.render(FacePose())[0])
    img, gt = face.render(FacePose(eye_close_right=1.0))
    obs = still.process(img)
    assert np.linalg.norm(gt.landmarks[159] - gt.landmarks[145]) < 0.3      # truth: shut
    assert _lid_gap(obs.right_eye.contour) < 0.6 * _lid_gap(open_obs.right_eye.contour)
    assert _lid_gap(obs.left_eye.contour) > 0.8 * _lid_gap(open_obs.left_eye.contour)
    half = truth(face, eye_close_left=0.5)
    gap = np.linalg.norm(half.landmarks[386] - half.landmarks[374])
    full = np.linalg.norm(truth(face).landmarks[386] - truth(face).landmarks[374])
    assert 0.3 * full < gap < 0.7 * full


def test_mouth_opens_in_truth_and_in_the_image(face, still):
    closed_img, closed = face.render(FacePose())
    open_img, opened = face.render(FacePose(mouth_open=1.0))
    gap = lambda lm: np.linalg.norm(lm[13, :2] - lm[14, :2])   # noqa: E731
    assert gap(opened.landmarks) > gap(closed.landmarks) + 10
    assert gap(still.process(open_img).landmarks) > gap(still.process(closed_img).landmarks) + 6
    # the opening is dark inside
    mid = ((opened.landmarks[13] + opened.landmarks[14]) / 2).astype(int)
    assert open_img[mid[1] + 2, mid[0]].mean() < 90


# -- options --------------------------------------------------------------------------------

def test_rendering_is_deterministic():
    pose = FacePose(yaw=12, pitch=-5, eye_close_left=0.3, mouth_open=0.4)
    a = SyntheticFace(noise=4.0, seed=3).render(pose)[0]
    b = SyntheticFace(noise=4.0, seed=3).render(pose)[0]
    c = SyntheticFace(noise=4.0, seed=4).render(pose)[0]
    assert a.dtype == np.uint8 and a.shape == (480, 640, 3)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_background_noise_and_light_options():
    pose = FacePose()
    plain = SyntheticFace().render(pose)[0]
    photo = SyntheticFace(background="photo").render(pose)[0]
    corner = (slice(0, 60), slice(0, 60))
    assert np.ptp(plain[corner].reshape(-1, 3), axis=0).max() == 0       # one colour
    assert photo[corner].std() > 3 and not np.array_equal(photo[corner], plain[corner])
    centre = (slice(200, 280), slice(280, 360))                          # the face: unchanged
    assert np.abs(photo[centre].astype(int) - plain[centre]).mean() < 1
    noisy = SyntheticFace(noise=6.0).render(pose)[0]
    diff = noisy.astype(np.float32) - plain
    assert 5.0 < diff[100:380, 100:540].std() < 7.0 and abs(diff.mean()) < 0.5
    dim = SyntheticFace(light=0.6).render(pose)[0]
    assert 0.55 < dim.mean() / plain.mean() < 0.65
    flat = SyntheticFace(contrast=0.5).render(pose)[0]
    assert flat.std() < 0.6 * plain.std()
    small = SyntheticFace(width=320, height=240).render(pose)[0]
    assert small.shape == (240, 320, 3)
    with pytest.raises(ValueError):
        SyntheticFace(background="nope")
    gone, gt = SyntheticFace().render(FacePose(x=3.0))           # far off to the right
    assert not gt.visible and (gone == plain[0, 0]).all()
    with pytest.raises(ValueError):
        SyntheticFace().render(FacePose(z=0.05))                 # head through the lens


def test_write_clip_round_trips(tmp_path):
    path = tmp_path / "clip.avi"
    write_clip(path, [FacePose(yaw=y) for y in range(0, 20, 2)], fps=30, width=320, height=240)
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    assert len(frames) == 10 and frames[0].shape == (240, 320, 3)


# -- demo source ----------------------------------------------------------------------------

def test_demo_source_yields_timed_frames_with_truth():
    src = DemoSource(frames=6)
    frames = list(src)
    assert [f.index for f in frames] == list(range(6))
    assert all(isinstance(f, Frame) and isinstance(f.truth, GroundTruth) for f in frames)
    ts = [f.t for f in frames]
    assert ts == sorted(ts) and math.isclose(ts[1], 1 / 30)
    assert frames[3].truth.pose == demo_pose(3 / 30)
    assert src.name == "demo" and src.independent_frames is False and src.stats.skipped == 0
    endless = DemoSource(fps=10)
    it = iter(endless)
    first = list(itertools.islice(it, 3))
    endless.close()
    assert len(first) == 3 and list(it) == []


def test_demo_source_stops_after_one_period_without_loop():
    frames = list(DemoSource(fps=1.0, loop=False, width=160, height=120))
    assert len(frames) == int(PERIOD) and frames[-1].t == PERIOD - 1


def test_truth_without_drawing_matches_render(face):
    pose = FacePose(yaw=20, pitch=-10, roll=5, eye_close_left=0.6, mouth_open=0.4, gaze_right_yaw=10)
    _, drawn = face.render(pose)
    alone = face.truth(pose)
    for name in GroundTruth.__dataclass_fields__:
        a, b = getattr(drawn, name), getattr(alone, name)
        assert (np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b), name


def test_demo_loop_replays_its_first_pass_without_drawing(monkeypatch):
    drawn = []
    render = SyntheticFace.render
    monkeypatch.setattr(SyntheticFace, "render", lambda self, pose: drawn.append(pose) or render(self, pose))
    src = DemoSource(fps=1.0, frames=int(PERIOD) + 6, width=160, height=120)
    assert src.loop_frames == int(PERIOD)
    frames = list(src)
    assert len(drawn) == int(PERIOD) and src.cached == int(PERIOD)     # the second pass drew nothing
    for k in range(6):
        first, again = frames[k], frames[int(PERIOD) + k]
        assert again.truth.pose == demo_pose(again.t) == first.truth.pose
        assert np.array_equal(again.truth.landmarks, first.truth.landmarks)
        diff = np.abs(again.image.astype(int) - first.image.astype(int))
        assert diff.mean() < 1.5 and again.image.shape == first.image.shape     # JPEG q90 of the same frame
    assert np.abs(frames[int(PERIOD)].image.astype(int) - frames[int(PERIOD) + 3].image.astype(int)).mean() > 0.5


def test_demo_loop_is_kept_only_when_it_repeats_pixel_for_pixel():
    assert DemoSource(fps=30).loop_frames == 720
    assert DemoSource(fps=29.97).loop_frames is None                  # no whole number of frames
    assert DemoSource(noise=2.0).loop_frames is None                  # new noise every frame
    assert DemoSource(loop=False).loop_frames is None
    assert DemoSource(frames=720).loop_frames is None                 # never reaches the repeat
    assert DemoSource(cache=False).loop_frames is None


def test_demo_source_realtime_paces_frames():
    t0 = time.perf_counter()
    list(DemoSource(fps=20.0, frames=5, realtime=True, width=160, height=120))
    assert time.perf_counter() - t0 >= 0.19


def test_demo_performance_is_smooth_bounded_and_blinks():
    ts = np.arange(0.0, 2 * PERIOD, 1 / 100)
    poses = [demo_pose(t) for t in ts]
    for name in ("yaw", "pitch", "roll"):
        v = np.array([getattr(p, name) for p in poses])
        assert np.abs(v).max() <= 35 and np.ptp(v) > 15
        assert np.abs(np.diff(v)).max() < 1.0                 # smooth at 100 Hz, loop included
    mouth = np.array([p.mouth_open for p in poses])
    assert mouth.max() > 0.8 and (mouth == 0).mean() > 0.1   # talks, and pauses
    closed = np.array([p.eye_close_left for p in poses[:int(PERIOD * 100)]]) > 0
    starts = np.flatnonzero(np.diff(closed.astype(int)) == 1)
    ends = np.flatnonzero(np.diff(closed.astype(int)) == -1)
    durations = (ends - starts) / 100
    assert len(starts) == len(BLINKS) >= 6
    assert ((durations >= 0.11) & (durations <= 0.21)).all(), durations
    gaze = np.array([p.gaze_left_yaw + 0.25 * p.yaw for p in poses])
    assert np.ptp(gaze) > 20                                   # gaze shifts happen


# -- the tracking criterion -----------------------------------------------------------------

def test_yaw_sweep_is_tracked_without_redetecting(face):
    """300 frames sweeping yaw ±45°: found on ≥ 99 %, detector re-run on ≤ 3 % of frames."""
    pipe = FacePipeline(tracking=True)
    found = 0
    errors = []
    for i in range(300):
        img, gt = face.render(FacePose(yaw=45.0 * math.sin(2 * math.pi * i / 300)))
        obs = pipe.process(img)
        found += obs.found
        if obs.found:
            errors.append(np.linalg.norm(obs.landmarks[:, :2] - gt.landmarks, axis=1).mean())
    assert found >= 297, found
    assert pipe.detector_runs <= 9, pipe.detector_runs
    assert np.median(errors) < 4.0
