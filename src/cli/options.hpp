#pragma once
// The command line as plain data. Parsing lives in options.cpp so tests can check it without
// running anything; main.cpp only dispatches.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "standin/core/error.hpp"

namespace standin::cli {

struct GlobalOptions {
  int verbosity = 0;
  bool quiet = false;
  bool log_json = false;
  bool overwrite = false;  // -y
};

// Shared by replace and animate.
struct GenerateOptions {
  std::string input;      // source video (replace) / driving video (animate)
  std::string reference;  // reference image
  std::string output;
  std::string bundle;     // empty = default bundle lookup
  std::string device = "auto";  // concrete_device() picks
  std::string dtype;      // empty = bundle's dtype
  std::string size;       // "WxH"; empty = bundle default
  int steps = 0;          // 0 = bundle default
  double cfg = -1;        // <0 = bundle default
  int64_t seed = 0;
  int window = 0;         // 0 = bundle default
  int overlap = -1;       // <0 = bundle default
  std::string sampler;       // ddim | dpmpp-2m; empty = the preset's, else the bundle's
  std::string beta_schedule;  // empty = the bundle's (model.json scheduler.beta_schedule)
  std::string preset;         // --preset preview|standard|final|FILE.json
  std::string mask;         // --mask VIDEO (bring your own character mask)
  std::string poses;        // --poses FILE.json
  std::string object_mask;  // --object-mask VIDEO
  std::vector<std::string> person;  // --person auto | N, or repeated ID=IMAGE; empty = auto
  std::string landmark_model = "full";  // lite | full | heavy
  int max_people = 4;
  double pose_smoothing = 1.0;  // 0 = off, 1 = MediaPipe's
  std::string retarget;         // on | off; empty = on in animate, off in replace
  std::string mask_mode;  // agnostic | tight | box; empty = the bundle's
  int mask_blocks = -1;   // < 0 = the bundle's
  int mask_dilate = -1;   // < 0 = the bundle's
  int feather = -1;      // < 0 = the bundle's, else 1 % of the frame's short side
  std::string matte;     // --matte FILE.mkv
  int chain_frames = 0;
  std::string anchor_color = "off";  // on | off
  std::string vision_models;  // empty = default lookup
  int crf = 12;  // the whole frame is re-encoded: 12 keeps the background >= 45 dB PSNR (vtest: ~48)
  std::string preview;
  std::string metrics;
  std::string cache;
};

struct ExtractOptions {
  std::string input;
  std::string output_dir;
  std::string person = "auto";
  std::string vision_models;  // empty = default lookup
  std::string device = "auto";  // concrete_device() picks
  std::string landmark_model = "full";  // lite | full | heavy
  int max_people = 4;
  double pose_smoothing = 1.0;  // 0 = off, 1 = MediaPipe's
};

struct CompareOptions {
  std::string a, b, mask;
  bool json = false;
  std::optional<double> min_psnr;
};

struct ModelsOptions {
  std::vector<std::string> bundles;  // empty = list known locations
  bool verify = false;
  std::string device = "auto";  // concrete_device() picks
};

struct BatchOptions {
  std::string jobs;
  std::string shard;  // "I/N"
  std::string status_file;
  std::string log_dir;
};

enum class Subcommand { none, replace, animate, extract, models, compare, batch };

struct CommandLine {
  GlobalOptions global;
  Subcommand command = Subcommand::none;
  GenerateOptions generate;
  ExtractOptions extract;
  CompareOptions compare;
  ModelsOptions models;
  BatchOptions batch;
};

// What parsing produced: a command to run, or text to print and an exit code (help, version,
// usage errors). Never exits the process.
struct ParseOutcome {
  std::optional<CommandLine> command;
  std::string text;  // help/version on stdout, error on stderr
  int exit_code = 0;
};

ParseOutcome parse_command_line(int argc, const char* const* argv);

// "512x768" -> {512, 768}; both positive multiples of 8 up to 8192.
Result<std::pair<int, int>> parse_size(const std::string& text);
// --person: "auto" (or empty) -> -1, else a non-negative track id.
Result<int> parse_person(const std::string& text);
// Every --person value: one "auto" | "N" (-> person), or one or more "ID=IMAGE" (-> people).
struct PersonChoice {
  int person = -1;
  std::vector<std::pair<int, std::string>> people;
};
Result<PersonChoice> parse_people(const std::vector<std::string>& values);
// "2/8" -> {2, 8} with 0 <= I < N.
Result<std::pair<int, int>> parse_shard(const std::string& text);

std::string version_string();

// --device as the stages take it: "auto" becomes "cuda" where this build and machine have a
// CUDA device, else "cpu"; any other name is passed on unchanged (the stages check it). For
// replace/animate "cuda" is every visible CUDA device (diffusion::resolve_devices); extract and
// models --verify use the first.
std::string concrete_device(const std::string& name);

// The long options of replace/animate (without "--"), with whether each takes a value: what
// batch job keys must match (pipeline::job_keys; checked by test_cli).
std::map<std::string, bool> generate_long_options();

}  // namespace standin::cli
