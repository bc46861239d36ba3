"""The page panel's settings (mirror, smoothing, model, VMC target), kept in the user config folder so they
survive a restart. A damaged file is ignored with one line; nothing else depends on it."""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ..tracking.calibration import config_dir

FILE_NAME = "page_settings.json"


@dataclass
class PageSettings:
    mirror: bool = True
    smoothing: float = 0.2
    model: str = "bundled"          # or the name of a model the user dropped on the page
    vmc: str | None = None          # "HOST:PORT" typed in the panel (None: the command line's)

    @classmethod
    def path(cls) -> Path:
        return config_dir() / FILE_NAME

    @classmethod
    def load(cls, warn=None) -> "PageSettings":  # noqa: ANN001 - a message callback
        path = cls.path()
        if not path.is_file():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            mirror, smoothing = data.get("mirror", True), data.get("smoothing", 0.2)
            model = data.get("model", "bundled")
            if not isinstance(model, str) or not 0 < len(model) <= 64:
                raise ValueError("model must be a model name")
            vmc = data.get("vmc")
            if vmc is not None and (not isinstance(vmc, str) or not 0 < len(vmc) <= 255):
                raise ValueError("vmc must be HOST:PORT")
            if not isinstance(mirror, bool):
                raise ValueError("mirror must be true or false")
            if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) \
                    or not math.isfinite(smoothing) or not 0.0 <= smoothing <= 1.0:
                raise ValueError("smoothing must be a number from 0 to 1")
            return cls(mirror, float(smoothing), model, vmc)
        except (ValueError, OSError, AttributeError) as e:
            if warn:
                warn(f"page settings {path} ignored ({e})")
            return cls()

    def save(self) -> Path | None:
        """Write atomically; a folder that cannot be written only costs persistence (None)."""
        path = self.path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(self)), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            return None
        return path
