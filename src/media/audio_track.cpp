#include "audio_track.hpp"

#include <algorithm>
#include <limits>

#include <spdlog/spdlog.h>

extern "C" {
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
}

namespace standin::media::detail {

namespace {

// Timestamps of the copied audio are taken relative to the source's video start, which is
// what VideoReader subtracts from Frame::pts: audio and video stay in sync.
int64_t sync_origin(const AVFormatContext* input, const AVStream* audio) {
  for (unsigned i = 0; i < input->nb_streams; ++i) {
    const AVStream* s = input->streams[i];
    if (s->codecpar->codec_type == AVMEDIA_TYPE_VIDEO &&
        !(s->disposition & AV_DISPOSITION_ATTACHED_PIC) && s->start_time != AV_NOPTS_VALUE)
      return av_rescale_q(s->start_time, s->time_base, audio->time_base);
  }
  if (input->start_time != AV_NOPTS_VALUE)
    return av_rescale_q(input->start_time, AV_TIME_BASE_Q, audio->time_base);
  return 0;
}

int closest_supported_rate(const AVCodec* encoder, int rate) {
  if (!encoder->supported_samplerates) return rate;
  int best = encoder->supported_samplerates[0];
  for (const int* r = encoder->supported_samplerates; *r; ++r)
    if (std::abs(*r - rate) < std::abs(best - rate)) best = *r;
  return best;
}

}  // namespace

struct AudioTrack::Impl {
  std::string path;  // source, for messages
  InputFormatPtr input;
  AVStream* in_stream = nullptr;
  AVFormatContext* output = nullptr;
  AVStream* out_stream = nullptr;
  int64_t origin = 0;  // in in_stream->time_base
  double end_s = -1;
  PacketPtr packet;
  bool eof = false;
  double written_until_s = -std::numeric_limits<double>::infinity();

  // Re-encoding to AAC (only when the container cannot hold the source codec).
  CodecContextPtr decoder;
  CodecContextPtr encoder;
  SwrPtr resampler;
  AudioFifoPtr fifo;
  FramePtr decoded;
  FramePtr to_encode;
  PacketPtr encoded;
  int64_t next_sample = AV_NOPTS_VALUE;  // pts of the next encoded frame, in 1/sample_rate

  Status write(AVPacket* pkt) {
    const int rc = av_interleaved_write_frame(output, pkt);
    if (rc < 0) return Error::runtime(std::string(output->url) + ": cannot write audio (" + av_error_text(rc) + ")");
    return Status::success();
  }
  Status setup_transcoder();
  Status transcode_packet(AVPacket* pkt);  // nullptr = drain
  Status encode_from_fifo(bool flush);
  Status drain_encoder(bool flush);
};

AudioTrack::AudioTrack() : impl_(std::make_unique<Impl>()) {}
AudioTrack::~AudioTrack() = default;
bool AudioTrack::transcoding() const { return impl_->encoder != nullptr; }

Result<std::unique_ptr<AudioTrack>> AudioTrack::open(const std::string& source_path,
                                                     AVFormatContext* output, double end_s) {
  STANDIN_ASSIGN_OR_RETURN(auto input, open_input(source_path));
  const int index = av_find_best_stream(input.get(), AVMEDIA_TYPE_AUDIO, -1, -1, nullptr, 0);
  if (index < 0) {
    spdlog::debug("{}: no audio stream; output will be silent", source_path);
    return std::unique_ptr<AudioTrack>();
  }
  std::unique_ptr<AudioTrack> track(new AudioTrack());
  Impl& d = *track->impl_;
  d.path = source_path;
  d.input = std::move(input);
  d.in_stream = d.input->streams[index];
  d.output = output;
  d.end_s = end_s;
  d.origin = sync_origin(d.input.get(), d.in_stream);
  d.packet = make_packet();
  if (!d.packet) return Error::runtime("out of memory");
  for (unsigned i = 0; i < d.input->nb_streams; ++i)
    if (static_cast<int>(i) != index) d.input->streams[i]->discard = AVDISCARD_ALL;

  d.out_stream = avformat_new_stream(output, nullptr);
  if (!d.out_stream) return Error::runtime("out of memory adding an audio stream");
  const AVCodecID codec = d.in_stream->codecpar->codec_id;
  const bool copyable = avformat_query_codec(output->oformat, codec, FF_COMPLIANCE_NORMAL) == 1;
  if (copyable) {
    const int rc = avcodec_parameters_copy(d.out_stream->codecpar, d.in_stream->codecpar);
    if (rc < 0) return Error::runtime("cannot copy audio parameters (" + av_error_text(rc) + ")");
    d.out_stream->codecpar->codec_tag = 0;  // the source container's tag may mean nothing here
    d.out_stream->time_base = d.in_stream->time_base;
    d.out_stream->disposition = d.in_stream->disposition;
    av_dict_copy(&d.out_stream->metadata, d.in_stream->metadata, 0);
    spdlog::debug("{}: copying audio stream ({})", source_path, avcodec_get_name(codec));
  } else {
    spdlog::info("{}: audio codec {} does not fit the output container; re-encoding to AAC",
                 source_path, avcodec_get_name(codec));
    STANDIN_TRY(d.setup_transcoder());
  }
  return track;
}

Status AudioTrack::Impl::setup_transcoder() {
  STANDIN_ASSIGN_OR_RETURN(decoder, open_decoder(path, in_stream, 0));
  const AVCodec* aac = avcodec_find_encoder(AV_CODEC_ID_AAC);
  if (!aac) return Error::runtime("no AAC encoder in this FFmpeg to re-encode the audio of " + path);
  encoder.reset(avcodec_alloc_context3(aac));
  if (!encoder) return Error::runtime("out of memory");
  AVChannelLayout layout;
  if (decoder->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC || decoder->ch_layout.nb_channels <= 0)
    av_channel_layout_default(&layout, std::max(1, decoder->ch_layout.nb_channels));
  else
    av_channel_layout_copy(&layout, &decoder->ch_layout);
  av_channel_layout_copy(&encoder->ch_layout, &layout);
  encoder->sample_rate = closest_supported_rate(aac, decoder->sample_rate);
  encoder->sample_fmt = AV_SAMPLE_FMT_FLTP;
  encoder->bit_rate = 96000 * std::min(layout.nb_channels, 2) + 64000 * std::max(0, layout.nb_channels - 2);
  encoder->time_base = AVRational{1, encoder->sample_rate};
  if (output->oformat->flags & AVFMT_GLOBALHEADER) encoder->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  int rc = avcodec_open2(encoder.get(), aac, nullptr);
  if (rc < 0) {
    av_channel_layout_uninit(&layout);
    return Error::runtime("cannot open the AAC encoder (" + av_error_text(rc) + ")");
  }
  rc = avcodec_parameters_from_context(out_stream->codecpar, encoder.get());
  if (rc < 0) return Error::runtime("cannot set audio parameters (" + av_error_text(rc) + ")");
  out_stream->time_base = encoder->time_base;

  AVChannelLayout in_layout;
  if (decoder->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC)
    av_channel_layout_default(&in_layout, decoder->ch_layout.nb_channels);
  else
    av_channel_layout_copy(&in_layout, &decoder->ch_layout);
  SwrContext* swr = nullptr;
  rc = swr_alloc_set_opts2(&swr, &layout, AV_SAMPLE_FMT_FLTP, encoder->sample_rate, &in_layout,
                           decoder->sample_fmt, decoder->sample_rate, 0, nullptr);
  av_channel_layout_uninit(&layout);
  av_channel_layout_uninit(&in_layout);
  resampler.reset(swr);
  if (rc < 0 || (rc = swr_init(swr)) < 0)
    return Error::runtime("cannot set up audio resampling (" + av_error_text(rc) + ")");
  fifo.reset(av_audio_fifo_alloc(AV_SAMPLE_FMT_FLTP, encoder->ch_layout.nb_channels, 4096));
  decoded = make_frame();
  to_encode = make_frame();
  encoded = make_packet();
  if (!fifo || !decoded || !to_encode || !encoded) return Error::runtime("out of memory");
  return Status::success();
}

Status AudioTrack::Impl::drain_encoder(bool flush) {
  if (flush) avcodec_send_frame(encoder.get(), nullptr);
  while (true) {
    const int rc = avcodec_receive_packet(encoder.get(), encoded.get());
    if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return Status::success();
    if (rc < 0) return Error::runtime("AAC encoding failed (" + av_error_text(rc) + ")");
    av_packet_rescale_ts(encoded.get(), encoder->time_base, out_stream->time_base);
    encoded->stream_index = out_stream->index;
    STANDIN_TRY(write(encoded.get()));
  }
}

Status AudioTrack::Impl::encode_from_fifo(bool flush) {
  const int frame_size = encoder->frame_size > 0 ? encoder->frame_size : 1024;
  while (av_audio_fifo_size(fifo.get()) >= frame_size ||
         (flush && av_audio_fifo_size(fifo.get()) > 0)) {
    const int samples = std::min(frame_size, av_audio_fifo_size(fifo.get()));
    av_frame_unref(to_encode.get());
    to_encode->nb_samples = samples;
    to_encode->format = encoder->sample_fmt;
    to_encode->sample_rate = encoder->sample_rate;
    av_channel_layout_copy(&to_encode->ch_layout, &encoder->ch_layout);
    int rc = av_frame_get_buffer(to_encode.get(), 0);
    if (rc < 0) return Error::runtime("out of memory encoding audio");
    av_audio_fifo_read(fifo.get(), reinterpret_cast<void**>(to_encode->data), samples);
    to_encode->pts = next_sample;
    next_sample += samples;
    rc = avcodec_send_frame(encoder.get(), to_encode.get());
    if (rc < 0) return Error::runtime("AAC encoding failed (" + av_error_text(rc) + ")");
    STANDIN_TRY(drain_encoder(false));
  }
  return Status::success();
}

Status AudioTrack::Impl::transcode_packet(AVPacket* pkt) {
  int rc = avcodec_send_packet(decoder.get(), pkt);
  if (rc < 0 && rc != AVERROR_EOF) {
    spdlog::debug("{}: audio packet skipped ({})", path, av_error_text(rc));
    return Status::success();
  }
  while (true) {
    rc = avcodec_receive_frame(decoder.get(), decoded.get());
    if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) break;
    if (rc < 0) {
      spdlog::debug("{}: audio frame skipped ({})", path, av_error_text(rc));
      continue;
    }
    if (next_sample == AV_NOPTS_VALUE) {
      const int64_t pts = decoded->best_effort_timestamp != AV_NOPTS_VALUE
                              ? decoded->best_effort_timestamp - origin
                              : 0;
      next_sample = av_rescale_q(pts, in_stream->time_base, encoder->time_base);
    }
    const int capacity = swr_get_out_samples(resampler.get(), decoded->nb_samples);
    if (capacity > 0) {
      rc = av_audio_fifo_realloc(fifo.get(), av_audio_fifo_size(fifo.get()) + capacity);
      if (rc < 0) return Error::runtime("out of memory converting audio");
      // Convert straight into a scratch frame, then queue it for fixed-size AAC frames.
      FramePtr converted = make_frame();
      converted->format = AV_SAMPLE_FMT_FLTP;
      converted->nb_samples = capacity;
      av_channel_layout_copy(&converted->ch_layout, &encoder->ch_layout);
      if (av_frame_get_buffer(converted.get(), 0) < 0) return Error::runtime("out of memory");
      const int produced =
          swr_convert(resampler.get(), converted->data, capacity,
                      const_cast<const uint8_t**>(decoded->extended_data), decoded->nb_samples);
      if (produced < 0) return Error::runtime("audio conversion failed (" + av_error_text(produced) + ")");
      av_audio_fifo_write(fifo.get(), reinterpret_cast<void**>(converted->data), produced);
    }
    av_frame_unref(decoded.get());
    STANDIN_TRY(encode_from_fifo(false));
  }
  if (!pkt) {
    // Resampler tail, then the last short frame, then the encoder's delayed packets.
    if (next_sample == AV_NOPTS_VALUE) next_sample = 0;
    FramePtr tail = make_frame();
    tail->format = AV_SAMPLE_FMT_FLTP;
    tail->nb_samples = 4096;
    av_channel_layout_copy(&tail->ch_layout, &encoder->ch_layout);
    if (av_frame_get_buffer(tail.get(), 0) < 0) return Error::runtime("out of memory");
    const int produced = swr_convert(resampler.get(), tail->data, 4096, nullptr, 0);
    if (produced > 0) av_audio_fifo_write(fifo.get(), reinterpret_cast<void**>(tail->data), produced);
    STANDIN_TRY(encode_from_fifo(true));
    STANDIN_TRY(drain_encoder(true));
  }
  return Status::success();
}

Status AudioTrack::pump_until(double until_s) {
  Impl& d = *impl_;
  while (!d.eof && d.written_until_s < until_s) {
    int rc = av_read_frame(d.input.get(), d.packet.get());
    if (rc < 0) {
      if (rc != AVERROR_EOF)
        spdlog::warn("{}: audio read error, audio ends here ({})", d.path, av_error_text(rc));
      d.eof = true;
      break;
    }
    AVPacket* pkt = d.packet.get();
    if (pkt->stream_index != d.in_stream->index) {
      av_packet_unref(pkt);
      continue;
    }
    const int64_t ts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
    if (ts != AV_NOPTS_VALUE) d.written_until_s = (ts - d.origin) * av_q2d(d.in_stream->time_base);
    if (d.end_s >= 0 && ts != AV_NOPTS_VALUE && d.written_until_s >= d.end_s) {
      av_packet_unref(pkt);
      d.eof = true;
      break;
    }
    if (d.encoder) {
      Status s = d.transcode_packet(pkt);
      av_packet_unref(pkt);
      STANDIN_TRY(s);
      continue;
    }
    if (pkt->pts != AV_NOPTS_VALUE) pkt->pts -= d.origin;
    if (pkt->dts != AV_NOPTS_VALUE) pkt->dts -= d.origin;
    av_packet_rescale_ts(pkt, d.in_stream->time_base, d.out_stream->time_base);
    pkt->stream_index = d.out_stream->index;
    pkt->pos = -1;
    STANDIN_TRY(d.write(pkt));  // takes the packet's data reference
  }
  return Status::success();
}

Status AudioTrack::finish() {
  STANDIN_TRY(pump_until(std::numeric_limits<double>::infinity()));
  if (impl_->encoder) STANDIN_TRY(impl_->transcode_packet(nullptr));
  return Status::success();
}

}  // namespace standin::media::detail
