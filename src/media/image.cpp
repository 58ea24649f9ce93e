#include <cstdio>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

extern "C" {
#include <libavutil/pixdesc.h>
}

#include "av_common.hpp"
#include "standin/media/image.hpp"
#include "standin/media/video.hpp"

namespace standin::media {

using namespace detail;

namespace {

// EXIF orientation 1..8 (as the JPEG decoder exports it in the frame metadata) → upright.
cv::Mat apply_exif_orientation(const cv::Mat& image, int orientation) {
  cv::Mat out;
  switch (orientation) {
    case 2: cv::flip(image, out, 1); return out;
    case 3: cv::rotate(image, out, cv::ROTATE_180); return out;
    case 4: cv::flip(image, out, 0); return out;
    case 5: cv::transpose(image, out); return out;
    case 6: cv::rotate(image, out, cv::ROTATE_90_CLOCKWISE); return out;
    case 7: cv::transpose(image, out); cv::rotate(out, out, cv::ROTATE_180); return out;
    case 8: cv::rotate(image, out, cv::ROTATE_90_COUNTERCLOCKWISE); return out;
    default: return image;
  }
}

bool has_alpha(int format) {
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(static_cast<AVPixelFormat>(format));
  return desc && (desc->flags & AV_PIX_FMT_FLAG_ALPHA);
}

// Transparent pixels over white: a cut-out reference keeps a clean, neutral background.
Result<cv::Mat> to_rgb_over_white(const AVFrame* frame) {
  SwsContext* raw = sws_getContext(frame->width, frame->height,
                                   static_cast<AVPixelFormat>(frame->format), frame->width,
                                   frame->height, AV_PIX_FMT_RGBA, SWS_BICUBIC | SWS_ACCURATE_RND,
                                   nullptr, nullptr, nullptr);
  SwsPtr sws(raw);
  if (!sws) return Error::bad_input("cannot convert its pixel format to RGB");
  cv::Mat rgba(frame->height, frame->width, CV_8UC4);
  uint8_t* planes[4] = {rgba.data, nullptr, nullptr, nullptr};
  int strides[4] = {static_cast<int>(rgba.step), 0, 0, 0};
  sws_scale(sws.get(), frame->data, frame->linesize, 0, frame->height, planes, strides);
  cv::Mat rgb(rgba.rows, rgba.cols, CV_8UC3);
  for (int y = 0; y < rgba.rows; ++y) {
    const cv::Vec4b* src = rgba.ptr<cv::Vec4b>(y);
    cv::Vec3b* dst = rgb.ptr<cv::Vec3b>(y);
    for (int x = 0; x < rgba.cols; ++x) {
      const int a = src[x][3];
      for (int c = 0; c < 3; ++c) dst[x][c] = static_cast<uint8_t>((src[x][c] * a + 255 * (255 - a) + 127) / 255);
    }
  }
  return rgb;
}

// RIFF....WEBPVP8X with the animation flag (bit 1 of the flags byte at offset 20).
bool is_animated_webp(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (!file) return false;
  unsigned char head[21] = {};
  const size_t got = std::fread(head, 1, sizeof head, file);
  std::fclose(file);
  return got == sizeof head && std::memcmp(head, "RIFF", 4) == 0 && std::memcmp(head + 8, "WEBPVP8X", 8) == 0 &&
         (head[20] & 0x02) != 0;
}

}  // namespace

Result<cv::Mat> read_image(const std::string& path) {
  STANDIN_ASSIGN_OR_RETURN(auto input, open_input(path));
  int index = av_find_best_stream(input.get(), AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (index < 0) return Error::bad_input(path + ": not an image (no picture in the file)");
  const AVStream* stream = input->streams[index];
  if (stream->codecpar->width <= 0 || stream->codecpar->height <= 0) {
    // FFmpeg reads no size from animations it cannot decode (animated WebP): say so, rather
    // than suggest a damaged or huge file.
    if (stream->codecpar->codec_id == AV_CODEC_ID_WEBP && is_animated_webp(path))
      return Error::bad_input(path + ": animated WebP is not supported as a reference image; save one frame as PNG or JPEG");
  }
  STANDIN_TRY(check_frame_size(path, stream->codecpar->width, stream->codecpar->height));
  STANDIN_ASSIGN_OR_RETURN(auto decoder, open_decoder(path, stream, 1));
  auto packet = make_packet();
  auto frame = make_frame();
  if (!packet || !frame) return Error::runtime("out of memory");

  bool got = false;
  bool flushed = false;
  int last_error = 0;
  while (!got) {
    int rc = avcodec_receive_frame(decoder.get(), frame.get());
    if (rc == 0) { got = true; break; }
    if (rc == AVERROR_EOF) break;
    if (rc != AVERROR(EAGAIN)) { last_error = rc; if (flushed) break; }
    if (flushed) continue;
    rc = av_read_frame(input.get(), packet.get());
    if (rc < 0) {
      avcodec_send_packet(decoder.get(), nullptr);
      flushed = true;
      continue;
    }
    if (packet->stream_index == index) {
      rc = avcodec_send_packet(decoder.get(), packet.get());
      if (rc < 0 && rc != AVERROR(EAGAIN)) last_error = rc;
    }
    av_packet_unref(packet.get());
  }
  if (!got)
    return Error::bad_input(path + ": image cannot be decoded" +
                            (last_error ? " (" + av_error_text(last_error) + ")" : std::string()));
  STANDIN_TRY(check_frame_size(path, frame->width, frame->height));

  cv::Mat rgb;
  if (has_alpha(frame->format)) {
    auto converted = to_rgb_over_white(frame.get());
    if (!converted.ok()) return converted.error().with_context(path);
    rgb = converted.value();
  } else {
    rgb.create(frame->height, frame->width, CV_8UC3);
    SwsPtr sws;
    Status s = frame_to_rgb(frame.get(), sws, rgb.data, static_cast<int>(rgb.step));
    if (!s.ok()) return s.error().with_context(path);
  }
  if (const AVDictionaryEntry* e = av_dict_get(frame->metadata, "Orientation", nullptr, 0))
    rgb = apply_exif_orientation(rgb, std::atoi(e->value));
  return rgb;
}

Status write_image(const std::string& path, const cv::Mat& rgb) {
  install_ffmpeg_log_hook();
  if (rgb.empty() || rgb.type() != CV_8UC3)
    return Error::runtime(path + ": write_image needs a non-empty 8-bit 3-channel RGB image");
  if (rgb.cols > kMaxFrameSide || rgb.rows > kMaxFrameSide)
    return Error::runtime(path + ": image too large to write");
  const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_PNG);
  if (!codec) return Error::runtime(path + ": this FFmpeg has no PNG encoder");
  CodecContextPtr encoder(avcodec_alloc_context3(codec));
  auto frame = make_frame();
  auto packet = make_packet();
  if (!encoder || !frame || !packet) return Error::runtime("out of memory");
  encoder->width = rgb.cols;
  encoder->height = rgb.rows;
  encoder->pix_fmt = AV_PIX_FMT_RGB24;
  encoder->time_base = AVRational{1, 1};
  int rc = avcodec_open2(encoder.get(), codec, nullptr);
  if (rc < 0) return Error::runtime(path + ": cannot open the PNG encoder (" + av_error_text(rc) + ")");
  frame->format = AV_PIX_FMT_RGB24;
  frame->width = rgb.cols;
  frame->height = rgb.rows;
  rc = av_frame_get_buffer(frame.get(), 0);
  if (rc < 0) return Error::runtime("out of memory");
  for (int y = 0; y < rgb.rows; ++y)
    std::memcpy(frame->data[0] + static_cast<size_t>(y) * frame->linesize[0], rgb.ptr(y),
                static_cast<size_t>(rgb.cols) * 3);
  frame->pts = 0;
  rc = avcodec_send_frame(encoder.get(), frame.get());
  if (rc >= 0) rc = avcodec_send_frame(encoder.get(), nullptr);
  if (rc >= 0) rc = avcodec_receive_packet(encoder.get(), packet.get());
  if (rc < 0) return Error::runtime(path + ": PNG encoding failed (" + av_error_text(rc) + ")");

  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (!file) return Error::runtime(path + ": cannot open for writing (" + std::strerror(errno) + ")");
  const size_t written = std::fwrite(packet->data, 1, static_cast<size_t>(packet->size), file);
  const bool closed = std::fclose(file) == 0;
  if (written != static_cast<size_t>(packet->size) || !closed)
    return Error::runtime(path + ": write failed (disk full?)");
  return Status::success();
}

}  // namespace standin::media
