"""``openvtuber export-vmd``: a ``--jsonl`` recording → an MMD motion file (.vmd).

The recording is replayed as fast as it reads, through the same rig as ``run``, and
written with ``protocols.vmd`` (30 fps keys, Shift-JIS names, optional key reduction).
"""
from __future__ import annotations

from pathlib import Path

from ..protocols.vmd import DEFAULT_BONES, VmdStats, write_vmd
from .replay import ReplaySource
from .rig import RigOptions, rig


def export_vmd(src: str | Path, out: str | Path, bones: list[str] | None = None, reduce: float | None = None,
               mirror: bool = True, model_name: str = "OpenVtuber") -> tuple[VmdStats, int]:
    """Returns the writer's stats and how many recording lines were skipped as malformed."""
    source = ReplaySource(src, realtime=False)
    opts = RigOptions(mirror=mirror)
    poses = (rig(state, opts) for state in source)
    stats = write_vmd(out, poses, model_name=model_name, bones=bones, reduce=reduce)
    return stats, source.stats.skipped


def parse_bones(text: str | None) -> list[str] | None:
    if not text:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in DEFAULT_BONES]
    if unknown:
        raise ValueError(f"--model-bones: {', '.join(unknown)} not among the rig's bones ({', '.join(DEFAULT_BONES)})")
    return names
