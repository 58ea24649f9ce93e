#!/usr/bin/env python3
"""Extract files from an Emscripten file-packager bundle (MediaPipe's *_packed_assets.data).

Format: the .data file is the plain concatenation of the packed files; the table of contents
lives in the companion loader .js as the argument of `loadPackage({...})`:
  {"files": [{"filename": "/abs/path", "start": S, "end": E}, ...], "remote_package_size": N}
Each file is data[start:end]. Without a loader, .tflite flatbuffers are located by their
"TFL3" file identifier and flatbuffer root size (fallback; only used for single-file bundles).
"""
import argparse
import json
import os
import re
import sys


def read_toc(loader_js: str):
    text = open(loader_js, encoding="utf-8").read()
    m = re.search(r"loadPackage\((\{.*?\})\);", text, re.S)
    if not m:
        raise ValueError(f"{loader_js}: no loadPackage({{...}}) metadata found")
    meta = json.loads(m.group(1))
    return meta["files"], meta.get("remote_package_size")


def unpack(data_path: str, loader_js: str, out_dir: str, only_ext=(".tflite",)):
    data = open(data_path, "rb").read()
    if loader_js:
        files, size = read_toc(loader_js)
        if size is not None and size != len(data):
            raise ValueError(f"{data_path}: size {len(data)} != packaged size {size}")
    else:
        if data[4:8] != b"TFL3":
            raise ValueError(f"{data_path}: no loader given and not a single .tflite")
        files = [{"filename": "model.tflite", "start": 0, "end": len(data)}]
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for f in files:
        name = os.path.basename(f["filename"])
        if only_ext and not name.endswith(only_ext):
            continue
        blob = data[f["start"]:f["end"]]
        if name.endswith(".tflite") and blob[4:8] != b"TFL3":
            raise ValueError(f"{name}: missing TFL3 identifier")
        path = os.path.join(out_dir, name)
        with open(path + ".tmp", "wb") as fh:
            fh.write(blob)
        os.replace(path + ".tmp", path)
        written.append(path)
    return written


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--loader", default=None)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    for p in unpack(a.data, a.loader, a.out):
        print("unpacked", p)


if __name__ == "__main__":
    sys.exit(main())
