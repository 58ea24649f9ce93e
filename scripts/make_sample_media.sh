#!/usr/bin/env bash
# Makes the sample media used by demos and the media tests, from the pedestrian footage in
# Debian's opencv-doc package (examples/data/vtest.avi). Output goes to a git-ignored folder
# (default: <repo>/data). Idempotent: files that already exist are kept. Takes a few seconds.
#
#   scripts/make_sample_media.sh [OUTPUT_DIR]
#
# Files:
#   vtest.avi          the original (768x576, 10 fps, 795 frames, MS-MPEG4v3, no audio)
#   clip_audio.mp4     first 3 s as H.264 + a 440 Hz AAC tone
#   pcm_audio.avi      first 2 s, original video + PCM audio (MP4 cannot hold PCM: AAC path)
#   rotated.mp4        9:16 phone-style: stored landscape 768x432 + display matrix "turn 90 clockwise"
#   rotated_upright.png  first frame of rotated.mp4 as it should display (432x768)
#   odd_513x771.mp4    odd frame size (H.264 4:4:4, which allows odd sides)
#   no_video.m4a       audio only
#   empty.mp4          0 bytes
#   text.mp4           a text file with a video extension
#   person.png         a pedestrian cut from frame 200, for reference-image tests
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$repo_root/data}"
source_video="${STANDIN_VTEST:-/usr/share/doc/opencv-doc/examples/data/vtest.avi}"

if [[ ! -f "$source_video" ]]; then
  echo "make_sample_media: $source_video not found (apt-get install opencv-doc)" >&2
  exit 3
fi
if ! command -v ffmpeg >/dev/null; then
  echo "make_sample_media: ffmpeg not found (apt-get install ffmpeg)" >&2
  exit 3
fi
mkdir -p "$out"

ff() { ffmpeg -hide_banner -nostdin -loglevel error -y "$@"; }

# produce NAME COMMAND...: runs COMMAND with $tmp as its output path, then moves it into place,
# so an interrupted or concurrent run never leaves a half-written file under the final name.
produce() {
  local name="$1"; shift
  [[ -s "$out/$name" ]] && return 0
  local tmp="$out/.tmp.$$.$name"
  tmp="${tmp%.*}.part.${name##*.}"
  "$@" "$tmp"
  mv -f "$tmp" "$out/$name"
}

copy_source() { cp "$source_video" "$1"; }
clip_audio() {
  ff -t 3 -i "$source_video" -f lavfi -i "sine=frequency=440:sample_rate=44100" -t 3 \
     -map 0:v -map 1:a -c:v libx264 -preset veryfast -crf 20 -pix_fmt yuv420p \
     -c:a aac -b:a 96k -shortest -movflags +faststart "$1"
}
pcm_audio() {
  ff -t 2 -i "$source_video" -f lavfi -i "sine=frequency=330:sample_rate=22050" -t 2 \
     -map 0:v -map 1:a -c:v copy -c:a pcm_s16le "$1"
}
# A phone held upright records a landscape sensor image plus "turn 90 degrees clockwise".
portrait_chain="crop=324:576:200:0,scale=432:768"
rotated() {
  # Two steps: FFmpeg 5.1's CLI only turns the "rotate" tag into a display matrix when
  # stream-copying, and it reads the tag counter-clockwise there: -90 gives the clockwise
  # quarter turn that phones write (ffprobe shows "rotation=-90", as for an iPhone clip).
  local landscape="${1%.*}.landscape.mp4"
  ff -t 2 -i "$source_video" -vf "$portrait_chain,transpose=cclock" \
     -c:v libx264 -preset veryfast -crf 20 -pix_fmt yuv420p "$landscape"
  ff -i "$landscape" -c copy -metadata:s:v:0 rotate=-90 "$1"
  rm -f "$landscape"
}
rotated_upright() { ff -i "$source_video" -vf "$portrait_chain" -frames:v 1 "$1"; }
odd_size() {
  ff -t 2 -i "$source_video" -vf "scale=513:771" -c:v libx264 -preset veryfast -crf 20 \
     -pix_fmt yuv444p "$1"
}
no_video() { ff -f lavfi -i "sine=frequency=440:sample_rate=44100" -t 2 -c:a aac "$1"; }
empty() { : > "$1"; }
text() { printf 'this is a text file, not a video\n' > "$1"; }
person() {
  ff -ss 20 -i "$source_video" -vf "crop=90:140:590:245,scale=180:280:flags=lanczos" \
     -frames:v 1 "$1"
}

produce vtest.avi copy_source
produce clip_audio.mp4 clip_audio
produce pcm_audio.avi pcm_audio
produce rotated.mp4 rotated
produce rotated_upright.png rotated_upright
produce odd_513x771.mp4 odd_size
produce no_video.m4a no_video
empty "$out/empty.mp4"                       # always 0 bytes, so recreate every time
produce text.mp4 text
produce person.png person
echo "sample media ready in $out"
