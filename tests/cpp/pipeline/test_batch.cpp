#include <gtest/gtest.h>

#include "standin/pipeline/batch.hpp"

namespace standin::pipeline {
namespace {

TEST(BatchJobs, ParsesJobsIntoArguments) {
  const std::string text =
      "# comment\n"
      "\n"
      R"({"input": "a.mp4", "reference": "r.png", "output": "o.mp4", "steps": 4, "cfg": 2.5, "object_mask": "m.mp4"})"
      "\n"
      R"({"command": "animate", "reference": "r.png", "poses": "p.json", "output": "o2.mp4", "overwrite": true})"
      "\n";
  auto jobs = parse_jobs(text);
  ASSERT_TRUE(jobs.ok()) << jobs.error().message;
  ASSERT_EQ(jobs->size(), 2u);
  const auto& first = (*jobs)[0];
  EXPECT_EQ(first.index, 0);
  EXPECT_EQ(first.line, 3);
  EXPECT_EQ(first.command, "replace");
  EXPECT_EQ(first.input, "a.mp4");
  EXPECT_EQ(first.output, "o.mp4");
  const std::vector<std::string> expected = {"replace", "--cfg", "2.5", "--input", "a.mp4", "--object-mask", "m.mp4",
                                             "--output", "o.mp4", "--reference", "r.png", "--steps", "4"};
  EXPECT_EQ(first.arguments, expected);
  EXPECT_EQ((*jobs)[1].command, "animate");
  EXPECT_EQ((*jobs)[1].output, "o2.mp4");
  EXPECT_EQ((*jobs)[1].arguments.front(), "animate");
  EXPECT_TRUE((*jobs)[1].overwrite);
}

// Issue 14: keys are the README's long option names (underscores or dashes), and
// "overwrite": false reaches the job (batch passes -y only when the job allows it).
TEST(BatchJobs, LongOptionKeysAndOverwriteFalse) {
  auto jobs = parse_jobs(
      R"({"input": "a.mp4", "reference": "r.png", "output": "o.mp4", "landmark_model": "lite", "max_people": 2, "vision-models": "m", "overwrite": false})"
      "\n");
  ASSERT_TRUE(jobs.ok()) << jobs.error().message;
  const auto& job = jobs->front();
  EXPECT_FALSE(job.overwrite);
  const std::vector<std::string> expected = {"replace", "--input", "a.mp4", "--landmark-model", "lite", "--max-people", "2",
                                             "--output", "o.mp4", "--reference", "r.png", "--vision-models", "m"};
  EXPECT_EQ(job.arguments, expected);
  // A line nested like a bomb is refused by the parser's limits, not allocated.
  auto deep = parse_jobs(std::string(10000, '[') + "\n");
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.error().message.find("jobs.jsonl:1"), std::string::npos) << deep.error().message;
}

// Issue 13: the new options are job keys; a repeatable option takes a list, one argument each.
TEST(BatchJobs, RepeatedPersonAndArtistOptions) {
  auto jobs = parse_jobs(
      R"({"input": "a.mp4", "output": "o.mp4", "person": ["1=hero.png", "4=villain.png"], "mask_mode": "tight", "feather": 3, "matte": "o.mkv", "preset": "final", "anchor-color": "on"})"
      "\n");
  ASSERT_TRUE(jobs.ok()) << jobs.error().message;
  const std::vector<std::string> expected = {"replace", "--anchor-color", "on", "--feather", "3", "--input", "a.mp4",
                                             "--mask-mode", "tight", "--matte", "o.mkv", "--output", "o.mp4",
                                             "--person", "1=hero.png", "--person", "4=villain.png", "--preset", "final"};
  EXPECT_EQ(jobs->front().arguments, expected);
}

TEST(BatchJobs, RejectsMalformedLinesWithTheirLineNumber) {
  struct Case {
    std::string text, message;
  };
  for (const auto& c : std::vector<Case>{
           {"{not json\n", "jobs.jsonl:1: not valid JSON"},
           {"[1, 2]\n", "jobs.jsonl:1: each line must be a JSON object"},
           {"\n{\"input\": \"a\", \"output\": \"o\", \"colour\": 1}\n", "jobs.jsonl:2: unknown key \"colour\""},
           {R"({"input": "a"})", "has no \"output\""},
           {R"({"output": "o"})", "replace job needs \"input\""},
           {R"({"command": "explode", "output": "o"})", "\"command\" must be \"replace\" or \"animate\""},
           {R"({"input": "a", "output": "o", "steps": [1]})", "\"steps\" takes one value"},
           {R"({"input": "a", "output": "o", "steps": {"a": 1}})", "\"steps\" must be a non-empty string or a number"},
           {R"({"input": "a", "output": "o", "person": []})", "\"person\" takes one value or a non-empty list"},
           {R"({"input": "a", "output": "o", "person": ["1=a.png", ""]})", "must list non-empty strings or numbers"},
           {R"({"input": "a", "output": "o", "overwrite": "yes"})", "\"overwrite\" must be true or false"},
           {"# only a comment\n", "no jobs"},
       }) {
    auto jobs = parse_jobs(c.text);
    ASSERT_FALSE(jobs.ok()) << c.text;
    EXPECT_EQ(jobs.error().code, ExitCode::bad_input);
    EXPECT_NE(jobs.error().message.find(c.message), std::string::npos) << jobs.error().message;
  }
}

TEST(BatchJobs, MissingOutputIsNotComplete) {
  EXPECT_FALSE(output_complete("", "/nonexistent/out.mp4"));
}

}  // namespace
}  // namespace standin::pipeline
