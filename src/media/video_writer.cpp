#include <algorithm>
#include <limits>
#include <optional>
#include <string>

#include <opencv2/core.hpp>
#include <spdlog/spdlog.h>

extern "C" {
#include <libavutil/opt.h>
}

#include "audio_track.hpp"
#include "av_common.hpp"
#include "standin/media/video.hpp"

namespace standin::media {

using namespace detail;

namespace {

// Audio is fed this far ahead of the newest video frame so the muxer can interleave.
constexpr double kAudioLeadSeconds = 0.5;

const AVOutputFormat* choose_container(const std::string& path) {
  const AVOutputFormat* format = av_guess_format(nullptr, path.c_str(), nullptr);
  if (!format || format->video_codec == AV_CODEC_ID_NONE) format = av_guess_format("mp4", nullptr, nullptr);
  return format;
}

}  // namespace

Status check_video_output(const std::string& path) {
  install_ffmpeg_log_hook();
  const AVOutputFormat* format = av_guess_format(nullptr, path.c_str(), nullptr);
  if (!format) return Status::success();  // unknown or no extension: written as MP4
  // 1 = the container declares H.264; 0 = it cannot hold it; < 0 = it does not say (image
  // sequences, GIF, raw formats), which in practice means it cannot either.
  const bool holds_h264 = avformat_query_codec(format, AV_CODEC_ID_H264, FF_COMPLIANCE_NORMAL) == 1;
  if (holds_h264 && !(format->flags & AVFMT_NOFILE)) return Status::success();
  const auto dot = path.find_last_of('.');
  const std::string ext = dot == std::string::npos ? path : path.substr(dot);
  return Error::bad_input(path + ": standin writes H.264 video, which a '" + ext + "' file (" + format->name +
                          ") cannot hold; name the output .mp4, .mov or .mkv");
}

Status check_lossless_output(const std::string& path) {
  install_ffmpeg_log_hook();
  const AVOutputFormat* format = av_guess_format(nullptr, path.c_str(), nullptr);
  if (format && std::string(format->name) == "matroska") return Status::success();
  const auto dot = path.find_last_of('.');
  const std::string ext = dot == std::string::npos ? "no extension" : "'" + path.substr(dot) + "'";
  return Error::bad_input(path + ": lossless FFV1 video is written to Matroska only (" + ext +
                          " given); name the file .mkv");
}

struct VideoWriter::Impl {
  std::string path;  // the name used in messages (WriterOptions::name_in_messages or the file)
  WriterOptions options;
  int width = 0, height = 0;                  // caller's frame size
  int encoded_width = 0, encoded_height = 0;  // rounded up to even
  OutputFormatPtr output;
  CodecContextPtr encoder;
  AVStream* stream = nullptr;
  std::unique_ptr<AudioTrack> audio;
  SwsPtr sws;
  FramePtr yuv;
  PacketPtr packet;
  AVRational time_base{1, 25};
  int64_t frame_step = 1;  // one nominal frame in time_base units
  int64_t last_pts = std::numeric_limits<int64_t>::min();
  int64_t frames_written = 0;
  AVPixelFormat pixel_format = AV_PIX_FMT_YUV420P;
  bool finished = false;
  std::optional<Error> failed;  // the first error sticks: later calls report it again

  Error fail(Error e) {
    if (!failed) failed = e;
    return e;
  }
  Status write_encoded_packets();
};

Result<VideoWriter> VideoWriter::open(const std::string& path, int width, int height,
                                      const WriterOptions& options) {
  install_ffmpeg_log_hook();
  const std::string& name = options.name_in_messages.empty() ? path : options.name_in_messages;
  if (width <= 0 || height <= 0 || width > kMaxFrameSide || height > kMaxFrameSide ||
      static_cast<int64_t>(width) * height > kMaxFramePixels)
    return Error::runtime(name + ": cannot encode a " + std::to_string(width) + "x" +
                          std::to_string(height) + " video (sides must be 1.." +
                          std::to_string(kMaxFrameSide) + ")");
  if (!options.fps.valid())
    return Error::runtime(name + ": frame rate must be positive (got " +
                          std::to_string(options.fps.num) + "/" + std::to_string(options.fps.den) + ")");
  if (options.crf < 0 || options.crf > 51)
    return Error::runtime(name + ": CRF must be within 0..51 (got " + std::to_string(options.crf) + ")");

  auto impl = std::make_unique<Impl>();
  Impl& d = *impl;
  d.path = name;
  d.options = options;
  d.width = width;
  d.height = height;
  const bool ffv1 = options.codec == VideoCodec::ffv1;
  if (options.gray && !ffv1) return Error::runtime(name + ": single-channel frames need the FFV1 codec");
  // FFV1 keeps every size as it is (no chroma subsampling).
  d.encoded_width = ffv1 ? width : width + (width & 1);
  d.encoded_height = ffv1 ? height : height + (height & 1);
  // Odd sides: 4:4:4 so the crop window (in units of one pixel there) can restore the size.
  const bool odd = d.encoded_width != width || d.encoded_height != height;
  d.pixel_format = ffv1 ? (options.gray ? AV_PIX_FMT_GRAY8 : AV_PIX_FMT_BGR0)
                        : odd ? AV_PIX_FMT_YUV444P : AV_PIX_FMT_YUV420P;
  const AVRational fps{options.fps.num, options.fps.den};
  d.time_base = options.time_base.valid() ? AVRational{options.time_base.num, options.time_base.den}
                                          : av_inv_q(fps);
  d.frame_step = std::max<int64_t>(1, av_rescale_q(1, av_inv_q(fps), d.time_base));

  const AVOutputFormat* container = choose_container(path);
  AVFormatContext* raw = nullptr;
  int rc = avformat_alloc_output_context2(&raw, container, nullptr, path.c_str());
  if (rc < 0 || !raw) return Error::runtime(name + ": cannot create output (" + av_error_text(rc) + ")");
  d.output.reset(raw);

  const AVCodec* codec = ffv1 ? avcodec_find_encoder(AV_CODEC_ID_FFV1) : avcodec_find_encoder_by_name("libx264");
  if (ffv1 && !codec) return Error::runtime(name + ": this FFmpeg has no FFV1 encoder");
  if (!codec) {
    codec = avcodec_find_encoder(AV_CODEC_ID_H264);
    if (!codec) return Error::runtime(name + ": this FFmpeg has no H.264 encoder");
    spdlog::warn("libx264 not available; using {} (CRF and preset ignored)", codec->name);
  }
  d.encoder.reset(avcodec_alloc_context3(codec));
  if (!d.encoder) return Error::runtime(name + ": out of memory");
  AVCodecContext* enc = d.encoder.get();
  enc->width = d.encoded_width;
  enc->height = d.encoded_height;
  enc->pix_fmt = d.pixel_format;
  enc->time_base = d.time_base;
  enc->framerate = fps;
  enc->sample_aspect_ratio = AVRational{1, 1};
  // Tag what we actually produce (see frame conversion below) so players decode it right, and
  // produce what readers that ignore the tags assume: BT.601 below 720 lines, BT.709 from there.
  const bool sd = height < 720;  // the height players see (odd heights are cropped from the padded one)
  enc->colorspace = ffv1 ? (options.gray ? AVCOL_SPC_UNSPECIFIED : AVCOL_SPC_RGB)
                         : (sd ? AVCOL_SPC_SMPTE170M : AVCOL_SPC_BT709);
  enc->color_primaries = sd ? AVCOL_PRI_SMPTE170M : AVCOL_PRI_BT709;
  enc->color_trc = sd ? AVCOL_TRC_SMPTE170M : AVCOL_TRC_BT709;
  enc->color_range = ffv1 ? AVCOL_RANGE_JPEG : AVCOL_RANGE_MPEG;
  enc->thread_count = options.threads;
  if (d.output->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  if (ffv1) {
    enc->level = 3;  // FFV1 version 3: slices with CRCs, the archival profile
    av_opt_set(enc->priv_data, "slicecrc", "1", 0);
    enc->gop_size = 1;                             // every frame decodable on its own
  } else if (std::string(codec->name) == "libx264") {
    av_opt_set(enc->priv_data, "crf", std::to_string(options.crf).c_str(), 0);
    if (!options.preset.empty() && av_opt_set(enc->priv_data, "preset", options.preset.c_str(), 0) < 0)
      return Error::runtime(name + ": unknown x264 preset '" + options.preset + "'");
    if (odd) {
      const std::string crop = "crop-rect=0,0," + std::to_string(d.encoded_width - width) + "," +
                               std::to_string(d.encoded_height - height);
      av_opt_set(enc->priv_data, "x264-params", crop.c_str(), 0);
    }
  } else if (odd) {
    return Error::runtime(name + ": " + std::to_string(width) + "x" + std::to_string(height) +
                          " has an odd side, which needs libx264 (this FFmpeg has only " + codec->name + ")");
  }
  rc = avcodec_open2(enc, codec, nullptr);
  if (rc < 0)
    return Error::runtime(name + ": cannot open the " + (ffv1 ? "FFV1" : "H.264") + " encoder (" + av_error_text(rc) + ")");

  d.stream = avformat_new_stream(d.output.get(), nullptr);
  if (!d.stream) return Error::runtime(name + ": out of memory");
  rc = avcodec_parameters_from_context(d.stream->codecpar, enc);
  if (rc < 0) return Error::runtime(name + ": cannot set stream parameters (" + av_error_text(rc) + ")");
  d.stream->codecpar->width = width;  // the displayed size (the bitstream crops to it)
  d.stream->codecpar->height = height;
  d.stream->time_base = enc->time_base;  // a hint; the muxer may pick its own at write_header
  d.stream->avg_frame_rate = fps;
  d.stream->sample_aspect_ratio = enc->sample_aspect_ratio;

  if (!options.audio_from.empty()) {
    auto audio = AudioTrack::open(options.audio_from, d.output.get(), options.audio_end_s);
    if (!audio.ok()) return audio.error();
    d.audio = std::move(audio).value();
  }

  if (!(d.output->oformat->flags & AVFMT_NOFILE)) {
    rc = avio_open(&d.output->pb, path.c_str(), AVIO_FLAG_WRITE);
    if (rc < 0) return Error::runtime(name + ": cannot open for writing (" + av_error_text(rc) + ")");
  }
  AVDictionary* mux_options = nullptr;
  const std::string format_name = d.output->oformat->name;
  if (options.faststart && (format_name == "mp4" || format_name == "mov"))
    av_dict_set(&mux_options, "movflags", "+faststart", 0);
  rc = avformat_write_header(d.output.get(), &mux_options);
  av_dict_free(&mux_options);
  if (rc < 0) return Error::runtime(name + ": cannot write the file header (" + av_error_text(rc) + ")");

  d.yuv = make_frame();
  d.packet = make_packet();
  if (!d.yuv || !d.packet) return Error::runtime(name + ": out of memory");
  d.yuv->format = d.pixel_format;
  d.yuv->width = d.encoded_width;
  d.yuv->height = d.encoded_height;
  d.yuv->colorspace = enc->colorspace;
  d.yuv->color_range = enc->color_range;
  rc = av_frame_get_buffer(d.yuv.get(), 0);
  if (rc < 0) return Error::runtime(name + ": out of memory for a frame buffer");
  if (options.gray) return VideoWriter(std::move(impl));  // gray8 is copied as it is, no conversion
  if (ffv1) {
    // RGB to BGR0 (FFV1's 8-bit RGB layout): a reordering, exact.
    SwsContext* sws = sws_getContext(width, height, AV_PIX_FMT_RGB24, width, height, AV_PIX_FMT_BGR0, SWS_POINT,
                                     nullptr, nullptr, nullptr);
    if (!sws) return Error::runtime(name + ": cannot set up RGB conversion");
    d.sws.reset(sws);
    return VideoWriter(std::move(impl));
  }

  SwsContext* sws = sws_getContext(d.encoded_width, d.encoded_height, AV_PIX_FMT_RGB24,
                                   d.encoded_width, d.encoded_height, d.pixel_format,
                                   SWS_BICUBIC | SWS_ACCURATE_RND, nullptr, nullptr, nullptr);
  if (!sws) return Error::runtime(name + ": cannot set up RGB to YUV conversion");
  d.sws.reset(sws);
  // RGB in (full range), limited-range YUV out in the matrix the stream is tagged with above.
  const int* matrix = sws_getCoefficients(enc->colorspace == AVCOL_SPC_SMPTE170M ? SWS_CS_ITU601 : SWS_CS_ITU709);
  sws_setColorspaceDetails(sws, matrix, 1, matrix, 0, 0, 1 << 16, 1 << 16);
  return VideoWriter(std::move(impl));
}

Status VideoWriter::Impl::write_encoded_packets() {
  while (true) {
    int rc = avcodec_receive_packet(encoder.get(), packet.get());
    if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return Status::success();
    if (rc < 0) return fail(Error::runtime(path + ": video encoding failed (" + av_error_text(rc) + ")"));
    // The last sample's duration in MP4 comes from the packet; x264 leaves it unset.
    if (packet->duration <= 0) packet->duration = frame_step;
    av_packet_rescale_ts(packet.get(), encoder->time_base, stream->time_base);
    packet->stream_index = stream->index;
    rc = av_interleaved_write_frame(output.get(), packet.get());
    if (rc < 0) return fail(Error::runtime(path + ": cannot write video (" + av_error_text(rc) + ")"));
  }
}

Status VideoWriter::write(const Frame& frame) {
  if (!impl_) return Error::runtime("VideoWriter used after move");
  Impl& d = *impl_;
  if (d.failed) return *d.failed;
  if (d.finished) return Error::runtime(d.path + ": write() after finish()");
  const cv::Mat& rgb = frame.rgb;
  const int want_type = d.options.gray ? CV_8UC1 : CV_8UC3;
  if (rgb.type() != want_type || rgb.cols != d.width || rgb.rows != d.height)
    return Error::runtime(d.path + ": frame must be " + std::to_string(d.width) + "x" +
                          std::to_string(d.height) + (d.options.gray ? " 8-bit gray" : " 8-bit RGB") + ", got " +
                          std::to_string(rgb.cols) +
                          "x" + std::to_string(rgb.rows) + " with " +
                          std::to_string(rgb.channels()) + " channel(s)");
  int64_t pts = frame.pts;
  if (pts < 0) pts = d.last_pts == std::numeric_limits<int64_t>::min() ? 0 : d.last_pts + d.frame_step;
  if (d.last_pts != std::numeric_limits<int64_t>::min() && pts <= d.last_pts)
    return Error::runtime(d.path + ": frame timestamps must increase (got " + std::to_string(pts) +
                          " after " + std::to_string(d.last_pts) + ")");

  // yuv420p needs even sides: repeat the last column/row rather than add a black edge.
  cv::Mat source = rgb;
  if (d.encoded_width != d.width || d.encoded_height != d.height)
    cv::copyMakeBorder(rgb, source, 0, d.encoded_height - d.height, 0, d.encoded_width - d.width,
                       cv::BORDER_REPLICATE);
  int rc = av_frame_make_writable(d.yuv.get());  // the encoder may still hold the last one
  if (rc < 0) return d.fail(Error::runtime(d.path + ": out of memory"));
  if (d.options.gray) {
    for (int y = 0; y < d.height; ++y)
      std::copy_n(source.ptr<uint8_t>(y), d.width, d.yuv->data[0] + static_cast<ptrdiff_t>(y) * d.yuv->linesize[0]);
  } else {
    const uint8_t* src_planes[4] = {source.data, nullptr, nullptr, nullptr};
    const int src_strides[4] = {static_cast<int>(source.step), 0, 0, 0};
    sws_scale(d.sws.get(), src_planes, src_strides, 0, d.encoded_height, d.yuv->data, d.yuv->linesize);
  }
  d.yuv->pts = pts;
  rc = avcodec_send_frame(d.encoder.get(), d.yuv.get());
  if (rc < 0) return d.fail(Error::runtime(d.path + ": video encoding failed (" + av_error_text(rc) + ")"));
  d.last_pts = pts;
  ++d.frames_written;
  STANDIN_TRY(d.write_encoded_packets());
  if (d.audio) {
    Status s = d.audio->pump_until(pts * av_q2d(d.time_base) + kAudioLeadSeconds);
    if (!s.ok()) return d.fail(s.error().with_context(d.path));
  }
  return Status::success();
}

Status VideoWriter::finish() {
  if (!impl_) return Error::runtime("VideoWriter used after move");
  Impl& d = *impl_;
  if (d.failed) return *d.failed;
  if (d.finished) return Status::success();
  int rc = avcodec_send_frame(d.encoder.get(), nullptr);
  if (rc < 0 && rc != AVERROR_EOF)
    return d.fail(Error::runtime(d.path + ": flushing the encoder failed (" + av_error_text(rc) + ")"));
  STANDIN_TRY(d.write_encoded_packets());
  if (d.audio) {
    Status s = d.audio->finish();
    if (!s.ok()) return d.fail(s.error().with_context(d.path));
  }
  rc = av_write_trailer(d.output.get());
  if (rc < 0) return d.fail(Error::runtime(d.path + ": cannot finish the file (" + av_error_text(rc) + ")"));
  if (!(d.output->oformat->flags & AVFMT_NOFILE)) {
    rc = avio_closep(&d.output->pb);
    if (rc < 0) return d.fail(Error::runtime(d.path + ": cannot close the file (" + av_error_text(rc) + ")"));
  }
  d.finished = true;
  spdlog::debug("{}: wrote {} frames", d.path, d.frames_written);
  return Status::success();
}

VideoWriter::VideoWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VideoWriter::VideoWriter(VideoWriter&&) noexcept = default;
VideoWriter& VideoWriter::operator=(VideoWriter&&) noexcept = default;
VideoWriter::~VideoWriter() = default;

int64_t VideoWriter::frames_written() const { return impl_ ? impl_->frames_written : 0; }
int VideoWriter::encoded_width() const { return impl_ ? impl_->encoded_width : 0; }
int VideoWriter::encoded_height() const { return impl_ ? impl_->encoded_height : 0; }

}  // namespace standin::media
