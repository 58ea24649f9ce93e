#pragma once
// Pose retargeting (animate's --retarget): the driving skeleton is redrawn with the reference
// character's body proportions, so a short, stout character driven by a tall dancer gets short,
// stout pose maps instead of being stretched to the dancer's limbs.
//
// The OpenPose-18 skeleton is a tree rooted at the neck (kRetargetTree). For every bone the
// ratio  reference length / driving length  is measured once per clip: the reference length from
// the reference image's pose, the driving length as the median over the frames where both joints
// are shown (foreshortened frames do not set it). One global factor keeps the driver's size:
// the sum of the measured bones' lengths is unchanged. Each frame is then rebuilt from the root
// outwards, child = new parent + (driving child - driving parent) x bone ratio, so directions,
// foreshortening and motion stay the driver's; only the lengths change. The neck (root) keeps
// its position in every frame.
#include <array>
#include <vector>

#include "standin/vision/pose.hpp"

namespace standin::vision {

// Bones as (parent, child) joint pairs, parents before children (root: the neck).
extern const std::array<std::array<int, 2>, 17> kRetargetTree;

struct RetargetPlan {
  std::array<float, 17> ratio{};      // per kRetargetTree bone: output length / driving length
  std::array<bool, 17> measured{};    // the bone was seen in the reference and the driving clip
  float scale = 1.0f;                 // driving size / reference size (the global factor)
  int bones_measured = 0;
  bool usable() const { return bones_measured > 0; }
};

// Bone ratios for a clip. `driving`: one body per frame (frames without a person may be
// all-zero scores). Bones not measured on both sides keep ratio 1 (the driver's length).
RetargetPlan plan_retarget(const Body18& reference, const std::vector<Body18>& driving);

// One frame with the plan's ratios. Hidden joints (score < kPoseScoreThreshold) stay hidden and
// move with their nearest shown ancestor; scores and depth z are kept.
Body18 apply_retarget(const Body18& driving, const RetargetPlan& plan);

}  // namespace standin::vision
