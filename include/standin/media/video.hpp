#pragma once
// Video decoding and encoding on FFmpeg's libav* (no Torch, no OpenCV videoio).
//
//   STANDIN_ASSIGN_OR_RETURN(auto reader, media::VideoReader::open("in.mp4"));
//   media::WriterOptions opts;
//   opts.fps = reader.info().fps;  opts.time_base = reader.info().time_base;
//   opts.audio_from = "in.mp4";
//   STANDIN_ASSIGN_OR_RETURN(auto writer, media::VideoWriter::open("out.mp4",
//                            reader.info().width, reader.info().height, opts));
//   media::Frame frame;
//   while (true) {
//     STANDIN_ASSIGN_OR_RETURN(bool got, reader.read(frame));
//     if (!got) break;
//     STANDIN_TRY(writer.write(frame));   // frame.pts passes through: VFR stays VFR
//   }
//   STANDIN_TRY(writer.finish());
//
// Failures come back as values: Error::bad_input for unreadable inputs, Error::runtime for
// output problems, each a single line naming the file. Nothing here throws or aborts, and
// FFmpeg's own log output is routed to spdlog at debug level (see -v).
#include <cstdint>
#include <memory>
#include <string>

#include <opencv2/core/mat.hpp>

#include "standin/core/error.hpp"

namespace standin::media {

struct Rational {
  int num = 0;
  int den = 1;
  double value() const { return den == 0 ? 0.0 : static_cast<double>(num) / den; }
  bool valid() const { return num > 0 && den > 0; }
  bool operator==(const Rational& o) const {
    return static_cast<int64_t>(num) * o.den == static_cast<int64_t>(o.num) * den;
  }
  bool operator!=(const Rational& o) const { return !(*this == o); }
};

// Largest frame either side accepted, and largest area; checked before any allocation.
constexpr int kMaxFrameSide = 16384;
constexpr int64_t kMaxFramePixels = int64_t{1} << 28;

struct VideoInfo {
  int width = 0;   // display size, i.e. after applying rotation_degrees
  int height = 0;
  int coded_width = 0;  // size as stored in the stream, before rotation
  int coded_height = 0;
  Rational fps;        // exact: the stream's average frame rate (else r_frame_rate)
  Rational time_base;  // unit of Frame::pts
  int64_t frame_count = 0;
  // true: frame_count was counted from the container's packets (ReaderOptions::scan_packets);
  // false: it is the container's header value or duration x fps, an estimate.
  bool frame_count_exact = false;
  double duration_s = 0.0;
  int rotation_degrees = 0;  // clockwise turn applied to decoded frames: 0, 90, 180 or 270
  Rational sample_aspect_ratio{1, 1};  // reported only; frames are not resampled
  std::string pixel_format;  // e.g. "yuv420p"
  std::string codec;         // e.g. "h264"
  std::string container;     // e.g. "mov,mp4,m4a,3gp,3g2,mj2"
  bool has_audio = false;
  // With scan_packets: timestamps of consecutive frames differ by more than 1 % of the
  // median step. Without: the container's average and base frame rates disagree.
  bool variable_frame_rate = false;
};

struct Frame {
  cv::Mat rgb;         // CV_8UC3, R,G,B byte order, display size (upright)
  // Presentation time in time_base units, counted from the start of the video stream (first
  // frame at or near 0). From VideoReader: never negative and strictly increasing (broken or
  // missing timestamps are repaired). For VideoWriter::write, pts < 0 means "the next frame
  // at the nominal frame rate".
  int64_t pts = -1;
  double time_s = 0;   // pts in seconds
  int64_t index = 0;   // 0-based decode order index of this frame
};

struct ReaderOptions {
  // Demux the whole file once (no decoding) at open to count frames exactly and detect
  // variable frame rate. Costs one read of the file's bytes.
  bool scan_packets = false;
  int threads = 0;  // decoder threads; 0 lets FFmpeg choose
};

class VideoReader {
 public:
  static Result<VideoReader> open(const std::string& path, const ReaderOptions& options = {});

  VideoReader(VideoReader&&) noexcept;
  VideoReader& operator=(VideoReader&&) noexcept;
  VideoReader(const VideoReader&) = delete;
  VideoReader& operator=(const VideoReader&) = delete;
  ~VideoReader();

  const VideoInfo& info() const;
  const std::string& path() const;

  // Decodes the next frame into `out` (a fresh image buffer each call, so frames kept by the
  // caller are never overwritten). Returns false at the end of the stream.
  Result<bool> read(Frame& out);

 private:
  struct Impl;
  explicit VideoReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// What VideoWriter encodes. ffv1 is lossless (FFV1 version 3 in Matroska): RGB frames are
// stored as bgr0 and single-channel frames as gray8, both bit-exact on reading back
// (mattes for compositors, intermediate renders).
enum class VideoCodec { h264, ffv1 };

struct WriterOptions {
  VideoCodec codec = VideoCodec::h264;
  bool gray = false;               // ffv1 only: frames are CV_8UC1 (stored as gray8, full range)
  int crf = 18;                    // libx264 constant rate factor (0..51, lower = better)
  std::string preset = "medium";  // libx264 preset
  Rational fps{25, 1};             // nominal frame rate (stream header, pts < 0 frames)
  Rational time_base{0, 1};       // unit of Frame::pts; {0,1} = 1/fps
  // File whose first audio stream goes into the output: copied packet for packet when the
  // container can hold its codec, else re-encoded to AAC. Empty = no audio. A file without
  // audio is not an error (the output simply has none). Audio timestamps are taken relative
  // to that file's video stream start, matching Frame::pts from VideoReader on the same file.
  std::string audio_from;
  double audio_end_s = -1;  // >= 0: drop audio packets starting at or after this time
  int threads = 0;          // encoder threads; 0 lets FFmpeg choose
  bool faststart = true;    // MP4/MOV: move the index to the front (a second pass at finish)
  // The path errors name (the destination the user gave, when `path` is a temporary); empty:
  // the path written to.
  std::string name_in_messages;
};

// Checks before any work that `path`'s extension names a container H.264 can go into (MP4,
// MOV, MKV, AVI, ...; an unknown or missing extension gets MP4). .gif, .png, .webm, .mp3 and
// the like are refused: Error::bad_input naming the extension and what to use instead.
Status check_video_output(const std::string& path);
// The same for lossless FFV1 outputs (mattes): only Matroska (.mkv) is accepted, since FFV1 in
// MP4/MOV is not something compositing applications read. Error::bad_input otherwise.
Status check_lossless_output(const std::string& path);

// H.264 (libx264, limited range; BT.601 below 720 lines and BT.709 from 720, tagged so: the
// matrices players assume for untagged video) in the container named by the file extension
// (or lossless FFV1 with WriterOptions::codec, any size, no rounding)
// (.mp4 / .mov / .mkv; an unknown extension gets MP4; see check_video_output).
// Even sizes are yuv420p (High profile). 4:2:0 can only crop in steps of two, so odd sizes are
// stored as yuv444p (High 4:4:4) padded to even with the encoder's crop window set: a 17x9
// input reads back as exactly 17x9, so masks written for odd-sized videos match them.
class VideoWriter {
 public:
  static Result<VideoWriter> open(const std::string& path, int width, int height,
                                  const WriterOptions& options);

  VideoWriter(VideoWriter&&) noexcept;
  VideoWriter& operator=(VideoWriter&&) noexcept;
  VideoWriter(const VideoWriter&) = delete;
  VideoWriter& operator=(const VideoWriter&) = delete;
  // Safe without finish(): resources are released, the file is left incomplete.
  ~VideoWriter();

  // frame.rgb must be CV_8UC3 RGB of the size given to open(); frame.pts (in
  // options.time_base) must increase from frame to frame.
  Status write(const Frame& frame);
  // Flushes the encoder, copies the remaining audio, writes the container index.
  Status finish();

  int64_t frames_written() const;
  int encoded_width() const;   // width rounded up to even
  int encoded_height() const;

 private:
  struct Impl;
  explicit VideoWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Route FFmpeg's log lines to spdlog at debug level (idempotent; every open() calls it).
void install_ffmpeg_log_hook();

}  // namespace standin::media
