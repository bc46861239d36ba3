"""The face pipeline on real photos: geometry, eye sides, tracking mode, re-detection."""
from __future__ import annotations

import cv2
import numpy as np

from openvtuber.models.iris import LEFT_EYE_CORNERS, RIGHT_EYE_CORNERS
from openvtuber.models.roi import RotatedRect, project, warp
from openvtuber.tracking.pipeline import FacePipeline


def test_finds_the_face_with_sane_geometry(astronaut_vga, litert_pipeline):
    obs = litert_pipeline.process(astronaut_vga)
    assert obs.found and obs.confidence > 0.9 and obs.detected
    assert obs.landmarks.shape == (468, 3)
    assert obs.image_size == (640, 480)
    x0, y0, x1, y1 = obs.detection.box
    inside = ((obs.landmarks[:, 0] > x0 - 20) & (obs.landmarks[:, 0] < x1 + 20)
              & (obs.landmarks[:, 1] > y0 - 40) & (obs.landmarks[:, 1] < y1 + 20))
    assert inside.mean() > 0.95
    # nose tip (1) below the eyes and above the mouth (13)
    lm = obs.landmarks
    assert lm[33, 1] < lm[1, 1] < lm[13, 1]


def test_person_right_eye_is_image_left(astronaut_vga, litert_pipeline):
    obs = litert_pipeline.process(astronaut_vga)
    assert obs.right_eye.centre[0] < obs.left_eye.centre[0]
    for eye, corners in ((obs.right_eye, RIGHT_EYE_CORNERS), (obs.left_eye, LEFT_EYE_CORNERS)):
        xs = obs.landmarks[list(corners), 0]
        assert xs.min() < eye.centre[0] < xs.max()          # iris between its eye's corners
        assert eye.contour.shape == (71, 3) and eye.iris.shape == (5, 3)
        radius = np.linalg.norm(eye.iris[1:, :2] - eye.centre, axis=1)
        assert 1.5 < radius.mean() < 12 and radius.std() < 0.3 * radius.mean()


def test_landmarks_follow_an_in_plane_rotation(astronaut_vga, litert_pipeline):
    base = litert_pipeline.process(astronaut_vga)
    m = cv2.getRotationMatrix2D((320, 240), 25, 1.0)   # counter-clockwise on screen
    rotated = cv2.warpAffine(astronaut_vga, m, (640, 480), borderMode=cv2.BORDER_REPLICATE)
    obs = litert_pipeline.process(rotated)
    assert obs.found
    # OpenCV's matrix maps pixel indices; landmarks are continuous (centre of pixel 0 = 0.5)
    pts = base.landmarks[:, :2] - 0.5
    expected = pts @ m[:, :2].T + m[:, 2] + 0.5
    assert np.mean(np.linalg.norm(obs.landmarks[:, :2] - expected, axis=1)) < 2.0


def test_mirrored_photo_swaps_the_eyes(astronaut_vga, litert_pipeline):
    a = litert_pipeline.process(astronaut_vga)
    b = litert_pipeline.process(np.ascontiguousarray(astronaut_vga[:, ::-1]))
    mirrored_right = 640 - b.right_eye.centre[0]
    assert abs(mirrored_right - a.left_eye.centre[0]) < 2.0


def test_tracking_mode_runs_the_detector_once_on_a_steady_face(astronaut_vga):
    pipe = FacePipeline(tracking=True)
    results = [pipe.process(astronaut_vga) for _ in range(20)]
    assert all(r.found for r in results)
    assert pipe.detector_runs == 1
    assert results[0].detected and not any(r.detected for r in results[1:])
    assert all(r.times.detect == 0.0 and r.times.landmarks > 0 and r.times.iris > 0 for r in results[1:])


def test_lost_face_triggers_detection_and_recovers(astronaut_vga):
    pipe = FacePipeline(tracking=True)
    assert pipe.process(astronaut_vga).found
    blank = np.full_like(astronaut_vga, 90)
    lost = pipe.process(blank)
    assert not lost.found and lost.detected and lost.landmarks is None
    back = pipe.process(astronaut_vga)
    assert back.found and back.detected
    assert pipe.detector_runs == 3      # first frame, the lost frame, the return


def test_tracking_follows_a_moving_face_without_redetecting(astronaut):
    pipe = FacePipeline(tracking=True)
    found = 0
    for i in range(30):
        canvas = np.full((480, 640, 3), 128, np.uint8)
        dx = 40 + i * 3                                  # 3 px per frame to the right
        canvas[:, dx:dx + 512] = astronaut[16:496, : 640 - dx][:, :512]
        found += pipe.process(canvas).found
    assert found == 30 and pipe.detector_runs == 1


def test_still_mode_forgets_between_frames(astronaut_vga, litert_pipeline):
    before = litert_pipeline.detector_runs
    for _ in range(3):
        assert litert_pipeline.process(astronaut_vga).detected
    assert litert_pipeline.detector_runs == before + 3


def test_no_face_in_noise(litert_pipeline):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    obs = litert_pipeline.process(noise)
    assert not obs.found and obs.landmarks is None


def test_roi_crop_and_projection_are_inverse():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    rect = RotatedRect(150.0, 100.0, 80.0, 80.0, 0.4)
    for flip in (False, True):
        m = rect.crop_to_image(64, flip=flip)
        patch = warp(image, m, 64, half_pixel=True)
        mp_patch = warp(image, m, 64)
        for u, v in ((10, 20), (40, 5), (63, 63)):
            # half_pixel: the crop's pixel centre (i + 0.5) samples the image where project() says
            x, y = project(np.array([[u + 0.5, v + 0.5]], np.float32), m)[0]
            ref = cv2.getRectSubPix(image, (1, 1), (float(x) - 0.5, float(y) - 0.5))[0, 0]
            assert np.abs(ref.astype(int) - patch[v, u].astype(int)).max() <= 2
            # default (MediaPipe's ImageToTensor): crop index i reads image index project(i)
            x, y = project(np.array([[u, v]], np.float32), m)[0]
            ref = cv2.getRectSubPix(image, (1, 1), (float(x), float(y)))[0, 0]
            assert np.abs(ref.astype(int) - mp_patch[v, u].astype(int)).max() <= 2


def test_a_mirrored_detection_maps_back_to_the_unmirrored_frame(astronaut_vga, litert_pipeline):
    det = litert_pipeline.detector.detect(astronaut_vga)[0]
    back = litert_pipeline.detector.detect(np.ascontiguousarray(astronaut_vga[:, ::-1]))[0].mirrored(640)
    tol = 0.1 * (det.box[2] - det.box[0])                  # the detector is not mirror-symmetric itself
    assert np.allclose(back.box, det.box, atol=tol)
    assert np.allclose(back.keypoints, det.keypoints, atol=tol)          # the right eye is the right eye again
    assert back.keypoints[0, 0] < back.keypoints[1, 0]                    # ... on the image's left


def test_the_mirrored_crop_reads_the_same_face_in_the_persons_own_order(astronaut_vga, litert_pipeline):
    from openvtuber.models.landmarks import roi_from_landmarks
    from openvtuber.tracking.solvers.face_model import mirror_index

    mirror = mirror_index()
    assert np.array_equal(mirror[mirror], np.arange(468)) and mirror[33] == 263 and mirror[1] == 1
    plain = litert_pipeline.process(astronaut_vga).landmarks
    roi = roi_from_landmarks(plain)
    lm = litert_pipeline.landmarker.run(astronaut_vga, roi, mirror)
    assert lm.presence > 0.9
    assert np.median(np.linalg.norm(lm.points[:, :2] - plain[:, :2], axis=1)) < 2.0


def test_stills_are_refined_and_averaged_with_their_mirror_reading(astronaut_vga):
    pipe = FacePipeline(tracking=False)
    plain = pipe.process(astronaut_vga)
    pipe.read_stills(True)
    refined = pipe.process(astronaut_vga)
    assert refined.found and not pipe.tracking
    shift = np.linalg.norm(refined.landmarks[:, :2] - plain.landmarks[:, :2], axis=1)
    assert 0.0 < np.median(shift) < 3.0                   # a second opinion on the same face, not another face
    blank = np.full_like(astronaut_vga, 90)
    assert not pipe.process(blank).found


def test_a_lost_face_in_video_costs_one_detector_run_a_frame_plain_and_mirrored_in_turns():
    pipe = FacePipeline(tracking=True)
    seen = []
    detect = pipe.detector.detect
    pipe.detector.detect = lambda frame: seen.append(frame.copy()) or detect(frame)
    rng = np.random.default_rng(1)
    empty = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    for _ in range(4):
        assert not pipe.process(empty).found
    assert len(seen) == 4
    assert [np.array_equal(f, empty[:, ::-1]) for f in seen] == [False, True, False, True]
    still = FacePipeline(tracking=False)
    still.detector.detect = lambda frame: seen.append(frame) or detect(frame)
    seen.clear()
    assert not still.process(empty).found and len(seen) == 2        # a still gets both looks at once
