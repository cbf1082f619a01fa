#!/usr/bin/env bash
# Runs each libFuzzer harness for a while: `make fuzz` calls it after building
# the harnesses in FUZZ_BUILD (clang, -DPHALANX_FUZZ=ON).
#
#   tests/fuzz/run.sh BUILD_DIR SECONDS [NAME...]   (default: every tests/fuzz/*_fuzz.cc)
#
# For harness NAME the fuzzer reads tests/fuzz/corpus/NAME/ (the checked-in seeds,
# never written) and writes what it finds new to BUILD_DIR/fuzz/NAME/corpus/
# (a scratch corpus that grows from run to run). Optional beside the harness:
# NAME.dict (a libFuzzer dictionary) and NAME.options (more flags, e.g. -max_len).
# Inputs that crash, leak, time out or run out of memory are copied into
# tests/fuzz/crashes/NAME/, where `make test` replays them from then on: commit
# them with the fix. The exit status is 1 if anything was found.
set -uo pipefail
cd "$(dirname "$0")/../.."

build=${1:?usage: run.sh BUILD_DIR SECONDS [NAME...]}
seconds=${2:?usage: run.sh BUILD_DIR SECONDS [NAME...]}
shift 2
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for source in tests/fuzz/*_fuzz.cc; do
    name=$(basename "$source" _fuzz.cc)
    names+=("$name")
  done
fi

# A figure from libFuzzer's -print_final_stats lines in the log.
final_stat() { sed -n "s/^stat::$1: *//p" "$work/fuzz.log" | tail -1; }

# Debian installs llvm-symbolizer under a versioned name only: say where it is.
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ] && [ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]; then
  export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
fi

found=0
summary=()
for name in "${names[@]}"; do
  binary="$build/${name}_fuzz"
  seeds="tests/fuzz/corpus/$name"
  work="$build/fuzz/$name"
  if [ ! -x "$binary" ]; then
    echo "fuzz: $binary is not built" >&2
    exit 2
  fi
  mkdir -p "$work/corpus" "$work/artifacts" "$seeds"
  rm -f "$work"/artifacts/*
  flags=(-max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048
         -print_final_stats=1 -artifact_prefix="$work/artifacts/")
  [ -f "tests/fuzz/$name.dict" ] && flags+=(-dict="tests/fuzz/$name.dict")
  if [ -f "tests/fuzz/$name.options" ]; then
    # One flag per line; later flags win, so these override the defaults above.
    while read -r flag; do
      [ -n "$flag" ] && [ "${flag:0:1}" != "#" ] && flags+=("$flag")
    done < "tests/fuzz/$name.options"
  fi

  echo "fuzz: $name for ${seconds}s (log: $work/fuzz.log)"
  "$binary" "${flags[@]}" "$work/corpus" "$seeds" > "$work/fuzz.log" 2>&1
  status=$?

  line="$name: $(final_stat number_of_executed_units) runs, $(final_stat average_exec_per_sec) exec/s,"
  line+=" $(final_stat new_units_added) new inputs (scratch corpus: $(ls "$work/corpus" | wc -l)),"
  line+=" peak RSS $(final_stat peak_rss_mb) MB"
  artifacts=("$work"/artifacts/{crash,leak,timeout,oom}-*)
  kept=()
  for artifact in "${artifacts[@]}"; do
    [ -f "$artifact" ] || continue
    mkdir -p "tests/fuzz/crashes/$name"
    cp "$artifact" "tests/fuzz/crashes/$name/"
    kept+=("tests/fuzz/crashes/$name/$(basename "$artifact")")
  done
  if [ $status -ne 0 ] || [ ${#kept[@]} -gt 0 ]; then
    found=1
    line+=", FOUND (exit $status): ${kept[*]:-see the log}"
    echo "--- the end of $work/fuzz.log:"
    tail -n 60 "$work/fuzz.log"
  else
    line+=", nothing found"
  fi
  echo "fuzz: $line"
  summary+=("$line")
done

echo
echo "fuzz summary (${seconds}s each):"
printf '  %s\n' "${summary[@]}"
if [ $found -ne 0 ]; then
  echo "Replay a finding: $build/NAME_fuzz FILE (libFuzzer), or build/NAME_fuzz FILE (gcc,"
  echo "no fuzzer); it stays in tests/fuzz/crashes/NAME/, replayed by make test from now on."
fi
exit $found
