// Developer probe (not a test): runs the tracker over a video and prints per-frame tracks and
// stage timings.  vision_probe VIDEO|IMAGE [max_frames] [lite|full|heavy] [threads] [device]
#include <cstdio>
#include <cstdlib>
#include <string>

#include <opencv2/imgproc.hpp>

#include "standin/media/image.hpp"
#include "standin/media/video.hpp"
#include "standin/vision/tracker.hpp"

using namespace standin;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: vision_probe VIDEO [max_frames] [lite|full|heavy] [threads] [device]\n");
    return 2;
  }
  const int64_t max_frames = argc > 2 ? std::atoll(argv[2]) : -1;
  vision::TrackerOptions o;
  if (argc > 3) o.landmark_model = argv[3];
  if (argc > 4) o.threads = std::atoi(argv[4]);
  const std::string device = argc > 5 ? argv[5] : "cpu";
  const std::string in = argv[1];
  if (in.size() > 4 && (in.substr(in.size() - 4) == ".png" || in.substr(in.size() - 4) == ".jpg")) {
    auto img = media::read_image(in);
    if (!img.ok()) return std::fprintf(stderr, "%s\n", img.error().message.c_str()), 3;
    auto ref = vision::analyze_reference(*img, std::string(STANDIN_SOURCE_DIR) + "/models/vision", device, o);
    if (!ref.ok()) return std::fprintf(stderr, "%s\n", ref.error().message.c_str()), 4;
    std::printf("found=%d crop=%d,%d %dx%d score=%.3f\n", ref->found, ref->crop.x, ref->crop.y, ref->crop.width, ref->crop.height, ref->person.score);
    for (int j = 0; j < 18; ++j) std::printf("  %2d %7.1f %7.1f %.3f\n", j, ref->person.body[j].x, ref->person.body[j].y, ref->person.body[j].score);
    if (const char* dump = std::getenv("PROBE_DUMP")) {
      cv::Mat out = img->clone();
      if (!ref->mask.empty()) {
        cv::Mat tint;
        cv::cvtColor(ref->mask, tint, cv::COLOR_GRAY2RGB);
        out = out * 0.6 + tint * 0.4;
      }
      vision::draw_skeleton(out, ref->person.body);
      cv::rectangle(out, ref->crop, cv::Scalar(255, 255, 255), 1);
      (void)media::write_image(std::string(dump) + "/reference.png", out);
    }
    return 0;
  }
  auto reader = media::VideoReader::open(argv[1]);
  if (!reader.ok()) return std::fprintf(stderr, "%s\n", reader.error().message.c_str()), 3;
  o.fps = reader->info().fps.valid() ? reader->info().fps.value() : 30;
  auto tracker = vision::PersonTracker::create(std::string(STANDIN_SOURCE_DIR) + "/models/vision", device, o);
  if (!tracker.ok()) return std::fprintf(stderr, "%s\n", tracker.error().message.c_str()), 4;
  media::Frame f;
  int64_t n = 0;
  while (max_frames < 0 || n < max_frames) {
    auto got = reader->read(f);
    if (!got.ok() || !got.value()) break;
    auto fa = tracker->process(f.rgb, n);
    if (!fa.ok()) return std::fprintf(stderr, "%s\n", fa.error().message.c_str()), 5;
    std::printf("%lld target=%d", static_cast<long long>(n), fa->target >= 0 ? fa->people[fa->target].track_id : -1);
    for (const auto& p : fa->people)
      std::printf(" [%d %.2f %.0f,%.0f %.0fx%.0f]", p.track_id, p.score, p.box.x, p.box.y, p.box.width, p.box.height);
    std::printf("\n");
    if (const char* dump = std::getenv("PROBE_DUMP"); dump && n % std::atoi(std::getenv("PROBE_EVERY") ? std::getenv("PROBE_EVERY") : "10") == 0) {
      cv::Mat img = f.rgb.clone();
      if (!fa->target_mask.empty()) {
        cv::Mat tint;
        cv::cvtColor(fa->target_mask, tint, cv::COLOR_GRAY2RGB);
        img = img * 0.7 + tint * 0.3;
      }
      for (size_t i = 0; i < fa->people.size(); ++i) {
        const auto& p = fa->people[i];
        cv::Mat thin = img;
        for (const auto& l : vision::kOpenPoseLimbs) {
          const auto &a = p.body[l[0]], &b = p.body[l[1]];
          if (a.score < 0.3f || b.score < 0.3f) continue;
          const auto c = vision::kOpenPoseColors[&l - &vision::kOpenPoseLimbs[0]];
          cv::line(img, {int(a.x), int(a.y)}, {int(b.x), int(b.y)}, cv::Scalar(c[0], c[1], c[2]), 1);
        }
        cv::rectangle(img, cv::Rect(p.box), static_cast<int>(i) == fa->target ? cv::Scalar(255, 255, 255) : cv::Scalar(255, 0, 0), 1);
        cv::putText(img, std::to_string(p.track_id), {int(p.box.x), int(p.box.y) - 2}, cv::FONT_HERSHEY_SIMPLEX, 0.5, cv::Scalar(255, 255, 0), 1);
      }
      cv::putText(img, std::to_string(n), {5, 20}, cv::FONT_HERSHEY_SIMPLEX, 0.6, cv::Scalar(255, 255, 255), 2);
      (void)media::write_image(std::string(dump) + "/f" + std::to_string(n) + ".png", img);
    }
    ++n;
  }
  const auto& s = tracker->stats();
  std::printf("frames %lld total %.2fs (%.2f fps); detector %lld runs %.2fs (%.1f ms/run); landmarks %lld runs %.2fs (%.1f ms/run); mask %.2fs\n",
              static_cast<long long>(s.frames), s.total_s, s.frames / s.total_s, static_cast<long long>(s.detector_runs), s.detector_s,
              1000 * s.detector_s / std::max<int64_t>(1, s.detector_runs), static_cast<long long>(s.landmark_runs), s.landmark_s,
              1000 * s.landmark_s / std::max<int64_t>(1, s.landmark_runs), s.mask_s);
  return 0;
}
