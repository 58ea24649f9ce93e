#pragma once
// The audio side of VideoWriter: takes the first audio stream of another file and feeds it
// into the output, either packet for packet (stream copy) or re-encoded to AAC when the
// output container cannot hold the source codec (e.g. PCM from AVI into MP4).
#include <memory>
#include <string>

#include "av_common.hpp"

namespace standin::media::detail {

class AudioTrack {
 public:
  // Returns nullptr (no error) when `source_path` has no audio stream. Must be called before
  // the output header is written: it adds the output stream.
  static Result<std::unique_ptr<AudioTrack>> open(const std::string& source_path,
                                                  AVFormatContext* output, double end_s);
  ~AudioTrack();

  // Writes source audio up to `until_s` seconds (output clock) into the output.
  Status pump_until(double until_s);
  // Writes the rest of the stream and flushes a re-encoder, if any.
  Status finish();

  bool transcoding() const;

 private:
  AudioTrack();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace standin::media::detail
