#include "av_common.hpp"

#include <sys/stat.h>

#include <filesystem>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

#include <spdlog/spdlog.h>

extern "C" {
#include <libavutil/log.h>
#include <libavutil/pixdesc.h>
}

#include "standin/core/files.hpp"
#include "standin/media/video.hpp"

namespace standin::media {

namespace {

// FFmpeg logs in fragments; assemble per thread and emit whole lines at debug level so the
// user sees one clear error line from us instead of decoder chatter.
void forward_ffmpeg_log(void* avcl, int level, const char* fmt, va_list args) {
  if (level > AV_LOG_VERBOSE || !spdlog::should_log(spdlog::level::debug)) return;
  thread_local std::string pending;
  thread_local int print_prefix = 1;
  char line[1024];
  va_list copy;
  va_copy(copy, args);
  av_log_format_line2(avcl, level, fmt, copy, line, sizeof line, &print_prefix);
  va_end(copy);
  pending += line;
  if (!pending.empty() && pending.back() == '\n') {
    pending.pop_back();
    spdlog::debug("ffmpeg: {}", pending);
    pending.clear();
  }
}

}  // namespace

void install_ffmpeg_log_hook() {
  static std::once_flag once;
  std::call_once(once, [] {
    av_log_set_level(AV_LOG_VERBOSE);
    av_log_set_callback(forward_ffmpeg_log);
  });
}

namespace detail {

FramePtr make_frame() { return FramePtr(av_frame_alloc()); }
PacketPtr make_packet() { return PacketPtr(av_packet_alloc()); }

std::string av_error_text(int errnum) {
  char text[AV_ERROR_MAX_STRING_SIZE] = {};
  if (av_strerror(errnum, text, sizeof text) < 0) return "FFmpeg error " + std::to_string(errnum);
  return text;
}

Status check_input_file(const std::string& path) {
  // Regular files only: FFmpeg would wait forever on a FIFO without a writer, read a device
  // without end, and every reader here opens its file more than once.
  STANDIN_TRY(check_regular_file(path, "media file"));
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && st.st_size == 0) return Error::bad_input(path + ": file is empty");
  return Status::success();
}

Result<InputFormatPtr> open_input(const std::string& path) {
  install_ffmpeg_log_hook();
  STANDIN_TRY(check_input_file(path));
  AVFormatContext* raw = nullptr;
  int rc = avformat_open_input(&raw, path.c_str(), nullptr, nullptr);
  if (rc < 0) {
    if (rc == AVERROR(EACCES)) return Error::bad_input(path + ": permission denied");
    return Error::bad_input(path + ": not a recognised media file (" + av_error_text(rc) + ")");
  }
  InputFormatPtr input(raw);
  // max_pixels makes decoders refuse absurd frame sizes before allocating for them, even
  // while probing (a PNG header can claim 100000x100000).
  std::vector<AVDictionary*> stream_options(input->nb_streams, nullptr);
  for (auto& options : stream_options)
    av_dict_set_int(&options, "max_pixels", kMaxFramePixels, 0);
  rc = avformat_find_stream_info(input.get(), stream_options.data());
  for (auto& options : stream_options) av_dict_free(&options);
  if (rc < 0)
    return Error::bad_input(path + ": cannot read stream information (" + av_error_text(rc) + ")");
  return input;
}

Status check_frame_size(const std::string& path, int width, int height) {
  if (width <= 0 || height <= 0)
    return Error::bad_input(path + ": no valid picture size could be read (damaged file, or "
                            "pictures larger than " + std::to_string(kMaxFrameSide) + " pixels a side)");
  if (width > kMaxFrameSide || height > kMaxFrameSide ||
      static_cast<int64_t>(width) * height > kMaxFramePixels)
    return Error::bad_input(path + ": frame size " + std::to_string(width) + "x" +
                            std::to_string(height) + " is larger than supported (max " +
                            std::to_string(kMaxFrameSide) + " per side)");
  return Status::success();
}

Result<CodecContextPtr> open_decoder(const std::string& path, const AVStream* stream, int threads) {
  const AVCodec* codec = avcodec_find_decoder(stream->codecpar->codec_id);
  if (!codec)
    return Error::bad_input(path + ": no decoder for codec '" +
                            avcodec_get_name(stream->codecpar->codec_id) + "' in this FFmpeg");
  CodecContextPtr ctx(avcodec_alloc_context3(codec));
  if (!ctx) return Error::runtime(path + ": out of memory allocating a decoder");
  int rc = avcodec_parameters_to_context(ctx.get(), stream->codecpar);
  if (rc < 0)
    return Error::bad_input(path + ": bad codec parameters (" + av_error_text(rc) + ")");
  ctx->pkt_timebase = stream->time_base;
  ctx->thread_count = threads;
  ctx->max_pixels = kMaxFramePixels;
  rc = avcodec_open2(ctx.get(), codec, nullptr);
  if (rc < 0)
    return Error::bad_input(path + ": cannot open the " + codec->name + " decoder (" +
                            av_error_text(rc) + ")");
  return ctx;
}

AVPixelFormat normalise_pixel_format(AVPixelFormat format, bool* full_range) {
  switch (format) {
    case AV_PIX_FMT_YUVJ420P: *full_range = true; return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P: *full_range = true; return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P: *full_range = true; return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P: *full_range = true; return AV_PIX_FMT_YUV440P;
    case AV_PIX_FMT_YUVJ411P: *full_range = true; return AV_PIX_FMT_YUV411P;
    default: return format;
  }
}

Status frame_to_rgb(const AVFrame* frame, SwsPtr& sws, uint8_t* dst, int dst_stride) {
  bool full_range = frame->color_range == AVCOL_RANGE_JPEG;
  const auto src_format =
      normalise_pixel_format(static_cast<AVPixelFormat>(frame->format), &full_range);
  // SWS_ACCURATE_RND + full chroma interpolation: the round trip's PSNR depends on it.
  SwsContext* ctx = sws_getCachedContext(sws.release(), frame->width, frame->height, src_format,
                                         frame->width, frame->height, AV_PIX_FMT_RGB24,
                                         SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT,
                                         nullptr, nullptr, nullptr);
  sws.reset(ctx);
  if (!ctx) {
    const char* name = av_get_pix_fmt_name(src_format);
    return Error::bad_input(std::string("cannot convert pixel format ") + (name ? name : "?") +
                            " to RGB");
  }
  int colorspace = SWS_CS_DEFAULT;
  switch (frame->colorspace) {
    case AVCOL_SPC_BT709: colorspace = SWS_CS_ITU709; break;
    case AVCOL_SPC_FCC: colorspace = SWS_CS_FCC; break;
    case AVCOL_SPC_SMPTE240M: colorspace = SWS_CS_SMPTE240M; break;
    case AVCOL_SPC_BT2020_NCL:
    case AVCOL_SPC_BT2020_CL: colorspace = SWS_CS_BT2020; break;
    case AVCOL_SPC_BT470BG:
    case AVCOL_SPC_SMPTE170M: colorspace = SWS_CS_ITU601; break;
    default: colorspace = frame->height >= 720 ? SWS_CS_ITU709 : SWS_CS_ITU601; break;
  }
  const int* coefficients = sws_getCoefficients(colorspace);
  // Returns -1 for RGB sources, where there is nothing to set; not an error.
  sws_setColorspaceDetails(ctx, coefficients, full_range ? 1 : 0, coefficients, 1, 0, 1 << 16,
                           1 << 16);
  uint8_t* dst_planes[4] = {dst, nullptr, nullptr, nullptr};
  int dst_strides[4] = {dst_stride, 0, 0, 0};
  const int rows = sws_scale(ctx, frame->data, frame->linesize, 0, frame->height, dst_planes,
                             dst_strides);
  if (rows != frame->height) return Error::bad_input("pixel conversion to RGB failed");
  return Status::success();
}

}  // namespace detail
}  // namespace standin::media
