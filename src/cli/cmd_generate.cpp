#include "commands.hpp"
#include "standin/pipeline/generate.hpp"

namespace standin::cli {

Status run_generate(const CommandLine& line) {
  const GenerateOptions& o = line.generate;
  pipeline::GenerateRequest req;
  req.mode = line.command == Subcommand::animate ? pipeline::Mode::animate : pipeline::Mode::replace;
  req.input = o.input;
  req.reference = o.reference;
  req.output = o.output;
  req.overwrite = line.global.overwrite;
  req.bundle = o.bundle;
  req.device = concrete_device(o.device);
  req.dtype = o.dtype;
  if (!o.size.empty()) {
    STANDIN_ASSIGN_OR_RETURN(auto size, parse_size(o.size));
    req.width = size.first;
    req.height = size.second;
  }
  req.steps = o.steps;
  req.cfg = o.cfg;
  req.seed = static_cast<uint64_t>(o.seed);
  req.window = o.window;
  req.overlap = o.overlap;
  req.sampler = o.sampler;
  req.beta_schedule = o.beta_schedule;
  req.preset = o.preset;
  req.chain_frames = o.chain_frames;
  req.anchor_color = o.anchor_color == "on";
  req.mask = o.mask;
  req.poses = o.poses;
  req.object_mask = o.object_mask;
  STANDIN_ASSIGN_OR_RETURN(const PersonChoice people, parse_people(o.person));
  req.person = people.person;
  for (const auto& [id, image] : people.people) req.people.push_back({id, image});
  req.landmark_model = o.landmark_model;
  req.max_people = o.max_people;
  req.pose_smoothing = o.pose_smoothing;
  if (!o.retarget.empty()) req.retarget = o.retarget == "on";
  req.mask_mode = o.mask_mode;
  req.mask_blocks = o.mask_blocks;
  req.mask_dilate = o.mask_dilate;
  req.feather = o.feather;
  req.matte = o.matte;
  req.vision_models = o.vision_models;
  req.crf = o.crf;
  req.preview = o.preview;
  req.metrics = o.metrics;
  req.cache = o.cache;
  return pipeline::run_generate(req);
}

}  // namespace standin::cli
