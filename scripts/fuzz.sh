#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) in build-fuzz with clang + ASan/UBSan and runs each for a
# bounded time. Not part of CI's default test run; docs/FUZZING.md has the details and results.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      (default 600 s; all targets)
#
# Targets: model_json archive poses_json jobs video image.
# Environment:
#   FUZZ_JOBS=2          targets fuzzed at the same time (one core each)
#   FUZZ_BUILD_DIR=...   build tree (default build-fuzz)
#   FUZZ_NICE=10         nice level of builds and fuzzers
#   FUZZ_NO_BUILD=1      skip configure/build (use the binaries already there)
#
# Seeds are read from fuzz/corpus/<target>/ (never written); inputs the fuzzer finds go to
# $FUZZ_BUILD_DIR/fuzz-corpus/<target>/ and persist between runs. A crash, leak, timeout or OOM
# lands in fuzz/crashes/<target>/ (libFuzzer stops that target at its first one). Fix it, then
# move the input to fuzz/regressions/<target>/ so ctest (fuzz_regressions.<target>) replays it.
# Exit status: 0 when no target found a new crash, 1 otherwise, 2 on usage/build problems.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${1:-600}
shift || true
if ! [[ $seconds =~ ^[0-9]+$ ]] || (( seconds < 1 )); then
  echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
  exit 2
fi
all_targets=(model_json archive poses_json jobs video image)
targets=("$@")
(( ${#targets[@]} )) || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  [[ " ${all_targets[*]} " == *" $t "* ]] || { echo "fuzz.sh: unknown target '$t' (${all_targets[*]})" >&2; exit 2; }
done

build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
jobs=${FUZZ_JOBS:-2}
nice_level=${FUZZ_NICE:-10}

# Per-target input limits and per-input timeouts (a slower input is reported as a hang).
max_len() {
  case $1 in
    model_json) echo 16384 ;; archive) echo 4096 ;; poses_json) echo 8192 ;; jobs) echo 4096 ;; video) echo 32768 ;; image) echo 8192 ;;
  esac
}
input_timeout() {
  case $1 in video|image) echo 60 ;; *) echo 10 ;; esac
}

if [[ ${FUZZ_NO_BUILD:-0} != 1 ]]; then
  if [[ ! -f $build/CMakeCache.txt ]]; then
    cmake -S "$root" -B "$build" -G Ninja \
      -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
      -DSTANDIN_BUILD_FUZZERS=ON -DSTANDIN_BUILD_TESTS=OFF \
      "-DCMAKE_CXX_FLAGS=-fsanitize=address,undefined -fno-sanitize-recover=undefined -fsanitize=fuzzer-no-link" \
      "-DCMAKE_CXX_FLAGS_RELEASE=-O1 -gline-tables-only -DNDEBUG" || exit 2
  fi
  build_targets=()
  for t in "${targets[@]}"; do build_targets+=("fuzz_$t"); done
  nice -n "$nice_level" cmake --build "$build" -j "$jobs" --target "${build_targets[@]}" || exit 2
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0:detect_stack_use_after_return=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
run_dir=$build/fuzz-run
mkdir -p "$run_dir"

run_target() {
  local t=$1
  local work=$build/fuzz-corpus/$t crashes=$root/fuzz/crashes/$t log=$run_dir/$t.log
  mkdir -p "$work" "$crashes"
  local dict=()
  [[ -f $root/fuzz/dict/$t.dict ]] && dict=(-dict="$root/fuzz/dict/$t.dict")
  : > "$log"
  rm -f "$run_dir/$t.rc"
  echo "exact command: nice -n $nice_level $build/fuzz/fuzz_$t -max_total_time=$seconds -max_len=$(max_len "$t")" \
       "-timeout=$(input_timeout "$t") -rss_limit_mb=4096 -print_final_stats=1 ${dict[*]}" \
       "-artifact_prefix=$crashes/ $work $root/fuzz/corpus/$t" >> "$log"
  # Replay the fixed crashers under the sanitizers first (ctest's gcc replay has none).
  if compgen -G "$root/fuzz/regressions/$t/*" > /dev/null; then
    if ! "$build/fuzz/fuzz_$t" "$root/fuzz/regressions/$t"/* > "$run_dir/$t.regressions.log" 2>&1; then
      echo "fuzz.sh: $t: a regression input fails again, see $run_dir/$t.regressions.log" >&2
      echo 1 > "$run_dir/$t.rc"
    fi
  fi
  date +%s > "$run_dir/$t.start"
  nice -n "$nice_level" "$build/fuzz/fuzz_$t" \
    -max_total_time="$seconds" -max_len="$(max_len "$t")" -timeout="$(input_timeout "$t")" \
    -rss_limit_mb=4096 -print_final_stats=1 "${dict[@]}" \
    -artifact_prefix="$crashes/" "$work" "$root/fuzz/corpus/$t" >> "$log" 2>&1
  local rc=$?
  [[ -f $run_dir/$t.rc && $(cat "$run_dir/$t.rc") != 0 ]] || echo $rc > "$run_dir/$t.rc"
  date +%s > "$run_dir/$t.end"
}

for t in "${targets[@]}"; do
  [[ -x $build/fuzz/fuzz_$t ]] || { echo "fuzz.sh: $build/fuzz/fuzz_$t is missing" >&2; exit 2; }
done
echo "fuzz.sh: ${#targets[@]} target(s), ${seconds} s each, ${jobs} at a time; logs in $run_dir/"
running=0
for t in "${targets[@]}"; do
  if (( running >= jobs )); then wait -n; running=$((running - 1)); fi
  echo "fuzz.sh: $t started"
  run_target "$t" &
  running=$((running + 1))
done
wait

# Summary from libFuzzer's final stats and last status line.
status=0
printf '\n%-11s %8s %12s %9s %6s %7s %6s %8s %s\n' target seconds execs execs/s cov ft corpus crashes result
for t in "${targets[@]}"; do
  log=$run_dir/$t.log
  stat() { grep -m1 "^stat::$1:" "$log" | awk '{print $2}'; }
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<< "$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<< "$last")
  corp=$(sed -nE 's/.* corp: ([0-9]+)\/.*/\1/p' <<< "$last")
  execs=$(stat number_of_executed_units)
  rate=$(stat average_exec_per_sec)
  elapsed=$(( $(cat "$run_dir/$t.end") - $(cat "$run_dir/$t.start") ))
  new_crashes=$(find "$root/fuzz/crashes/$t" -type f -newer "$run_dir/$t.start" \
                \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  result=ok
  if (( new_crashes > 0 )) || [[ $(cat "$run_dir/$t.rc") != 0 ]]; then
    result="FOUND: $(find "$root/fuzz/crashes/$t" -type f -newer "$run_dir/$t.start" | xargs -r -n1 basename | tr '\n' ' ')"
    status=1
  fi
  printf '%-11s %8s %12s %9s %6s %7s %6s %8s %s\n' "$t" "$elapsed" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" \
    "${corp:-?}" "$new_crashes" "$result"
done
exit $status
