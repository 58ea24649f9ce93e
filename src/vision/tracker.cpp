// Person tracker: BlazePose detector + landmark network, MediaPipe's ROI rules, several
// IoU-matched tracks, One Euro smoothing, refined target mask. See tracker.hpp.
#include "standin/vision/tracker.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include "models.hpp"

namespace standin::vision {

namespace bp = blazepose;

namespace {

constexpr int kAllLandmarks = 39;
constexpr int kBodyAndAux = 35;  // 33 body + 2 auxiliary (ROI) points

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Track {
  int id = 0;
  bp::Roi roi;              // where to look in the next frame
  bool has_roi = false;     // tracked (landmarks found) in the previous frame, or just detected
  bool fresh = true;        // filters not initialised yet
  int missed = 0;           // consecutive frames without landmarks
  int64_t frames = 0;       // frames with landmarks
  std::vector<Keypoint> landmarks;  // 33, smoothed, image pixels
  cv::Rect2f box;
  float score = 0;
  std::vector<bp::OneEuroFilter> fx, fy, fz;  // 35 each (last two: auxiliary)
  std::vector<float> visibility;          // low-passed
  MaskRefiner refiner;
  // Latest segmentation in crop coordinates and the crop -> image transform.
  cv::Mat segmentation;
  bp::Roi seg_roi;
  bool seen_this_frame = false;
};

// Landmarks of one network pass, projected to image pixels (not smoothed).
struct Pass {
  float flag = 0;
  std::vector<cv::Point2f> points;  // 35
  std::vector<float> depth;         // 35, z in image pixels (the hips' mid-point = 0, nearer < 0)
  std::vector<float> visibility;    // 35, probabilities
  std::vector<float> presence;
  cv::Mat segmentation;             // crop coordinates
};

cv::Rect2f landmarks_box(const std::vector<cv::Point2f>& pts, int n, cv::Size frame) {
  float x0 = 1e9f, y0 = 1e9f, x1 = -1e9f, y1 = -1e9f;
  for (int i = 0; i < n && i < static_cast<int>(pts.size()); ++i) {
    x0 = std::min(x0, pts[i].x);
    y0 = std::min(y0, pts[i].y);
    x1 = std::max(x1, pts[i].x);
    y1 = std::max(y1, pts[i].y);
  }
  if (x1 < x0) return {};
  // Joints lie inside the silhouette: grow a little so the box holds the whole person.
  const float mx = 0.08f * (x1 - x0) + 4, my = 0.08f * (y1 - y0) + 4;
  cv::Rect2f r(x0 - mx, y0 - my, x1 - x0 + 2 * mx, y1 - y0 + 2 * my);
  return r & cv::Rect2f(0, 0, static_cast<float>(frame.width), static_cast<float>(frame.height));
}

}  // namespace

struct PersonTracker::Impl {
  std::unique_ptr<detail::VisionModels> models;
  TrackerOptions options;
  std::vector<bp::Anchor> anchors;
  std::vector<Track> tracks;
  int next_id = 0;
  int locked_id = -1;  // auto mode: the track chosen once and kept
  int64_t frame_counter = 0;
  int64_t without_target = 0;
  TrackerStats stats;

  const detail::VisionConfig& cfg() const { return models->config(); }

  // Square tiles (half overlapping) covering the frame, for small people.
  std::vector<cv::Rect> tiles(cv::Size frame) const {
    std::vector<cv::Rect> out;
    const int short_side = std::min(frame.width, frame.height);
    const int det = std::max(cfg().detector_size.width, cfg().detector_size.height);
    int mode = options.detection_tiles;
    if (mode < 0) mode = short_side > 2 * det ? 1 : 0;
    if (mode == 0) return out;
    const int side = std::max(det, short_side * 2 / 3);
    auto positions = [&](int length) {
      std::vector<int> p;
      if (length <= side) return std::vector<int>{0};
      const int n = static_cast<int>(std::ceil(static_cast<double>(length - side) / (side / 2.0))) + 1;
      for (int i = 0; i < n; ++i) p.push_back(static_cast<int>(std::lround(static_cast<double>(length - side) * i / (n - 1))));
      return p;
    };
    for (int y : positions(frame.height))
      for (int x : positions(frame.width)) out.emplace_back(x, y, std::min(side, frame.width - x), std::min(side, frame.height - y));
    return out;
  }

  // Network calls, timed and counted (VisionModels batches them as TrackerOptions asked).
  Result<std::vector<detail::DetectorOutput>> run_detector(const std::vector<cv::Mat>& inputs) {
    const auto t0 = std::chrono::steady_clock::now();
    STANDIN_ASSIGN_OR_RETURN(auto out, models->detect(inputs));
    stats.detector_s += seconds_since(t0);
    stats.detector_runs += static_cast<int64_t>(inputs.size());
    stats.detector_calls += models->calls_for(inputs.size());
    return out;
  }

  Result<std::vector<detail::LandmarkOutput>> run_landmarks(const std::vector<cv::Mat>& crops, bool want_seg) {
    const auto t0 = std::chrono::steady_clock::now();
    STANDIN_ASSIGN_OR_RETURN(auto out, models->landmarks(crops, want_seg));
    stats.landmark_s += seconds_since(t0);
    stats.landmark_runs += static_cast<int64_t>(crops.size());
    stats.landmark_calls += models->calls_for(crops.size());
    return out;
  }

  // The whole frame, and with `with_tiles` the tiles too, through the detector in one call.
  Result<std::vector<bp::Detection>> detect(const cv::Mat& rgb, bool with_tiles) {
    std::vector<cv::Rect> regions{cv::Rect(0, 0, rgb.cols, rgb.rows)};
    if (with_tiles)
      for (const cv::Rect& t : tiles(rgb.size())) regions.push_back(t);
    std::vector<bp::Letterbox> boxes;
    std::vector<cv::Mat> inputs;
    for (const cv::Rect& region : regions) {
      const cv::Mat view = rgb(region);
      boxes.push_back(bp::make_letterbox(view.size(), cfg().detector_size));
      cv::Mat input;
      cv::warpAffine(view, input, boxes.back().image_to_input(), cfg().detector_size, cv::INTER_LINEAR, cv::BORDER_CONSTANT,
                     cv::Scalar(0, 0, 0));
      inputs.push_back(input);
    }
    STANDIN_ASSIGN_OR_RETURN(auto outs, run_detector(inputs));
    bp::DecodeOptions dec = cfg().decode;
    dec.min_score = std::min(dec.min_score, options.detection_threshold);
    std::vector<bp::Detection> all;
    for (size_t i = 0; i < regions.size(); ++i) {
      const auto& out = outs[i];
      auto dets = bp::decode_detections(out.boxes.data(), out.scores.data(), out.num_boxes, anchors, dec);
      dets = bp::weighted_nms(std::move(dets), cfg().nms_threshold);
      const cv::Point2f off(static_cast<float>(regions[i].x), static_cast<float>(regions[i].y));
      for (auto& d : dets) {
        if (d.score < options.detection_threshold) continue;
        bp::Detection r = bp::remove_letterbox(d, boxes[i]);
        r.box.x += off.x;
        r.box.y += off.y;
        for (auto& k : r.keypoints) k += off;
        all.push_back(r);
      }
    }
    // Across regions: keep the most confident, drop overlaps and boxes mostly inside a kept one
    // (a person cut at a tile border).
    std::stable_sort(all.begin(), all.end(), [](const bp::Detection& a, const bp::Detection& b) { return a.score > b.score; });
    std::vector<bp::Detection> kept;
    for (const auto& d : all) {
      bool dup = false;
      for (const auto& k : kept) {
        const float inter = (d.box & k.box).area();
        if (bp::iou(d.box, k.box) > cfg().nms_threshold || inter > 0.6f * std::min(d.box.area(), k.box.area())) dup = true;
      }
      if (!dup) kept.push_back(d);
    }
    return kept;
  }

  cv::Mat landmark_crop(const cv::Mat& rgb, const bp::Roi& roi) const {
    const cv::Size cs = cfg().landmark_size;
    cv::Mat crop;
    cv::warpAffine(rgb, crop, bp::roi_image_to_crop(roi, cs), cs, cv::INTER_LINEAR,
                   cfg().landmark_border_replicate ? cv::BORDER_REPLICATE : cv::BORDER_CONSTANT);
    return crop;
  }

  // The landmarks of several regions of one frame (one network call).
  Result<std::vector<Pass>> landmarks(const cv::Mat& rgb, const std::vector<bp::Roi>& rois, bool want_seg) {
    std::vector<cv::Mat> crops;
    for (const auto& roi : rois) crops.push_back(landmark_crop(rgb, roi));
    STANDIN_ASSIGN_OR_RETURN(auto outs, run_landmarks(crops, want_seg));
    std::vector<Pass> passes;
    for (size_t i = 0; i < rois.size(); ++i) passes.push_back(to_pass(outs[i], rois[i]));
    return passes;
  }

  Result<Pass> landmarks(const cv::Mat& rgb, const bp::Roi& roi, bool want_seg) {
    STANDIN_ASSIGN_OR_RETURN(auto passes, landmarks(rgb, std::vector<bp::Roi>{roi}, want_seg));
    return std::move(passes[0]);
  }

  // One landmark output -> image pixels, with MediaPipe's heatmap refinement.
  Pass to_pass(const detail::LandmarkOutput& out, const bp::Roi& roi) const {
    const cv::Size cs = cfg().landmark_size;
    Pass p;
    p.flag = out.pose_flag;
    p.points.resize(kBodyAndAux);
    p.depth.resize(kBodyAndAux);
    p.visibility.resize(kBodyAndAux);
    p.presence.resize(kBodyAndAux);
    const int hm_w = out.heatmap_w, hm_h = out.heatmap_h;
    for (int i = 0; i < kBodyAndAux; ++i) {
      const float* v = &out.landmarks[static_cast<size_t>(i) * 5];
      float x = v[0], y = v[1];
      // Heatmap refinement (MediaPipe RefineLandmarksFromHeatmap): confidence-weighted mean of
      // the heatmap cells in a kernel around the landmark when the peak is confident enough.
      if (!out.heatmap.empty() && i < out.heatmap.rows && hm_w > 0) {
        const float nx = x / cs.width, ny = y / cs.height;
        const int cc = static_cast<int>(nx * hm_w), cr = static_cast<int>(ny * hm_h);
        if (cc >= 0 && cc < hm_w && cr >= 0 && cr < hm_h) {
          const int off = (cfg().heatmap_kernel - 1) / 2;
          const float* hm = out.heatmap.ptr<float>(i);
          float sum = 0, wc = 0, wr = 0, peak = 0;
          for (int r = std::max(0, cr - off); r <= std::min(hm_h - 1, cr + off); ++r) {
            for (int c = std::max(0, cc - off); c <= std::min(hm_w - 1, cc + off); ++c) {
              const float conf = sigmoid(hm[r * hm_w + c]);
              sum += conf;
              peak = std::max(peak, conf);
              wc += c * conf;
              wr += r * conf;
            }
          }
          if (peak >= cfg().heatmap_min_confidence && sum > 0) {
            x = wc / sum / hm_w * cs.width;
            y = wr / sum / hm_h * cs.height;
          }
        }
      }
      p.points[i] = bp::crop_to_image(roi, cs, {x, y});
      // z is in the crop's x pixels (MediaPipe): to image pixels with the crop -> image scale.
      p.depth[i] = v[2] * (roi.width / cs.width);
      p.visibility[i] = sigmoid(v[3]);
      p.presence[i] = sigmoid(v[4]);
    }
    p.segmentation = out.segmentation;
    return p;
  }

  // Applies one pass to a track: smoothing, next ROI, box, keypoints.
  void update_track(Track& t, Pass& p, cv::Size frame, const bp::Roi& used_roi, bool temporal) {
    const double dt = options.fps > 0 ? 1.0 / options.fps : 1.0 / 30.0;
    if (t.fx.empty()) {
      for (int i = 0; i < kBodyAndAux; ++i) {
        const auto& o = i < kBlazePoseCount ? cfg().smoothing : cfg().aux_smoothing;
        bp::OneEuroOptions oo = o;
        if (i < kBlazePoseCount) {
          oo.min_cutoff = options.smooth_min_cutoff;
          oo.beta = options.smooth_beta;
          oo.derivate_cutoff = options.smooth_derivate_cutoff;
        }
        t.fx.emplace_back(oo);
        t.fy.emplace_back(oo);
        t.fz.emplace_back(oo);
      }
      t.visibility.assign(kBodyAndAux, 0.0f);
    }
    if (t.fresh || !temporal || !options.smooth) {
      for (auto& f : t.fx) f.reset();
      for (auto& f : t.fy) f.reset();
      for (auto& f : t.fz) f.reset();
      t.visibility.assign(p.visibility.begin(), p.visibility.end());
    }
    const cv::Rect2f raw_box = landmarks_box(p.points, kBlazePoseCount, cv::Size(1 << 20, 1 << 20));
    const float object_scale = std::max(1e-6f, 0.5f * (raw_box.width + raw_box.height));
    std::vector<cv::Point2f> pts(kBodyAndAux);
    std::vector<float> depth(kBodyAndAux);
    for (int i = 0; i < kBodyAndAux; ++i) {
      if (temporal && options.smooth) {
        pts[i] = {t.fx[i].apply(p.points[i].x, dt, 1.0f / object_scale), t.fy[i].apply(p.points[i].y, dt, 1.0f / object_scale)};
        depth[i] = t.fz[i].apply(p.depth[i], dt, 1.0f / object_scale);
        const float a = cfg().visibility_alpha;
        if (!t.fresh) t.visibility[i] = a * p.visibility[i] + (1 - a) * t.visibility[i];
      } else {
        pts[i] = p.points[i];
        depth[i] = p.depth[i];
      }
    }
    t.fresh = false;
    t.landmarks.resize(kBlazePoseCount);
    for (int i = 0; i < kBlazePoseCount; ++i)
      t.landmarks[i] = {pts[i].x, pts[i].y, std::clamp(t.visibility[i], 0.0f, 1.0f), depth[i]};
    t.roi = bp::roi_from_alignment(pts[33], pts[34], cfg().landmark_roi_scale);
    t.has_roi = t.roi.valid();
    t.box = landmarks_box(pts, kBlazePoseCount, frame);
    t.score = p.flag;
    ++t.frames;
    t.segmentation = p.segmentation;
    t.seg_roi = used_roi;
    t.seen_this_frame = true;
  }

  cv::Mat target_probability(const Track& t, cv::Size frame) const {
    if (t.segmentation.empty()) return {};
    const cv::Size ss = t.segmentation.size();
    cv::Mat prob;
    cv::warpAffine(t.segmentation, prob, bp::roi_crop_to_image(t.seg_roi, ss), frame, cv::INTER_LINEAR, cv::BORDER_CONSTANT, cv::Scalar(0));
    return prob;
  }

  PersonPose to_pose(const Track& t) const {
    PersonPose p;
    p.track_id = t.id;
    p.landmarks = t.landmarks;
    p.body = blazepose_to_openpose(t.landmarks);
    p.box = t.box;
    p.score = std::clamp(t.score, 0.0f, 1.0f);
    return p;
  }

  Track new_track() {
    Track t;
    t.id = next_id++;
    t.refiner = MaskRefiner(options.mask);
    return t;
  }
};

PersonTracker::PersonTracker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PersonTracker::PersonTracker(PersonTracker&&) noexcept = default;
PersonTracker& PersonTracker::operator=(PersonTracker&&) noexcept = default;
PersonTracker::~PersonTracker() = default;

const TrackerOptions& PersonTracker::options() const { return impl_->options; }
int64_t PersonTracker::frames_without_target() const { return impl_->without_target; }
const TrackerStats& PersonTracker::stats() const { return impl_->stats; }

void PersonTracker::reset() {
  impl_->tracks.clear();
  impl_->next_id = 0;
  impl_->locked_id = -1;
  impl_->frame_counter = 0;
  impl_->without_target = 0;
  impl_->stats = {};
}

Result<PersonTracker> PersonTracker::create(const std::string& models_dir, const std::string& device, TrackerOptions options) {
  if (options.landmark_model != "lite" && options.landmark_model != "full" && options.landmark_model != "heavy")
    return Error::usage("landmark model must be lite, full or heavy (got " + options.landmark_model + ")");
  if (options.max_people < 1) options.max_people = 1;
  if (options.threads > 0) torch::set_num_threads(options.threads);
  // fp16-derived weights can produce denormals, which are very slow on x86 CPUs.
  at::globalContext().setFlushDenormal(true);
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  STANDIN_ASSIGN_OR_RETURN(impl->models, detail::VisionModels::load(models_dir, options.landmark_model, device,
                                                                    options.batch_networks, options.pad_batches));
  impl->anchors = bp::generate_anchors(impl->models->config().anchors);
  return PersonTracker(std::move(impl));
}

Result<FrameAnalysis> PersonTracker::process(const cv::Mat& rgb, int64_t index) {
  if (rgb.empty() || rgb.type() != CV_8UC3) return Error::bad_input("tracker: expected a CV_8UC3 RGB frame");
  Impl& m = *impl_;
  const auto started = std::chrono::steady_clock::now();
  const TrackerOptions& o = m.options;
  const cv::Size frame = rgb.size();
  for (auto& t : m.tracks) t.seen_this_frame = false;

  int active = 0;
  for (const auto& t : m.tracks) active += t.has_roi ? 1 : 0;
  const bool periodic = o.detect_interval > 0 && m.frame_counter % o.detect_interval == 0 && active < o.max_people;
  // Explicit target not among the active tracks: keep looking for it.
  bool target_missing = false;
  if (o.target_track >= 0) {
    target_missing = true;
    for (const auto& t : m.tracks) target_missing &= !(t.id == o.target_track && t.has_roi);
  } else if (m.locked_id >= 0) {
    target_missing = true;
    for (const auto& t : m.tracks) target_missing &= !(t.id == m.locked_id && t.has_roi);
  }
  const bool tile_frame = o.detect_interval <= 0 ? m.frame_counter == 0 : m.frame_counter % o.detect_interval == 0;
  if (active == 0 || periodic || target_missing) {
    STANDIN_ASSIGN_OR_RETURN(auto dets, m.detect(rgb, tile_frame));
    for (const auto& d : dets) {
      // Already followed by an active track?
      bool covered = false;
      for (const auto& t : m.tracks) {
        if (!t.has_roi) continue;
        if (bp::iou(d.box, t.box) > 0.3f || (t.box.contains(d.keypoints[0]) && bp::iou(d.box, t.box) > 0.15f)) covered = true;
      }
      if (covered) continue;
      const bp::Roi roi = bp::roi_from_alignment(d.keypoints[0], d.keypoints[1], m.cfg().roi_scale);
      if (!roi.valid()) continue;
      // A recently lost track at the same place keeps its identity.
      Track* revived = nullptr;
      float best = 0.2f;
      for (auto& t : m.tracks) {
        if (t.has_roi) continue;
        const float v = bp::iou(d.box, t.box);
        if (v > best) best = v, revived = &t;
      }
      if (!revived) {
        int count = 0;
        for (const auto& t : m.tracks) count += t.has_roi ? 1 : 0;
        if (count >= o.max_people) continue;
        m.tracks.push_back(m.new_track());
        revived = &m.tracks.back();
      }
      revived->roi = roi;
      revived->has_roi = true;
      revived->fresh = true;
    }
  }

  // Landmarks for every track that has a region to look at (one call; each track's result
  // depends only on its own region).
  std::vector<Track*> looking;
  std::vector<bp::Roi> rois;
  for (auto& t : m.tracks) {
    if (!t.has_roi) continue;
    looking.push_back(&t);
    rois.push_back(t.roi);
  }
  std::vector<Pass> passes;
  if (!rois.empty()) {
    STANDIN_ASSIGN_OR_RETURN(passes, m.landmarks(rgb, rois, o.segmentation));
  }
  for (size_t i = 0; i < looking.size(); ++i) {
    Track& t = *looking[i];
    if (passes[i].flag < o.presence_threshold) {
      t.has_roi = false;
      t.fresh = true;
      continue;
    }
    m.update_track(t, passes[i], frame, rois[i], true);
  }
  // Two tracks on one person: keep the older one.
  for (size_t i = 0; i < m.tracks.size(); ++i) {
    for (size_t j = 0; j < m.tracks.size(); ++j) {
      Track& a = m.tracks[i];
      Track& b = m.tracks[j];
      if (i == j || !a.seen_this_frame || !b.seen_this_frame) continue;
      if (a.id < b.id && bp::iou(a.box, b.box) > 0.5f) {
        b.seen_this_frame = false;
        b.has_roi = false;
        b.missed = 1 << 20;  // dropped below
      }
    }
  }
  // Lost tracks age one frame per frame; forget the ones lost for too long.
  for (auto& t : m.tracks) t.missed = t.seen_this_frame ? 0 : t.missed + 1;
  m.tracks.erase(std::remove_if(m.tracks.begin(), m.tracks.end(), [&](const Track& t) { return t.missed > o.max_missed; }),
                 m.tracks.end());

  // Result: all people seen this frame, ordered by track id.
  FrameAnalysis fa;
  fa.frame_index = index;
  std::vector<const Track*> seen;
  for (const auto& t : m.tracks)
    if (t.seen_this_frame) seen.push_back(&t);
  std::sort(seen.begin(), seen.end(), [](const Track* a, const Track* b) { return a->id < b->id; });
  for (const Track* t : seen) fa.people.push_back(m.to_pose(*t));

  // Target.
  int target_id = -1;
  if (o.target_track >= 0) {
    target_id = o.target_track;
  } else {
    // Auto: keep the chosen person while they are seen or briefly lost; after relock_after
    // frames without them, choose again among the people in view.
    bool locked_alive = false;
    for (const auto& t : m.tracks) locked_alive |= t.id == m.locked_id && t.missed <= o.relock_after;
    if (!locked_alive) m.locked_id = -1;
    if (m.locked_id < 0 && !seen.empty()) {
      // Largest and most central: area weighted by closeness to the frame centre.
      const cv::Point2f c(frame.width * 0.5f, frame.height * 0.5f);
      const float half_diag = 0.5f * std::hypot(static_cast<float>(frame.width), static_cast<float>(frame.height));
      float best = -1;
      for (const Track* t : seen) {
        const cv::Point2f bc(t->box.x + t->box.width / 2, t->box.y + t->box.height / 2);
        const float centrality = 1.0f - 0.5f * std::min(1.0f, std::hypot(bc.x - c.x, bc.y - c.y) / half_diag);
        const float s = t->box.area() * centrality;
        if (s > best) best = s, m.locked_id = t->id;
      }
    }
    target_id = m.locked_id;
  }
  for (size_t i = 0; i < fa.people.size(); ++i)
    if (fa.people[i].track_id == target_id) fa.target = static_cast<int>(i);
  if (fa.target >= 0) {
    for (auto& t : m.tracks) {
      if (t.id != target_id) continue;
      if (o.segmentation) {
        const auto t0 = std::chrono::steady_clock::now();
        cv::Mat prob = m.target_probability(t, frame);
        if (!prob.empty()) fa.target_mask = t.refiner.refine(prob, cv::Rect(t.box));
        m.stats.mask_s += seconds_since(t0);
      }
    }
  } else {
    ++m.without_target;
  }
  // Masks of the other people asked for (several characters replaced in one run).
  if (o.segmentation) {
    for (const int id : o.mask_tracks) {
      if (fa.track_masks.count(id)) continue;
      if (id == target_id && fa.target >= 0) {
        if (!fa.target_mask.empty()) fa.track_masks[id] = fa.target_mask;
        continue;
      }
      for (auto& t : m.tracks) {
        if (t.id != id || !t.seen_this_frame) continue;
        const auto t0 = std::chrono::steady_clock::now();
        cv::Mat prob = m.target_probability(t, frame);
        if (!prob.empty()) fa.track_masks[id] = t.refiner.refine(prob, cv::Rect(t.box));
        m.stats.mask_s += seconds_since(t0);
      }
    }
  }
  ++m.frame_counter;
  ++m.stats.frames;
  m.stats.total_s += seconds_since(started);
  return fa;
}

Result<ReferenceAnalysis> PersonTracker::analyze_reference(const cv::Mat& rgb) {
  if (rgb.empty() || rgb.type() != CV_8UC3) return Error::bad_input("reference: expected a CV_8UC3 RGB image");
  Impl& m = *impl_;
  ReferenceAnalysis ref;
  STANDIN_ASSIGN_OR_RETURN(auto dets, m.detect(rgb, false));
  if (dets.empty()) return ref;
  // The most confident detection (ties: the larger one).
  const bp::Detection* best = &dets[0];
  for (const auto& d : dets)
    if (d.score > best->score + 0.05f || (std::abs(d.score - best->score) <= 0.05f && d.box.area() > best->box.area())) best = &d;
  bp::Roi roi = bp::roi_from_alignment(best->keypoints[0], best->keypoints[1], m.cfg().roi_scale);
  if (!roi.valid()) return ref;
  // Not m.new_track(): a reference analysed before a video must not use up a track id, or the
  // video's ids would differ from `standin extract`'s for the same video (--person N).
  Track t;
  t.refiner = MaskRefiner(m.options.mask);
  // Two passes: the detector's ROI, then the ROI from the first pass's landmarks (tighter).
  Pass p;
  for (int pass = 0; pass < 2; ++pass) {
    STANDIN_ASSIGN_OR_RETURN(Pass q, m.landmarks(rgb, roi, true));
    if (q.flag < m.options.presence_threshold) {
      if (pass == 0) return ref;
      break;
    }
    p = std::move(q);
    m.update_track(t, p, rgb.size(), roi, false);
    roi = t.roi;
  }
  ref.found = true;
  ref.person = m.to_pose(t);
  ref.person.track_id = 0;
  MaskRefineOptions mo = m.options.mask;
  mo.ema = 1.0f;
  MaskRefiner refiner(mo);
  cv::Mat prob = m.target_probability(t, rgb.size());
  ref.mask = prob.empty() ? cv::Mat::zeros(rgb.size(), CV_8U) : refiner.refine(prob, cv::Rect(t.box));
  cv::Rect2f area = t.box;
  const cv::Rect mb = mask_bounding_box(ref.mask, 127);
  if (!mb.empty()) area |= cv::Rect2f(mb);
  ref.crop = reference_crop(area, rgb.size());
  return ref;
}

void set_smoothing_strength(TrackerOptions& options, double strength) {
  const TrackerOptions defaults;
  options.smooth = strength > 0;
  if (!options.smooth) return;
  options.smooth_min_cutoff = static_cast<float>(defaults.smooth_min_cutoff / strength);
  options.smooth_beta = static_cast<float>(defaults.smooth_beta / strength);
}

cv::Rect reference_crop(const cv::Rect2f& area, cv::Size image) {
  const float mx = 0.1f * area.width, my = 0.1f * area.height;
  const cv::Rect crop(cvFloor(area.x - mx), cvFloor(area.y - my), cvCeil(area.width + 2 * mx), cvCeil(area.height + 2 * my));
  return crop & cv::Rect(0, 0, image.width, image.height);
}

Result<ReferenceAnalysis> analyze_reference(const cv::Mat& rgb, const std::string& models_dir, const std::string& device,
                                            const TrackerOptions& options) {
  STANDIN_ASSIGN_OR_RETURN(auto tracker, PersonTracker::create(models_dir, device, options));
  return tracker.analyze_reference(rgb);
}

}  // namespace standin::vision
