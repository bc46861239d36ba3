"""Generate the bundled avatar: renderer/models/openvtuber/openvtuber.pmx (+ textures).

    python renderer/generate.py            # write the files, print a summary
    python renderer/generate.py --check    # exit 1 unless the files match the generator
    python renderer/generate.py --out DIR  # write elsewhere

Deterministic: the same sources give the same bytes (no randomness, no clocks,
PNGs stored uncompressed-deflate).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import avatar  # noqa: E402
from pmx_writer import write_pmx  # noqa: E402

DEFAULT_OUT = HERE / "models" / "openvtuber"
PMX_NAME = "openvtuber.pmx"


def build_files() -> tuple[dict[str, bytes], "avatar.Model"]:
    model, textures = avatar.build_avatar()
    files = {PMX_NAME: write_pmx(model)}
    files.update(textures)
    files["LICENSE.txt"] = (avatar.LICENSE_LINE + "\n").encode()
    return files, model


def summary(files: dict[str, bytes], model) -> str:
    lines = [f"vertices {len(model.positions)}  triangles {len(model.faces)}  "
             f"materials {len(model.materials)}  bones {len(model.bones)}  morphs {len(model.morphs)}"]
    for name in sorted(files):
        lines.append(f"{hashlib.sha256(files[name]).hexdigest()}  {name} ({len(files[name])} bytes)")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    ap.add_argument("--check", action="store_true", help="verify the files instead of writing")
    args = ap.parse_args(argv)
    files, model = build_files()
    if args.check:
        bad = [n for n, b in files.items()
               if not (args.out / n).is_file() or (args.out / n).read_bytes() != b]
        if bad:
            print(f"avatar out of date in {args.out}: {', '.join(sorted(bad))} "
                  f"(run: python renderer/generate.py)", file=sys.stderr)
            return 1
        print(f"avatar up to date: {args.out / PMX_NAME}")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (args.out / name).write_bytes(data)
    print(f"wrote {args.out / PMX_NAME}")
    print(summary(files, model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
