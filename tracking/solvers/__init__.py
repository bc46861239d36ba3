"""Solvers: pure functions from landmarks to rig values (head, eyes, gaze, mouth, brows)."""
