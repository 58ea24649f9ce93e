#pragma once
// Internal helpers shared by the media sources: RAII owners for libav* objects, error text,
// size guards and the colour set-up for swscale.
#include <memory>
#include <string>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/audio_fifo.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>
}

#include "standin/core/error.hpp"

namespace standin::media::detail {

struct InputFormatDeleter {
  void operator()(AVFormatContext* c) const { avformat_close_input(&c); }
};
// Closes the file it opened (if any) and frees the context; no trailer is written, so a
// writer dropped before finish() leaves an incomplete file rather than crashing.
struct OutputFormatDeleter {
  void operator()(AVFormatContext* c) const {
    if (c->oformat && !(c->oformat->flags & AVFMT_NOFILE)) avio_closep(&c->pb);
    avformat_free_context(c);
  }
};
struct CodecContextDeleter {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct FrameDeleter {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct PacketDeleter {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct SwsDeleter {
  void operator()(SwsContext* c) const { sws_freeContext(c); }
};
struct SwrDeleter {
  void operator()(SwrContext* c) const { swr_free(&c); }
};
struct AudioFifoDeleter {
  void operator()(AVAudioFifo* f) const { av_audio_fifo_free(f); }
};

using InputFormatPtr = std::unique_ptr<AVFormatContext, InputFormatDeleter>;
using OutputFormatPtr = std::unique_ptr<AVFormatContext, OutputFormatDeleter>;
using CodecContextPtr = std::unique_ptr<AVCodecContext, CodecContextDeleter>;
using FramePtr = std::unique_ptr<AVFrame, FrameDeleter>;
using PacketPtr = std::unique_ptr<AVPacket, PacketDeleter>;
using SwsPtr = std::unique_ptr<SwsContext, SwsDeleter>;
using SwrPtr = std::unique_ptr<SwrContext, SwrDeleter>;
using AudioFifoPtr = std::unique_ptr<AVAudioFifo, AudioFifoDeleter>;

// Allocation failures of these tiny objects are reported by the callers as runtime errors.
FramePtr make_frame();
PacketPtr make_packet();

// av_strerror as a std::string ("Invalid data found when processing input").
std::string av_error_text(int errnum);

// Checks that `path` names a readable, non-empty regular file; the error says which is wrong.
Status check_input_file(const std::string& path);

// Opens `path` with libavformat and reads stream info. Errors: bad_input naming the file.
Result<InputFormatPtr> open_input(const std::string& path);

// Rejects empty or absurd frame sizes before anything is allocated for them.
Status check_frame_size(const std::string& path, int width, int height);

// Opens a decoder for `stream`. Errors: bad_input naming the file.
Result<CodecContextPtr> open_decoder(const std::string& path, const AVStream* stream, int threads);

// yuvj* formats are deprecated aliases of yuv* with full range; swscale wants the plain one.
AVPixelFormat normalise_pixel_format(AVPixelFormat format, bool* full_range);

// Converts a decoded frame of any pixel format to packed RGB24 at its own size, honouring the
// frame's colour matrix and range (unspecified: BT.601 below 720 lines, else BT.709, as
// players do). `sws` is cached between calls.
Status frame_to_rgb(const AVFrame* frame, SwsPtr& sws, uint8_t* dst, int dst_stride);

}  // namespace standin::media::detail
