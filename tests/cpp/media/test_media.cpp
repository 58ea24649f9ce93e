// Media layer tests: round trips through the real codecs on the sample footage, audio stream
// copy, rotation, odd sizes, variable frame rate and the error messages for bad inputs.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

extern "C" {
#include <libavformat/avformat.h>
#include <libavutil/crc.h>
}

#include "standin/media/image.hpp"
#include "standin/media/video.hpp"

namespace fs = std::filesystem;
using namespace standin;
using namespace standin::media;

namespace {

const std::string kDataDir = std::string(STANDIN_SOURCE_DIR) + "/data";

std::string data(const std::string& name) { return kDataDir + "/" + name; }

std::string out_path(const std::string& name) {
  const fs::path dir = fs::path(STANDIN_BINARY_DIR) / "test_media_out";
  fs::create_directories(dir);
  return (dir / name).string();
}

// The sample media is generated on demand so the suite runs on a fresh clone.
class SampleMediaEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    // Idempotent and fast when everything exists, so always run it: it also fills gaps.
    const std::string command =
        std::string(STANDIN_SOURCE_DIR) + "/scripts/make_sample_media.sh '" + kDataDir + "'";
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
  }
};
const auto* const kEnvironment = ::testing::AddGlobalTestEnvironment(new SampleMediaEnvironment);

struct PacketDigest {
  uint32_t crc = 0;
  int size = 0;
  double pts_s = 0;
  bool operator==(const PacketDigest& o) const {
    return crc == o.crc && size == o.size && std::abs(pts_s - o.pts_s) < 1e-6;
  }
};

struct AudioDigest {
  std::string codec;
  std::vector<PacketDigest> packets;
};

// Demuxes (no decoding) the first audio stream and checksums every packet.
AudioDigest audio_digest(const std::string& path) {
  AudioDigest digest;
  AVFormatContext* ctx = nullptr;
  if (avformat_open_input(&ctx, path.c_str(), nullptr, nullptr) < 0) return digest;
  avformat_find_stream_info(ctx, nullptr);
  const int index = av_find_best_stream(ctx, AVMEDIA_TYPE_AUDIO, -1, -1, nullptr, 0);
  if (index >= 0) {
    const AVStream* stream = ctx->streams[index];
    digest.codec = avcodec_get_name(stream->codecpar->codec_id);
    const AVCRC* table = av_crc_get_table(AV_CRC_32_IEEE_LE);
    AVPacket* pkt = av_packet_alloc();
    while (av_read_frame(ctx, pkt) >= 0) {
      if (pkt->stream_index == index) {
        PacketDigest p;
        p.crc = av_crc(table, 0, pkt->data, static_cast<size_t>(pkt->size));
        p.size = pkt->size;
        p.pts_s = pkt->pts * av_q2d(stream->time_base);
        digest.packets.push_back(p);
      }
      av_packet_unref(pkt);
    }
    av_packet_free(&pkt);
  }
  avformat_close_input(&ctx);
  return digest;
}

VideoReader open_or_die(const std::string& path, ReaderOptions options = {}) {
  auto reader = VideoReader::open(path, options);
  if (!reader.ok()) {
    ADD_FAILURE() << reader.error().message;
    std::abort();
  }
  return std::move(reader).value();
}

// Copies every frame of `input` into `output` with the source's timing (and audio).
Status transcode(const std::string& input, const std::string& output, WriterOptions options) {
  STANDIN_ASSIGN_OR_RETURN(auto reader, VideoReader::open(input));
  options.fps = reader.info().fps;
  options.time_base = reader.info().time_base;
  STANDIN_ASSIGN_OR_RETURN(
      auto writer, VideoWriter::open(output, reader.info().width, reader.info().height, options));
  Frame frame;
  while (true) {
    STANDIN_ASSIGN_OR_RETURN(bool got, reader.read(frame));
    if (!got) break;
    STANDIN_TRY(writer.write(frame));
  }
  return writer.finish();
}

struct Comparison {
  int64_t frames_a = 0, frames_b = 0;
  double mean_psnr = 0, min_psnr = 1e9;
};

// Decodes both files in step and measures PSNR over the region both frames share (the
// top-left crop, so an even-padded copy compares against its odd-sized source).
Comparison compare_videos(const std::string& a, const std::string& b) {
  Comparison result;
  auto reader_a = open_or_die(a);
  auto reader_b = open_or_die(b);
  Frame fa, fb;
  double sum = 0;
  while (true) {
    auto got_a = reader_a.read(fa);
    auto got_b = reader_b.read(fb);
    EXPECT_TRUE(got_a.ok() && got_b.ok());
    if (!got_a.ok() || !got_b.ok()) break;
    result.frames_a += got_a.value();
    result.frames_b += got_b.value();
    if (!got_a.value() || !got_b.value()) {
      // Count whatever remains on the longer side.
      while (got_a.ok() && got_a.value()) result.frames_a += (got_a = reader_a.read(fa)).value();
      while (got_b.ok() && got_b.value()) result.frames_b += (got_b = reader_b.read(fb)).value();
      break;
    }
    const cv::Rect shared(0, 0, std::min(fa.rgb.cols, fb.rgb.cols), std::min(fa.rgb.rows, fb.rgb.rows));
    const double psnr = std::min(cv::PSNR(fa.rgb(shared), fb.rgb(shared)), 100.0);
    sum += psnr;
    result.min_psnr = std::min(result.min_psnr, psnr);
  }
  result.mean_psnr = result.frames_a ? sum / static_cast<double>(std::min(result.frames_a, result.frames_b)) : 0;
  return result;
}

cv::Mat synthetic_frame(int width, int height, int index) {
  cv::Mat rgb(height, width, CV_8UC3);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      rgb.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uint8_t>(x * 255 / width),
                                          static_cast<uint8_t>(y * 255 / height),
                                          static_cast<uint8_t>((index * 8) & 255));
  const int box = 24, left = (index * 7) % (width - box), top = height / 3;
  rgb(cv::Rect(left, top, box, box)).setTo(cv::Scalar(255, 255, 255));
  return rgb;
}

void expect_bad_input(const Error& error, const std::string& path, const std::string& phrase) {
  EXPECT_EQ(error.code, ExitCode::bad_input) << error.message;
  EXPECT_NE(error.message.find(path), std::string::npos) << error.message;
  EXPECT_NE(error.message.find(phrase), std::string::npos) << error.message;
  EXPECT_EQ(error.message.find('\n'), std::string::npos) << error.message;
}

}  // namespace

TEST(VideoReader, ReportsVtestProperties) {
  auto reader = open_or_die(data("vtest.avi"), ReaderOptions{true, 0});
  const VideoInfo& info = reader.info();
  EXPECT_EQ(info.width, 768);
  EXPECT_EQ(info.height, 576);
  EXPECT_EQ(info.fps, (Rational{10, 1}));
  EXPECT_EQ(info.frame_count, 795);
  EXPECT_TRUE(info.frame_count_exact);
  EXPECT_FALSE(info.variable_frame_rate);
  EXPECT_EQ(info.rotation_degrees, 0);
  EXPECT_EQ(info.pixel_format, "yuv420p");
  EXPECT_EQ(info.codec, "msmpeg4v3");
  EXPECT_FALSE(info.has_audio);
  EXPECT_NEAR(info.duration_s, 79.5, 0.2);

  Frame frame;
  ASSERT_TRUE(reader.read(frame).value());
  EXPECT_EQ(frame.rgb.type(), CV_8UC3);
  EXPECT_EQ(frame.rgb.cols, 768);
  EXPECT_EQ(frame.index, 0);
  EXPECT_EQ(frame.pts, 0);
  ASSERT_TRUE(reader.read(frame).value());
  EXPECT_EQ(frame.index, 1);
  EXPECT_NEAR(frame.time_s, 0.1, 1e-9);
  // Grass is green: the channel order really is RGB.
  const cv::Scalar bottom = cv::mean(frame.rgb(cv::Rect(0, 500, 300, 76)));
  EXPECT_GT(bottom[1], bottom[0]);
  EXPECT_GT(bottom[1], bottom[2]);
}

TEST(VideoRoundTrip, VtestKeepsFrameCountFpsAndQuality) {
  const std::string output = out_path("vtest_roundtrip.mp4");
  WriterOptions options;
  options.crf = 18;
  const Status status = transcode(data("vtest.avi"), output, options);
  ASSERT_TRUE(status.ok()) << status.error().message;

  auto reread = open_or_die(output, ReaderOptions{true, 0});
  EXPECT_EQ(reread.info().codec, "h264");
  EXPECT_EQ(reread.info().pixel_format, "yuv420p");
  EXPECT_EQ(reread.info().fps, (Rational{10, 1}))
      << reread.info().fps.num << "/" << reread.info().fps.den;
  EXPECT_EQ(reread.info().frame_count, 795);
  EXPECT_FALSE(reread.info().variable_frame_rate);
  EXPECT_NEAR(reread.info().duration_s, 79.5, 0.01);

  const Comparison c = compare_videos(data("vtest.avi"), output);
  EXPECT_EQ(c.frames_a, 795);
  EXPECT_EQ(c.frames_b, 795);
  EXPECT_GE(c.mean_psnr, 40.0);
  RecordProperty("mean_psnr_db", std::to_string(c.mean_psnr));
  RecordProperty("min_psnr_db", std::to_string(c.min_psnr));
  std::printf("vtest CRF 18 round trip: %lld frames, PSNR mean %.2f dB, min %.2f dB\n",
              static_cast<long long>(c.frames_b), c.mean_psnr, c.min_psnr);
}

TEST(VideoRoundTrip, AudioStreamIsCopiedBitExactly) {
  const std::string source = data("clip_audio.mp4");
  const std::string output = out_path("clip_audio_copy.mp4");
  WriterOptions options;
  options.preset = "veryfast";
  options.audio_from = source;
  const Status status = transcode(source, output, options);
  ASSERT_TRUE(status.ok()) << status.error().message;

  const AudioDigest before = audio_digest(source);
  const AudioDigest after = audio_digest(output);
  ASSERT_EQ(before.codec, "aac");
  EXPECT_EQ(after.codec, "aac");
  ASSERT_GT(before.packets.size(), 100u);
  ASSERT_EQ(before.packets.size(), after.packets.size());
  for (size_t i = 0; i < before.packets.size(); ++i)
    ASSERT_TRUE(before.packets[i] == after.packets[i])
        << "packet " << i << ": crc " << before.packets[i].crc << " vs " << after.packets[i].crc
        << ", pts " << before.packets[i].pts_s << " vs " << after.packets[i].pts_s;
  auto reread = open_or_die(output);
  EXPECT_TRUE(reread.info().has_audio);
  std::printf("audio copy: %zu AAC packets identical (data and timestamps)\n", after.packets.size());
}

TEST(VideoRoundTrip, PcmAudioIsReencodedToAacForMp4) {
  const std::string output = out_path("pcm_to_aac.mp4");
  WriterOptions options;
  options.preset = "veryfast";
  options.audio_from = data("pcm_audio.avi");
  const Status status = transcode(data("pcm_audio.avi"), output, options);
  ASSERT_TRUE(status.ok()) << status.error().message;
  const AudioDigest after = audio_digest(output);
  EXPECT_EQ(after.codec, "aac");
  // 2 s at 22.05 kHz in 1024-sample AAC frames: about 43 packets.
  EXPECT_NEAR(static_cast<double>(after.packets.size()), 2.0 * 22050 / 1024, 3.0);
  ASSERT_FALSE(after.packets.empty());
  EXPECT_NEAR(after.packets.front().pts_s, 0.0, 0.05);
}

TEST(VideoRoundTrip, AudioCanBeCutAtTheVideoEnd) {
  const std::string output = out_path("clip_audio_cut.mp4");
  WriterOptions options;
  options.preset = "ultrafast";
  options.audio_from = data("clip_audio.mp4");
  options.audio_end_s = 1.0;
  const Status status = transcode(data("clip_audio.mp4"), output, options);
  ASSERT_TRUE(status.ok()) << status.error().message;
  const AudioDigest after = audio_digest(output);
  ASSERT_FALSE(after.packets.empty());
  EXPECT_LT(after.packets.back().pts_s, 1.0);
  EXPECT_GT(after.packets.back().pts_s, 0.9);
}

TEST(VideoReader, RotatedPhoneClipComesOutUpright) {
  auto reader = open_or_die(data("rotated.mp4"));
  EXPECT_EQ(reader.info().rotation_degrees, 90);
  EXPECT_EQ(reader.info().coded_width, 768);
  EXPECT_EQ(reader.info().coded_height, 432);
  EXPECT_EQ(reader.info().width, 432);
  EXPECT_EQ(reader.info().height, 768);
  Frame frame;
  ASSERT_TRUE(reader.read(frame).value());
  ASSERT_EQ(frame.rgb.cols, 432);
  ASSERT_EQ(frame.rgb.rows, 768);

  auto upright = read_image(data("rotated_upright.png"));
  ASSERT_TRUE(upright.ok()) << upright.error().message;
  const double psnr = cv::PSNR(frame.rgb, upright.value());
  cv::Mat upside_down;
  cv::rotate(upright.value(), upside_down, cv::ROTATE_180);
  EXPECT_GT(psnr, 30.0);
  EXPECT_LT(cv::PSNR(frame.rgb, upside_down), 20.0);
  std::printf("rotated clip vs upright reference: PSNR %.2f dB\n", psnr);

  // Written back, the output is stored upright (no rotation metadata needed).
  const std::string output = out_path("rotated_upright.mp4");
  WriterOptions options;
  options.preset = "ultrafast";
  const Status status = transcode(data("rotated.mp4"), output, options);
  ASSERT_TRUE(status.ok()) << status.error().message;
  auto reread = open_or_die(output);
  EXPECT_EQ(reread.info().rotation_degrees, 0);
  EXPECT_EQ(reread.info().width, 432);
  EXPECT_EQ(reread.info().height, 768);
}

// Issue 14: H.264 4:2:0 crops only in steps of two, so odd sizes go out as 4:4:4 with the
// crop window set, and read back at exactly their size (masks for odd videos then match).
TEST(VideoRoundTrip, OddSizeIsKeptExactly) {
  auto reader = open_or_die(data("odd_513x771.mp4"));
  EXPECT_EQ(reader.info().width, 513);
  EXPECT_EQ(reader.info().height, 771);
  const std::string output = out_path("odd_roundtrip.mp4");
  WriterOptions options;
  options.preset = "veryfast";
  const Status status = transcode(data("odd_513x771.mp4"), output, options);
  ASSERT_TRUE(status.ok()) << status.error().message;
  auto reread = open_or_die(output);
  EXPECT_EQ(reread.info().width, 513);
  EXPECT_EQ(reread.info().height, 771);
  const Comparison c = compare_videos(data("odd_513x771.mp4"), output);
  EXPECT_EQ(c.frames_a, c.frames_b);
  EXPECT_GE(c.mean_psnr, 38.0);
  Frame frame;
  ASSERT_TRUE(reread.read(frame).value());
  EXPECT_EQ(frame.rgb.cols, 513);
  EXPECT_EQ(frame.rgb.rows, 771);
  std::printf("513x771 round trip: %lld frames, PSNR %.2f dB\n", static_cast<long long>(c.frames_b),
              c.mean_psnr);
  // The smallest odd sizes too (a 17x9 extract mask must match its 17x9 video).
  const std::string tiny = out_path("odd_17x9.mp4");
  options.fps = {10, 1};
  auto writer = VideoWriter::open(tiny, 17, 9, options);
  ASSERT_TRUE(writer.ok()) << writer.error().message;
  for (int i = 0; i < 3; ++i) {
    Frame f;
    f.rgb = cv::Mat(9, 17, CV_8UC3, cv::Scalar(255, 255, 255));
    ASSERT_TRUE(writer->write(f).ok());
  }
  ASSERT_TRUE(writer->finish().ok());
  auto back = open_or_die(tiny);
  EXPECT_EQ(back.info().width, 17);
  EXPECT_EQ(back.info().height, 9);
  ASSERT_TRUE(back.read(frame).value());
  EXPECT_EQ(frame.rgb.size(), cv::Size(17, 9));
}

TEST(VideoRoundTrip, VariableFrameRateTimestampsSurvive) {
  const std::string output = out_path("vfr.mp4");
  const int steps_ms[] = {40, 40, 80, 20, 40, 120, 33, 33, 34, 200, 40, 60};
  std::vector<int64_t> pts_ms;
  int64_t t = 0;
  for (int i = 0; i < 36; ++i) {
    pts_ms.push_back(t);
    t += steps_ms[i % 12];
  }
  WriterOptions options;
  options.preset = "veryfast";
  options.fps = {25, 1};
  options.time_base = {1, 1000};
  {
    auto writer = VideoWriter::open(output, 160, 120, options);
    ASSERT_TRUE(writer.ok()) << writer.error().message;
    for (size_t i = 0; i < pts_ms.size(); ++i) {
      Frame frame;
      frame.rgb = synthetic_frame(160, 120, static_cast<int>(i));
      frame.pts = pts_ms[i];
      ASSERT_TRUE(writer->write(frame).ok());
    }
    ASSERT_TRUE(writer->finish().ok());
  }
  auto reader = open_or_die(output, ReaderOptions{true, 0});
  EXPECT_TRUE(reader.info().variable_frame_rate);
  EXPECT_EQ(reader.info().frame_count, static_cast<int64_t>(pts_ms.size()));
  Frame frame;
  size_t n = 0;
  while (reader.read(frame).value()) {
    ASSERT_LT(n, pts_ms.size());
    EXPECT_NEAR(frame.time_s * 1000.0, static_cast<double>(pts_ms[n]), 0.5) << "frame " << n;
    ++n;
  }
  EXPECT_EQ(n, pts_ms.size());
}

TEST(VideoWriter, RejectsMisuseWithClearErrors) {
  WriterOptions options;
  options.fps = {24, 1};
  options.preset = "ultrafast";
  auto writer = VideoWriter::open(out_path("misuse.mp4"), 64, 48, options);
  ASSERT_TRUE(writer.ok()) << writer.error().message;
  Frame frame;
  frame.rgb = cv::Mat(40, 64, CV_8UC3, cv::Scalar(1, 2, 3));
  Status s = writer->write(frame);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ExitCode::runtime);
  frame.rgb = cv::Mat(48, 64, CV_8UC3, cv::Scalar(1, 2, 3));
  frame.pts = 5;
  EXPECT_TRUE(writer->write(frame).ok());
  s = writer->write(frame);  // same pts again
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("increase"), std::string::npos) << s.error().message;

  auto no_dir = VideoWriter::open("/nonexistent-dir/out.mp4", 64, 48, options);
  ASSERT_FALSE(no_dir.ok());
  EXPECT_EQ(no_dir.error().code, ExitCode::runtime);
  EXPECT_NE(no_dir.error().message.find("/nonexistent-dir/out.mp4"), std::string::npos);

  auto huge = VideoWriter::open(out_path("huge.mp4"), 40000, 16, options);
  ASSERT_FALSE(huge.ok());
  options.fps = {0, 1};
  EXPECT_FALSE(VideoWriter::open(out_path("nofps.mp4"), 64, 48, options).ok());
}

TEST(VideoWriter, SameInputGivesByteIdenticalFile) {
  // CI regression renders compare outputs; the writer must not add times or random ids.
  auto render = [](const std::string& path) {
    WriterOptions options;
    options.fps = {30000, 1001};
    options.preset = "veryfast";
    options.audio_from = data("clip_audio.mp4");
    auto writer = VideoWriter::open(path, 96, 64, options);
    if (!writer.ok()) return std::string();
    for (int i = 0; i < 12; ++i) {
      Frame frame;
      frame.rgb = synthetic_frame(96, 64, i);
      if (!writer->write(frame).ok()) return std::string();
    }
    if (!writer->finish().ok()) return std::string();
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  const std::string first = render(out_path("deterministic_a.mp4"));
  const std::string second = render(out_path("deterministic_b.mp4"));
  ASSERT_FALSE(first.empty());
  EXPECT_TRUE(first == second);
}

// Mattes and intermediate renders (issue 13): FFV1 in Matroska reads back bit-exactly, RGB and
// gray, odd sizes included, with the timestamps it was given.
TEST(VideoWriter, Ffv1IsLosslessForRgbAndGray) {
  for (const bool gray : {false, true}) {
    const std::string path = out_path(gray ? "lossless_gray.mkv" : "lossless_rgb.mkv");
    WriterOptions options;
    options.codec = VideoCodec::ffv1;
    options.gray = gray;
    options.fps = {10, 1};
    options.time_base = {1, 1000};
    auto writer = VideoWriter::open(path, 17, 9, options);
    ASSERT_TRUE(writer.ok()) << writer.error().message;
    std::vector<cv::Mat> written;
    const std::vector<int64_t> pts = {0, 100, 250, 300, 420};  // variable steps
    for (size_t i = 0; i < pts.size(); ++i) {
      cv::Mat rgb(9, 17, CV_8UC3);
      cv::randu(rgb, cv::Scalar::all(0), cv::Scalar::all(256));  // the full 0..255 range, noise
      Frame frame;
      if (gray) {
        cv::extractChannel(rgb, frame.rgb, 1);
      } else {
        frame.rgb = rgb;
      }
      frame.pts = pts[i];
      written.push_back(frame.rgb.clone());
      ASSERT_TRUE(writer->write(frame).ok());
    }
    ASSERT_TRUE(writer->finish().ok());
    ReaderOptions ro;
    ro.scan_packets = true;
    auto reader = VideoReader::open(path, ro);
    ASSERT_TRUE(reader.ok()) << reader.error().message;
    EXPECT_EQ(reader->info().codec, "ffv1");
    EXPECT_EQ(reader->info().frame_count, static_cast<int64_t>(pts.size()));
    for (size_t i = 0; i < pts.size(); ++i) {
      Frame back;
      auto got = reader->read(back);
      ASSERT_TRUE(got.ok() && *got) << i;
      EXPECT_NEAR(back.time_s, pts[i] / 1000.0, 1e-3) << i;
      cv::Mat channel = back.rgb;
      if (gray) {
        for (int c = 0; c < 3; ++c) {  // gray reads back as R = G = B = the value written
          cv::extractChannel(back.rgb, channel, c);
          EXPECT_EQ(cv::norm(channel, written[i], cv::NORM_INF), 0.0) << "frame " << i << " channel " << c;
        }
      } else {
        EXPECT_EQ(cv::norm(channel, written[i], cv::NORM_INF), 0.0) << "frame " << i;
      }
    }
  }
}

TEST(VideoWriter, LosslessOutputsMustBeMatroska) {
  EXPECT_TRUE(check_lossless_output("matte.mkv").ok());
  for (const char* name : {"matte.mp4", "matte.mov", "matte.png", "matte"}) {
    const Status s = check_lossless_output(name);
    ASSERT_FALSE(s.ok()) << name;
    EXPECT_EQ(s.error().code, ExitCode::bad_input);
    EXPECT_NE(s.error().message.find(".mkv"), std::string::npos) << s.error().message;
  }
  WriterOptions options;
  options.gray = true;  // gray frames need FFV1
  EXPECT_FALSE(VideoWriter::open(out_path("gray.mp4"), 16, 16, options).ok());
}

TEST(VideoWriter, DestroyedWithoutFinishDoesNotCrash) {
  WriterOptions options;
  options.fps = {24, 1};
  options.preset = "ultrafast";
  options.audio_from = data("clip_audio.mp4");
  {
    auto writer = VideoWriter::open(out_path("unfinished.mp4"), 64, 48, options);
    ASSERT_TRUE(writer.ok()) << writer.error().message;
    for (int i = 0; i < 10; ++i) {
      Frame frame;
      frame.rgb = synthetic_frame(64, 48, i);
      ASSERT_TRUE(writer->write(frame).ok());
    }
  }
  SUCCEED();
}

TEST(BadInput, MissingFile) {
  const std::string path = data("does_not_exist.mp4");
  auto r = VideoReader::open(path);
  ASSERT_FALSE(r.ok());
  expect_bad_input(r.error(), path, "file not found");
}

TEST(BadInput, EmptyFile) {
  const std::string path = data("empty.mp4");
  auto r = VideoReader::open(path);
  ASSERT_FALSE(r.ok());
  expect_bad_input(r.error(), path, "file is empty");
}

TEST(BadInput, TextFileNamedMp4) {
  const std::string path = data("text.mp4");
  auto r = VideoReader::open(path);
  ASSERT_FALSE(r.ok());
  expect_bad_input(r.error(), path, "not a recognised media file");
}

TEST(BadInput, NoVideoStream) {
  const std::string path = data("no_video.m4a");
  auto r = VideoReader::open(path);
  ASSERT_FALSE(r.ok());
  expect_bad_input(r.error(), path, "no video stream");
}

TEST(BadInput, Directory) {
  auto r = VideoReader::open(kDataDir);
  ASSERT_FALSE(r.ok());
  expect_bad_input(r.error(), kDataDir, "is a folder");
}

// Issue 14: FFmpeg would wait forever on a FIFO without a writer and read a device without
// end; media inputs are regular files only, checked before FFmpeg opens anything.
TEST(BadInput, FifosAndDevicesAreRefusedWithoutBlocking) {
  const std::string fifo = out_path("no_writer.mp4");
  std::remove(fifo.c_str());
  ASSERT_EQ(mkfifo(fifo.c_str(), 0644), 0);
  auto video = VideoReader::open(fifo);
  ASSERT_FALSE(video.ok());
  expect_bad_input(video.error(), fifo, "FIFO");
  auto image = read_image(fifo);
  ASSERT_FALSE(image.ok());
  expect_bad_input(image.error(), fifo, "FIFO");
  std::remove(fifo.c_str());
  auto device = VideoReader::open("/dev/zero");
  ASSERT_FALSE(device.ok());
  expect_bad_input(device.error(), "/dev/zero", "character device");
}

// Outputs are checked by extension before any work: containers that cannot hold H.264 are
// refused with a message naming the output (never a hidden temporary).
TEST(BadInput, OutputContainersThatCannotHoldH264) {
  for (const char* ok : {"a.mp4", "a.mov", "a.mkv", "a.MP4", "noextension", "a.unknownext"})
    EXPECT_TRUE(check_video_output(ok).ok()) << ok;
  for (const char* bad : {"a.gif", "a.png", "a.jpg", "a.webm", "a.mp3", "a.wav"}) {
    const Status s = check_video_output(bad);
    ASSERT_FALSE(s.ok()) << bad;
    expect_bad_input(s.error(), bad, ".mp4, .mov or .mkv");
  }
}

TEST(BadInput, AnimatedWebpIsNamed) {
  const std::string path = out_path("anim.webp");
  const std::string command = "ffmpeg -v error -y -f lavfi -i testsrc=s=32x32:r=5:d=1 -c:v libwebp_anim -loop 0 " + path;
  if (std::system(command.c_str()) != 0) GTEST_SKIP() << "this FFmpeg cannot write animated WebP";
  auto image = read_image(path);
  ASSERT_FALSE(image.ok());
  expect_bad_input(image.error(), path, "animated WebP");
}

TEST(BadInput, UnreadableImages) {
  for (const std::string name : {"text.mp4", "empty.mp4", "does_not_exist.png", "no_video.m4a"}) {
    auto image = read_image(data(name));
    ASSERT_FALSE(image.ok()) << name;
    EXPECT_EQ(image.error().code, ExitCode::bad_input) << image.error().message;
    EXPECT_NE(image.error().message.find(data(name)), std::string::npos) << image.error().message;
    EXPECT_EQ(image.error().message.find('\n'), std::string::npos);
  }
  // A truncated PNG: valid signature and header, no picture data.
  auto person = read_image(data("person.png"));
  ASSERT_TRUE(person.ok());
  const std::string cut = out_path("truncated.png");
  {
    std::ifstream in(data("person.png"), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(cut, std::ios::binary).write(bytes.data(), 100);
  }
  auto truncated = read_image(cut);
  ASSERT_FALSE(truncated.ok());
  EXPECT_EQ(truncated.error().code, ExitCode::bad_input);
  EXPECT_NE(truncated.error().message.find(cut), std::string::npos) << truncated.error().message;
}

TEST(BadInput, AbsurdFrameSizeIsRejectedBeforeAllocating) {
  // A PNG whose header claims 20000x20000 RGB (1.2 GB decoded) with no pixel data.
  auto be32 = [](uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                       static_cast<char>(v >> 8), static_cast<char>(v)};
  };
  std::string ihdr = "IHDR" + be32(20000) + be32(20000) + std::string("\x08\x02\x00\x00\x00", 5);
  const uint32_t crc = av_crc(av_crc_get_table(AV_CRC_32_IEEE_LE), 0xFFFFFFFFu,
                              reinterpret_cast<const uint8_t*>(ihdr.data()), ihdr.size()) ^ 0xFFFFFFFFu;
  std::string png = std::string("\x89PNG\r\n\x1a\n", 8) + be32(13) + ihdr + be32(crc);
  std::string iend = "IEND";
  const uint32_t iend_crc = av_crc(av_crc_get_table(AV_CRC_32_IEEE_LE), 0xFFFFFFFFu,
                                   reinterpret_cast<const uint8_t*>(iend.data()), 4) ^ 0xFFFFFFFFu;
  png += be32(0) + iend + be32(iend_crc);
  const std::string path = out_path("huge.png");
  std::ofstream(path, std::ios::binary) << png;
  auto image = read_image(path);
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.error().code, ExitCode::bad_input);
  EXPECT_NE(image.error().message.find(path), std::string::npos) << image.error().message;
  EXPECT_NE(image.error().message.find("larger than"), std::string::npos) << image.error().message;
  std::printf("absurd PNG: %s\n", image.error().message.c_str());
}

TEST(Image, ReadsPngAndRoundTripsLosslessly) {
  auto person = read_image(data("person.png"));
  ASSERT_TRUE(person.ok()) << person.error().message;
  EXPECT_EQ(person->cols, 180);
  EXPECT_EQ(person->rows, 280);
  EXPECT_EQ(person->type(), CV_8UC3);
  const std::string copy = out_path("person_copy.png");
  ASSERT_TRUE(write_image(copy, person.value()).ok());
  auto reread = read_image(copy);
  ASSERT_TRUE(reread.ok()) << reread.error().message;
  EXPECT_EQ(cv::norm(person.value(), reread.value(), cv::NORM_INF), 0.0);

  // Odd-sized synthetic image, exact colours in RGB order.
  cv::Mat odd(7, 5, CV_8UC3, cv::Scalar(10, 200, 30));
  odd.at<cv::Vec3b>(6, 4) = cv::Vec3b(255, 0, 0);
  const std::string odd_path = out_path("odd.png");
  ASSERT_TRUE(write_image(odd_path, odd).ok());
  auto odd_back = read_image(odd_path);
  ASSERT_TRUE(odd_back.ok());
  EXPECT_EQ(cv::norm(odd, odd_back.value(), cv::NORM_INF), 0.0);

  EXPECT_FALSE(write_image(out_path("gray.png"), cv::Mat(4, 4, CV_8UC1)).ok());
  EXPECT_FALSE(write_image("/nonexistent-dir/x.png", odd).ok());
}

TEST(Image, ReadsJpegThroughFfmpeg) {
  // Encode the PNG to JPEG with the ffmpeg CLI, then read it back through the library.
  const std::string jpeg = out_path("person.jpg");
  const std::string command = "ffmpeg -hide_banner -nostdin -loglevel error -y -i '" +
                              data("person.png") + "' -q:v 2 '" + jpeg + "'";
  ASSERT_EQ(std::system(command.c_str()), 0);
  auto from_jpeg = read_image(jpeg);
  ASSERT_TRUE(from_jpeg.ok()) << from_jpeg.error().message;
  auto from_png = read_image(data("person.png"));
  ASSERT_TRUE(from_png.ok());
  EXPECT_GT(cv::PSNR(from_jpeg.value(), from_png.value()), 30.0);
}

TEST(Image, AppliesExifOrientation) {
  const std::string jpeg = out_path("person_exif_plain.jpg");
  const std::string command = "ffmpeg -hide_banner -nostdin -loglevel error -y -i '" +
                              data("person.png") + "' -q:v 2 '" + jpeg + "'";
  ASSERT_EQ(std::system(command.c_str()), 0);
  std::ifstream in(jpeg, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 2u);
  // APP1 Exif segment, little-endian TIFF with one IFD entry: Orientation (0x0112) = 6,
  // "rotate 90 degrees clockwise to display", as a phone camera writes for portrait shots.
  const std::string app1("\xFF\xE1\x00\x22"
                         "Exif\x00\x00"
                         "II\x2A\x00\x08\x00\x00\x00"
                         "\x01\x00"
                         "\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00\x00\x00"
                         "\x00\x00\x00\x00",
                         36);
  const std::string rotated_path = out_path("person_exif6.jpg");
  std::ofstream(rotated_path, std::ios::binary) << bytes.substr(0, 2) + app1 + bytes.substr(2);
  auto plain = read_image(jpeg);
  auto turned = read_image(rotated_path);
  ASSERT_TRUE(plain.ok() && turned.ok());
  ASSERT_EQ(turned->cols, 280);
  ASSERT_EQ(turned->rows, 180);
  cv::Mat expected;
  cv::rotate(plain.value(), expected, cv::ROTATE_90_CLOCKWISE);
  EXPECT_EQ(cv::norm(expected, turned.value(), cv::NORM_INF), 0.0);
}

// Readers that ignore colour tags (OpenCV's, many players) convert SD with BT.601 and HD with
// BT.709: the writer encodes with that matrix and tags it, so tagged and untagged readers agree.
TEST(VideoWriter, ColourMatrixFollowsTheSizeAndIsTagged) {
  struct Case {
    int width, height;
    AVColorSpace space;
  };
  for (const Case& c : {Case{64, 48, AVCOL_SPC_SMPTE170M}, Case{1280, 720, AVCOL_SPC_BT709}}) {
    const std::string path = out_path("colour_" + std::to_string(c.height) + ".mp4");
    WriterOptions options;
    options.preset = "ultrafast";
    options.crf = 0;
    {
      auto writer = VideoWriter::open(path, c.width, c.height, options);
      ASSERT_TRUE(writer.ok()) << writer.error().message;
      Frame frame;
      frame.rgb = cv::Mat(c.height, c.width, CV_8UC3, cv::Scalar(40, 160, 90));  // R, G, B
      ASSERT_TRUE(writer->write(frame).ok());
      ASSERT_TRUE(writer->finish().ok());
    }
    AVFormatContext* fmt = nullptr;
    ASSERT_EQ(avformat_open_input(&fmt, path.c_str(), nullptr, nullptr), 0);
    ASSERT_GE(avformat_find_stream_info(fmt, nullptr), 0);
    const AVCodecParameters* par = fmt->streams[0]->codecpar;
    EXPECT_EQ(par->color_space, c.space) << c.height;
    EXPECT_EQ(par->color_range, AVCOL_RANGE_MPEG);
    avformat_close_input(&fmt);
    // and our (tag-reading) reader gets the colour back
    auto reader = open_or_die(path);
    Frame back;
    ASSERT_TRUE(reader.read(back).value());
    const cv::Vec3b px = back.rgb.at<cv::Vec3b>(c.height / 2, c.width / 2);
    EXPECT_NEAR(px[0], 40, 2);
    EXPECT_NEAR(px[1], 160, 2);
    EXPECT_NEAR(px[2], 90, 2);
  }
}
