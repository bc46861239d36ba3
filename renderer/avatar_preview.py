"""A tiny software preview of a PMX model (flat toon shading + inverted-hull
outline, z-buffer), for looking at the generated avatar without a
browser.  Not the real renderer: that is the three.js page.

    python renderer/avatar_preview.py OUT_DIR      # writes avatar_*.png
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pmx_writer  # noqa: E402

BG = (236, 232, 226)
PNG9 = [cv2.IMWRITE_PNG_COMPRESSION, 9]


def _decode_png(b: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_UNCHANGED)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def render(pmx: dict, textures: dict[str, bytes], morphs: dict[str, float] | None = None,
           yaw_deg: float = 0.0, center=(0.0, 13.6, 0.0), view_h: float = 9.0, size: int = 420,
           eye_yaw_deg: float = 0.0) -> np.ndarray:
    pos = pmx["positions"].copy()
    for m in pmx["morphs"]:
        w = (morphs or {}).get(m["name"], 0.0)
        if w:
            pos[m["indices"]] += w * m["offsets"]
    nrm = pmx["normals"].copy()
    if eye_yaw_deg:
        names = [b["name"] for b in pmx["bones"]]
        for eye in ("左目", "右目"):
            bi = names.index(eye)
            sel = pmx["bones_idx"][:, 0] == bi
            c = np.array(pmx["bones"][bi]["position"])
            a = math.radians(eye_yaw_deg)
            R = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
            pos[sel] = (pos[sel] - c) @ R.T + c
    a = math.radians(yaw_deg)
    R = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    P = (pos - center) @ R.T
    N = nrm @ R.T
    scale = size / view_h
    tex = {name: _decode_png(b) for name, b in textures.items()}
    light = np.array([-0.3, 0.45, 0.85]); light /= np.linalg.norm(light)
    tris = []   # (depth, pts(3,2), colour)
    fstart = 0
    faces = pmx["faces"]
    for mat in pmx["materials"]:
        f = faces[fstart:fstart + mat["faces"]]
        fstart += mat["faces"]
        if not len(f):
            continue
        base = np.array(mat["diffuse"][:3]) * 255
        alpha = 1.0
        if mat["texture"] >= 0:
            img = tex[pmx["textures"][mat["texture"]]]
            uv = pmx["uvs"][f].mean(1)
            px = np.clip((uv[:, 0] * img.shape[1]).astype(int), 0, img.shape[1] - 1)
            py = np.clip((uv[:, 1] * img.shape[0]).astype(int), 0, img.shape[0] - 1)
            col = img[py, px].astype(float)
            if col.shape[1] == 4:
                alpha = col[:, 3] / 255.0
                col = col[:, :3]
        else:
            col = np.repeat(base[None], len(f), 0)
        n = N[f].mean(1)
        n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-9
        lam = n @ light
        shade = np.where(lam > 0.05, 1.0, 0.82)[:, None]
        if mat["name"] in ("白目", "瞳口", "線", "頬"):
            shade = np.ones_like(shade)
        col = col * shade
        v = P[f]
        e1, e2 = v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]
        facing = (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]) > 0
        bias = 0.0
        depth = v[:, :, 2].mean(1) + bias
        area = np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
        facing &= area > 1e-7
        for i in np.nonzero(facing)[0]:
            tris.append((depth[i], v[i, :, :2], col[i], alpha if np.ndim(alpha) == 0 else float(alpha[i]),
                         v[i, :, 2] + bias))
        if mat["flags"] & pmx_writer.DRAW_EDGE:
            vo = P[f] + N[f] * 0.045
            e1, e2 = vo[:, 1] - vo[:, 0], vo[:, 2] - vo[:, 0]
            back = (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]) < 0
            ecol = np.array([60, 36, 34]) if mat["name"] != "服" else np.array([26, 28, 52])
            d2 = vo[:, :, 2].mean(1) - 0.25
            for i in np.nonzero(back)[0]:
                tris.append((d2[i], vo[i, :, :2], ecol, 1.0, vo[i, :, 2]))
    # Z-buffer rasteriser (2× supersampled): opaque first, then alpha-blended decals.
    W = size * 2
    img = np.zeros((W, W, 3), np.float64)
    img[:] = BG
    zbuf = np.full((W, W), -np.inf)
    ss = 2 * scale
    for _, pts, col, al, zs in sorted(tris, key=lambda t: t[3] < 0.999):
        x = pts[:, 0] * ss + size
        y = -pts[:, 1] * ss + size
        x0, x1 = max(int(np.floor(x.min())), 0), min(int(np.ceil(x.max())), W - 1)
        y0, y1 = max(int(np.floor(y.min())), 0), min(int(np.ceil(y.max())), W - 1)
        if x0 > x1 or y0 > y1:
            continue
        den = (y[1] - y[2]) * (x[0] - x[2]) + (x[2] - x[1]) * (y[0] - y[2])
        if abs(den) < 1e-12:
            continue
        py, px = np.mgrid[y0:y1 + 1, x0:x1 + 1] + 0.5
        l0 = ((y[1] - y[2]) * (px - x[2]) + (x[2] - x[1]) * (py - y[2])) / den
        l1 = ((y[2] - y[0]) * (px - x[2]) + (x[0] - x[2]) * (py - y[2])) / den
        l2 = 1 - l0 - l1
        inside = (l0 >= 0) & (l1 >= 0) & (l2 >= 0)
        if not inside.any():
            continue
        z = l0 * zs[0] + l1 * zs[1] + l2 * zs[2]
        zb = zbuf[y0:y1 + 1, x0:x1 + 1]
        m = inside & (z > zb)
        region = img[y0:y1 + 1, x0:x1 + 1]
        if al >= 0.999:
            region[m] = col
            zb[m] = z[m]
        elif al > 0.01:
            region[m] = region[m] * (1 - al) + np.asarray(col) * al
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)


def _label(img, text):
    cv2.putText(img, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (60, 60, 60), 1, cv2.LINE_AA)
    return img


def write_previews(model_dir: Path, out_dir: Path) -> list[Path]:
    data = (model_dir / "openvtuber.pmx").read_bytes()
    pmx = pmx_writer.read_pmx(data)
    tex = {t: (model_dir / t).read_bytes() for t in pmx["textures"]}
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    bust = np.hstack([_label(render(pmx, tex), "front"),
                      _label(render(pmx, tex, yaw_deg=35), "3/4"),
                      _label(render(pmx, tex, yaw_deg=90), "side")])
    paths.append(out_dir / "avatar_bust.png")
    cv2.imwrite(str(paths[-1]), bust, PNG9)
    face = dict(center=(0, 14.5, 0), view_h=6.4, size=220)
    shots = [("rest", {}), ("まばたき blink", {"まばたき": 1}), ("ウィンク wink", {"ウィンク": 1}),
             ("あ a", {"あ": 1}), ("い i", {"い": 1}), ("う u", {"う": 1}), ("え e", {"え": 1}),
             ("お o", {"お": 1}), ("にこり+笑い smile", {"にこり": 1, "笑い": 1}),
             ("上 brows up", {"上": 1}), ("困る troubled", {"困る": 1}), ("怒り angry", {"怒り": 1})]
    tiles = []
    for label, m in shots:
        ascii_label = label.split(" ", 1)[-1] if " " in label else label
        tiles.append(_label(render(pmx, tex, morphs=m, **face), ascii_label))
    tiles.append(_label(render(pmx, tex, eye_yaw_deg=15, **face), "eyes yaw 15"))
    tiles.append(_label(render(pmx, tex, morphs={"まばたき": 0.5}, **face), "blink 0.5"))
    rows = [np.hstack(tiles[i:i + 7]) for i in (0, 7)]
    paths.append(out_dir / "avatar_expressions.png")
    cv2.imwrite(str(paths[-1]), np.vstack(rows), PNG9)
    full = np.hstack([_label(render(pmx, tex, center=(0, 9.3, 0), view_h=19.5, size=420), "full"),
                      _label(render(pmx, tex, center=(0, 9.3, 0), view_h=19.5, size=420, yaw_deg=-40),
                             "full 3/4")])
    paths.append(out_dir / "avatar_full.png")
    cv2.imwrite(str(paths[-1]), full, PNG9)
    return paths


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else here.parent / "tests" / "artifacts"
    for p in write_previews(here / "models" / "openvtuber", out):
        print(p, p.stat().st_size)
