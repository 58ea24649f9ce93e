#!/usr/bin/env bash
# Drives the real binary: each case checks the exit code and that stderr holds one clear line.
set -u
standin=$1
failures=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

expect() {  # expect CODE PATTERN -- ARGS...
  local want=$1 pattern=$2
  shift 3
  local err
  err=$("$standin" "$@" 2>&1 >/dev/null)
  local got=$?
  if [[ $got -ne $want ]]; then
    echo "FAIL: standin $* exited $got, want $want; stderr: $err"
    failures=$((failures + 1))
  elif [[ -n $pattern && ! $err =~ $pattern ]]; then
    echo "FAIL: standin $*: stderr does not match '$pattern': $err"
    failures=$((failures + 1))
  elif [[ $err == *"Segmentation"* || $err == *"terminate called"* || $err == *"core dumped"* ]]; then
    echo "FAIL: standin $*: crashed: $err"
    failures=$((failures + 1))
  else
    echo "ok: [$got] standin $*"
  fi
}

expect 0 "" -- --version
expect 0 "" -- --help
expect 2 "subcommand is required" --
expect 2 "required" -- replace -i a.mp4 -o out.mp4
expect 2 "--size must look like" -- replace -i a.mp4 -r b.png -o out.mp4 --size 12
expect 2 "" -- no-such-command
expect 4 "no model.json" -- models "$work"
expect 3 "not found|No such file" -- compare "$work/a.mp4" "$work/b.mp4"

exit $((failures > 0))
