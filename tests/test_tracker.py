"""FaceTracker behaviour: stills stay independent, bad input never raises, the record is full."""
from __future__ import annotations

import numpy as np

from openvtuber.bridge.records import RECORD_KEYS, make_record
from openvtuber.tracking.pipeline import FaceObservation
from openvtuber.tracking.sources.base import Frame
from openvtuber.tracking.sources.synthetic import FacePose, SyntheticFace
from openvtuber.tracking.tracker import FaceTracker


def test_stills_are_independent(astronaut_vga):
    tracker = FaceTracker()
    first = tracker.process(Frame(0, None, astronaut_vga, "a.png"), independent=True)
    tracker.process(Frame(1, None, np.ascontiguousarray(astronaut_vga[:, ::-1]), "b.png"), independent=True)
    again = tracker.process(Frame(2, None, astronaut_vga, "c.png"), independent=True)
    assert first.found and again.found
    assert (first.yaw, first.pitch, first.eye_open_left, first.mouth_open) == \
           (again.yaw, again.pitch, again.eye_open_left, again.mouth_open)
    assert tracker.pipeline.detector_runs == 3


def test_every_record_key_is_filled(astronaut_vga):
    tracker = FaceTracker()
    frame = Frame(0, 0.0, astronaut_vga)
    state = tracker.process(frame)
    rec = make_record(frame, state)
    assert set(rec) == set(RECORD_KEYS)
    assert all(rec[k] is not None for k in RECORD_KEYS if k != "path")
    assert state.landmarks.shape == (478, 3)


def test_nan_landmarks_are_not_a_face():
    tracker = FaceTracker()
    face = SyntheticFace()
    image, _ = face.render(FacePose())
    obs = tracker.pipeline.process(image)
    obs.landmarks = obs.landmarks.copy()
    obs.landmarks[::7] = np.nan
    state = tracker.update(obs, 0.0, 0)
    assert not state.found and not state.valid


def test_collapsed_crop_is_not_a_face():
    tracker = FaceTracker()
    image, _ = SyntheticFace().render(FacePose())
    obs = tracker.pipeline.process(image)
    obs.landmarks = np.full_like(obs.landmarks, 100.0)
    assert not tracker.update(obs, 0.0, 0).found


def test_face_at_the_border_and_a_tiny_face_do_not_raise():
    tracker = FaceTracker()
    face = SyntheticFace()
    half_out, _ = face.render(FacePose(x=0.33))                # half the face beyond the right edge
    tiny = np.full((480, 640, 3), 140, np.uint8)
    small, _ = SyntheticFace(width=160, height=120).render(FacePose())
    tiny[200:240, 300:340] = small[40:80, 60:100]              # a ~40 px face
    for i, img in enumerate((half_out, tiny)):
        state = tracker.process(Frame(i, i / 30, img))
        assert isinstance(state.found, bool)
        if state.found:
            assert 0 <= state.eye_open_left <= 1 and np.isfinite(state.yaw)


def test_lost_face_before_any_face_has_no_values():
    tracker = FaceTracker()
    state = tracker.update(FaceObservation(False), 0.0, 0)
    assert not state.found and not state.valid
