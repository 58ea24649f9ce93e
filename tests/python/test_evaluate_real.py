"""scripts/evaluate_real.py follows one pedestrian by track id, not extract's per-frame target."""
import json

import evaluate_real


def test_boxes_follow_the_first_frames_target_by_track_id(tmp_path):
    frames = [
        {"frame": 0, "target": 1, "people": [{"track_id": 4, "box": [0, 0, 5, 5]}, {"track_id": 7, "box": [10, 0, 5, 5]}]},
        {"frame": 1, "target": 1, "people": [{"track_id": 4, "box": [1, 0, 5, 5]}, {"track_id": 7, "box": [11, 0, 5, 5]}]},
        # track 7 left: the target index now points at track 4, who must not be evaluated
        {"frame": 2, "target": 0, "people": [{"track_id": 4, "box": [2, 0, 5, 5]}]},
        {"frame": 3, "target": 1, "people": [{"track_id": 4, "box": [3, 0, 5, 5]}, {"track_id": 7, "box": [13, 0, 5, 5]}]},
    ]
    path = tmp_path / "poses.json"
    path.write_text(json.dumps({"frames": frames}))
    boxes, track = evaluate_real.target_boxes(str(path), 5)
    assert track == 7
    assert boxes == [[10, 0, 5, 5], [11, 0, 5, 5], None, [13, 0, 5, 5], None]


def test_no_target_in_the_first_frame_gives_no_track(tmp_path):
    path = tmp_path / "poses.json"
    path.write_text(json.dumps({"frames": [{"frame": 0, "target": -1, "people": []},
                                           {"frame": 1, "target": 0, "people": [{"track_id": 2, "box": [0, 0, 1, 1]}]}]}))
    boxes, track = evaluate_real.target_boxes(str(path), 2)
    assert track is None and boxes == [None, None]


def _encode(tmp_path, colour, matrix):
    """A 64x48 (SD) clip of one colour, encoded with `matrix` and tagged so."""
    import subprocess
    path = str(tmp_path / f"{matrix}.mp4")
    r, g, b = colour
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"color=c=0x{r:02x}{g:02x}{b:02x}:s=64x48:d=0.2",
                    "-vf", f"scale=out_color_matrix={matrix}:out_range=tv", "-colorspace", matrix,
                    "-color_primaries", matrix, "-color_trc", matrix, "-c:v", "libx264", "-qp", "0",
                    "-pix_fmt", "yuv444p", path], check=True)
    return path


def test_read_video_converts_with_the_tagged_matrix(tmp_path):
    """standin tags its output BT.709 also for SD; a tag-blind reader (OpenCV) takes SD for
    BT.601 and shifts the colours. Both files below must read back as the colour written."""
    colour = (40, 160, 90)
    for matrix in ("bt709", "smpte170m"):
        frames = evaluate_real.read_video(_encode(tmp_path, colour, matrix))
        assert frames.shape[1:] == (48, 64, 3) and len(frames) >= 1
        err = abs(frames[0, 24, 32].astype(int) - colour).max()
        assert err <= 2, (matrix, frames[0, 24, 32], colour)


def test_outputs_are_lossless_unless_the_extra_arguments_say_otherwise():
    cmd = evaluate_real.replace_command("standin", "c.mp4", "r.png", "o.mp4", "models/demo", 3, "m.json", 0, ["--steps", "2"])
    assert cmd[cmd.index("--crf") + 1] == "0" and cmd[-2:] == ["--steps", "2"] and cmd[cmd.index("--person") + 1] == "3"
    cmd = evaluate_real.replace_command("standin", "c.mp4", "r.png", "o.mp4", "models/demo", 3, "m.json", 0, ["--crf", "12"])
    assert cmd.count("--crf") == 1 and cmd[cmd.index("--crf") + 1] == "12"
    cmd = evaluate_real.replace_command("standin", "c.mp4", "r.png", "o.mp4", "models/demo", 3, "m.json", 0, ["--crf=12"])
    assert "--crf" not in cmd and cmd[-1] == "--crf=12"
