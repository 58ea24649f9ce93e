#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <spdlog/spdlog.h>

extern "C" {
#include <libavutil/display.h>
#include <libavutil/pixdesc.h>
}

#include "av_common.hpp"
#include "standin/media/video.hpp"

namespace standin::media {

using namespace detail;

namespace {

// Clockwise degrees to turn decoded frames so they display upright (0/90/180/270).
int rotation_from_stream(const AVStream* stream) {
  double counter_clockwise = 0.0;
  bool found = false;
  if (const uint8_t* matrix = av_stream_get_side_data(stream, AV_PKT_DATA_DISPLAYMATRIX, nullptr)) {
    counter_clockwise = av_display_rotation_get(reinterpret_cast<const int32_t*>(matrix));
    found = !std::isnan(counter_clockwise);
  }
  if (!found) {
    // Older demuxers exported a "rotate" tag holding the clockwise angle.
    if (const AVDictionaryEntry* tag = av_dict_get(stream->metadata, "rotate", nullptr, 0)) {
      counter_clockwise = -std::strtod(tag->value, nullptr);
      found = true;
    }
  }
  if (!found) return 0;
  int clockwise = static_cast<int>(std::lround(-counter_clockwise));
  clockwise = ((clockwise % 360) + 360) % 360;
  // Snap to a quarter turn; arbitrary angles are not meaningful for video.
  return ((clockwise + 45) / 90 % 4) * 90;
}

Rational to_rational(AVRational r) { return {r.num, r.den}; }

const AVStream* pick_video_stream(const AVFormatContext* input) {
  const AVStream* best = nullptr;
  for (unsigned i = 0; i < input->nb_streams; ++i) {
    const AVStream* s = input->streams[i];
    if (s->codecpar->codec_type != AVMEDIA_TYPE_VIDEO) continue;
    if (s->disposition & AV_DISPOSITION_ATTACHED_PIC) continue;  // cover art, not video
    if (!best || ((s->disposition & AV_DISPOSITION_DEFAULT) &&
                  !(best->disposition & AV_DISPOSITION_DEFAULT)))
      best = s;
  }
  return best;
}

}  // namespace

struct VideoReader::Impl {
  std::string path;
  VideoInfo info;
  InputFormatPtr input;
  CodecContextPtr decoder;
  const AVStream* stream = nullptr;
  PacketPtr packet;
  FramePtr frame;
  SwsPtr sws;
  cv::Mat coded_rgb;  // conversion target before rotation
  int64_t start_pts = 0;  // stream start, subtracted so frames count from 0
  int64_t next_index = 0;
  int64_t last_pts = AV_NOPTS_VALUE;  // of the previous frame, relative to start_pts
  int64_t nominal_step = 1;  // one frame at the nominal rate, in time_base units
  bool demux_done = false;
  bool decoder_drained = false;
  int consecutive_decode_errors = 0;

  Status scan_packets();
  // Only the chosen stream is decoded; the demuxer can skip the others cheaply.
  void discard_other_streams() {
    for (unsigned i = 0; i < input->nb_streams; ++i)
      if (static_cast<int>(i) != stream->index) input->streams[i]->discard = AVDISCARD_ALL;
  }
  Result<bool> receive_frame(Frame& out);
  Status convert(Frame& out);
};

Status VideoReader::Impl::scan_packets() {
  std::vector<int64_t> pts_list;
  auto pkt = make_packet();
  if (!pkt) return Error::runtime(path + ": out of memory");
  int64_t count = 0;
  while (true) {
    int rc = av_read_frame(input.get(), pkt.get());
    if (rc == AVERROR_EOF) break;
    if (rc < 0) return Error::bad_input(path + ": read error while counting frames (" + av_error_text(rc) + ")");
    if (pkt->stream_index == stream->index) {
      ++count;
      if (pkt->pts != AV_NOPTS_VALUE) pts_list.push_back(pkt->pts);
    }
    av_packet_unref(pkt.get());
  }
  info.frame_count = count;
  info.frame_count_exact = true;
  // Presentation order differs from decode order with B-frames; sort before differencing.
  std::sort(pts_list.begin(), pts_list.end());
  std::vector<int64_t> steps;
  for (size_t i = 1; i < pts_list.size(); ++i) steps.push_back(pts_list[i] - pts_list[i - 1]);
  // A truncated file loses the last B-frames, leaving a gap among the highest timestamps;
  // judge the rate on the steps before the tail that reordering can affect.
  if (steps.size() > 32) steps.resize(steps.size() - std::min<size_t>(16, steps.size() / 4));
  if (steps.size() >= 2) {
    std::vector<int64_t> sorted = steps;
    std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2, sorted.end());
    const double median = static_cast<double>(sorted[sorted.size() / 2]);
    const double tolerance = std::max(1.0, 0.01 * median);
    info.variable_frame_rate = std::any_of(steps.begin(), steps.end(), [&](int64_t s) {
      return std::abs(static_cast<double>(s) - median) > tolerance;
    });
  }
  // Reopen rather than seek: seeking back to the very first packet is unreliable in some
  // demuxers, and reopening costs only the header parse.
  const int index = stream->index;
  STANDIN_ASSIGN_OR_RETURN(input, open_input(path));
  if (index >= static_cast<int>(input->nb_streams))
    return Error::bad_input(path + ": stream layout changed while reading");
  stream = input->streams[index];
  return Status::success();
}

Result<VideoReader> VideoReader::open(const std::string& path, const ReaderOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  STANDIN_ASSIGN_OR_RETURN(impl->input, open_input(path));
  const AVFormatContext* input = impl->input.get();
  const AVStream* stream = pick_video_stream(input);
  if (!stream) return Error::bad_input(path + ": no video stream");
  impl->stream = stream;
  const AVCodecParameters* par = stream->codecpar;
  STANDIN_TRY(check_frame_size(path, par->width, par->height));

  VideoInfo& info = impl->info;
  info.coded_width = par->width;
  info.coded_height = par->height;
  info.rotation_degrees = rotation_from_stream(stream);
  const bool quarter_turn = info.rotation_degrees == 90 || info.rotation_degrees == 270;
  info.width = quarter_turn ? par->height : par->width;
  info.height = quarter_turn ? par->width : par->height;
  info.time_base = to_rational(stream->time_base);
  AVRational fps = stream->avg_frame_rate;
  if (fps.num <= 0 || fps.den <= 0) fps = stream->r_frame_rate;
  if (fps.num <= 0 || fps.den <= 0)
    fps = av_guess_frame_rate(impl->input.get(), const_cast<AVStream*>(stream), nullptr);
  if (fps.num <= 0 || fps.den <= 0) fps = AVRational{25, 1};  // still images and odd streams
  info.fps = to_rational(fps);
  const AVRational base_rate = stream->r_frame_rate;
  if (base_rate.num > 0 && base_rate.den > 0 && stream->avg_frame_rate.num > 0 &&
      stream->avg_frame_rate.den > 0) {
    const double ratio = av_q2d(stream->avg_frame_rate) / av_q2d(base_rate);
    info.variable_frame_rate = std::abs(ratio - 1.0) > 0.01;
  }
  if (stream->duration != AV_NOPTS_VALUE && stream->duration > 0)
    info.duration_s = stream->duration * av_q2d(stream->time_base);
  else if (input->duration != AV_NOPTS_VALUE && input->duration > 0)
    info.duration_s = static_cast<double>(input->duration) / AV_TIME_BASE;
  if (stream->nb_frames > 0)
    info.frame_count = stream->nb_frames;
  else
    info.frame_count = static_cast<int64_t>(std::llround(info.duration_s * av_q2d(fps)));
  info.frame_count_exact = false;
  if (stream->sample_aspect_ratio.num > 0)
    info.sample_aspect_ratio = to_rational(stream->sample_aspect_ratio);
  else if (par->sample_aspect_ratio.num > 0)
    info.sample_aspect_ratio = to_rational(par->sample_aspect_ratio);
  const char* pix_name = av_get_pix_fmt_name(static_cast<AVPixelFormat>(par->format));
  info.pixel_format = pix_name ? pix_name : "unknown";
  info.codec = avcodec_get_name(par->codec_id);
  info.container = input->iformat ? input->iformat->name : "";
  for (unsigned i = 0; i < input->nb_streams; ++i)
    if (input->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO) info.has_audio = true;

  impl->start_pts = stream->start_time != AV_NOPTS_VALUE ? stream->start_time : 0;
  impl->nominal_step =
      std::max<int64_t>(1, av_rescale_q(1, av_inv_q(fps), stream->time_base));
  impl->packet = make_packet();
  impl->frame = make_frame();
  if (!impl->packet || !impl->frame) return Error::runtime(path + ": out of memory");

  impl->discard_other_streams();
  if (options.scan_packets) {
    STANDIN_TRY(impl->scan_packets());
    impl->discard_other_streams();
  }
  STANDIN_ASSIGN_OR_RETURN(impl->decoder, open_decoder(path, impl->stream, options.threads));
  return VideoReader(std::move(impl));
}

Status VideoReader::Impl::convert(Frame& out) {
  const AVFrame* f = frame.get();
  STANDIN_TRY(check_frame_size(path, f->width, f->height));
  // Frames must match the size reported by info() (callers size writers and buffers from it);
  // a stream that changes resolution mid-way is rejected rather than handed on.
  if (f->width != info.coded_width || f->height != info.coded_height)
    return Error::bad_input(path + ": frame " + std::to_string(next_index) + " is " + std::to_string(f->width) + "x" +
                            std::to_string(f->height) + " but the stream header says " + std::to_string(info.coded_width) +
                            "x" + std::to_string(info.coded_height) + " (resolution changes are not supported)");
  const bool rotate = info.rotation_degrees != 0;
  cv::Mat target(f->height, f->width, CV_8UC3);
  Status converted = frame_to_rgb(f, sws, target.data, static_cast<int>(target.step));
  if (!converted.ok()) return converted.error().with_context(path);
  if (rotate) {
    const int code = info.rotation_degrees == 90    ? cv::ROTATE_90_CLOCKWISE
                     : info.rotation_degrees == 180 ? cv::ROTATE_180
                                                    : cv::ROTATE_90_COUNTERCLOCKWISE;
    cv::Mat upright;
    cv::rotate(target, upright, code);
    out.rgb = upright;
  } else {
    out.rgb = target;
  }

  int64_t pts = f->best_effort_timestamp;
  if (pts == AV_NOPTS_VALUE) pts = f->pts;
  if (pts == AV_NOPTS_VALUE)
    pts = last_pts == AV_NOPTS_VALUE ? 0 : last_pts + nominal_step;
  else
    pts = std::max<int64_t>(0, pts - start_pts);  // frames before the stream start: clamp
  // Strictly increasing and never negative, so the timestamps can go straight to a writer.
  if (last_pts != AV_NOPTS_VALUE && pts <= last_pts) pts = last_pts + 1;
  last_pts = pts;
  out.pts = pts;
  out.time_s = out.pts * av_q2d(stream->time_base);
  out.index = next_index++;
  return Status::success();
}

Result<bool> VideoReader::Impl::receive_frame(Frame& out) {
  constexpr int kMaxConsecutiveDecodeErrors = 64;
  while (true) {
    int rc = avcodec_receive_frame(decoder.get(), frame.get());
    if (rc == 0) {
      consecutive_decode_errors = 0;
      Status converted = convert(out);
      av_frame_unref(frame.get());
      if (!converted.ok()) return converted.error();
      return true;
    }
    if (rc == AVERROR_EOF) {
      decoder_drained = true;
      return false;
    }
    if (rc != AVERROR(EAGAIN)) {
      // Damaged data: skip it like players do, but give up if nothing decodes any more.
      if (++consecutive_decode_errors > kMaxConsecutiveDecodeErrors)
        return Error::bad_input(path + ": video stream cannot be decoded (" + av_error_text(rc) + ")");
      spdlog::debug("{}: decode error skipped: {}", path, av_error_text(rc));
      continue;
    }
    // The decoder wants more input.
    if (demux_done) return false;  // unreachable after the flush packet, kept for safety
    while (true) {
      rc = av_read_frame(input.get(), packet.get());
      if (rc == AVERROR_EOF) {
        demux_done = true;
        avcodec_send_packet(decoder.get(), nullptr);  // enter draining mode
        break;
      }
      if (rc < 0) {
        // A truncated file ends the stream; report it but keep what was decoded.
        spdlog::warn("{}: read error, treating as end of video ({})", path, av_error_text(rc));
        demux_done = true;
        avcodec_send_packet(decoder.get(), nullptr);
        break;
      }
      if (packet->stream_index != stream->index) {
        av_packet_unref(packet.get());
        continue;
      }
      rc = avcodec_send_packet(decoder.get(), packet.get());
      av_packet_unref(packet.get());
      if (rc < 0 && rc != AVERROR(EAGAIN)) {
        if (++consecutive_decode_errors > kMaxConsecutiveDecodeErrors)
          return Error::bad_input(path + ": video stream cannot be decoded (" + av_error_text(rc) + ")");
        spdlog::debug("{}: packet rejected by decoder: {}", path, av_error_text(rc));
        continue;
      }
      break;
    }
  }
}

Result<bool> VideoReader::read(Frame& out) {
  if (!impl_) return Error::runtime("VideoReader used after move");
  if (impl_->decoder_drained) return false;
  return impl_->receive_frame(out);
}

VideoReader::VideoReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VideoReader::VideoReader(VideoReader&&) noexcept = default;
VideoReader& VideoReader::operator=(VideoReader&&) noexcept = default;
VideoReader::~VideoReader() = default;

const VideoInfo& VideoReader::info() const { return impl_->info; }
const std::string& VideoReader::path() const { return impl_->path; }

}  // namespace standin::media
