#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each (default 300), one after another,
# one process each, then prints a table: target, executions, exec/s, coverage, findings.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`); stable Rust with RUSTC_BOOTSTRAP=1 is enough.
# New inputs go to fuzz/work/<target>/ (ignored by git), so the committed seeds in
# fuzz/corpus/<target>/ stay small; fuzz/regressions/<target>/ is read as well. A crash, leak,
# timeout or out-of-memory lands in fuzz/artifacts/<target>/; minimise it with
# `RUSTC_BOOTSTRAP=1 cargo fuzz tmin -s none <target> <file>`, copy it to
# fuzz/regressions/<target>/ and fix the parser (the replay test then covers it).
# FUZZ_SANITIZER (default none: the workspace denies unsafe code; `address` for ASan).
# Exit status: 1 when a target had a finding.
set -euo pipefail
cd "$(dirname "$0")"

secs=${1:-300}
[ $# -gt 0 ] && shift
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$PWD/target"
san=${FUZZ_SANITIZER:-none}

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

cargo fuzz build -s "$san" >&2

mkdir -p work
rows=()
failed=0
for t in "${targets[@]}"; do
  mkdir -p "work/$t" "corpus/$t" "regressions/$t" "artifacts/$t"
  log="work/$t.log"
  before=$(find "artifacts/$t" -type f | wc -l)
  echo "== $t (${secs}s)" >&2
  set +e
  cargo fuzz run -s "$san" "$t" "work/$t" "corpus/$t" "regressions/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=25 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | tail -1 | awk '{print $2}')
  rate=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | tail -1 | awk '{print $2}')
  cov=$(grep -o ' cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  after=$(find "artifacts/$t" -type f | wc -l)
  findings=$((after - before))
  if [ "$rc" -ne 0 ] && [ "$findings" -eq 0 ]; then findings="exit $rc (see fuzz/$log)"; fi
  [ "$rc" -ne 0 ] && failed=1
  rows+=("$t|${execs:--}|${rate:--}|${cov:--}|$findings")
done

printf '\n| target | executions | exec/s | coverage (cov) | findings |\n|---|---:|---:|---:|---|\n'
for r in "${rows[@]}"; do
  IFS='|' read -r a b c d e <<<"$r"
  printf '| %s | %s | %s | %s | %s |\n' "$a" "$b" "$c" "$d" "$e"
done
exit "$failed"
