#!/usr/bin/env bash
# Fuzz the parsers with cargo-fuzz (libFuzzer), one target after the other,
# each for a bounded time in one process (one job):
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s, all targets)
#
# Targets (fuzz/fuzz_targets/, invariants in fuzz/src/checks.rs): backup_info,
# key, history, history_file, config, wal_arith. Each run starts from the real seeds
# fuzz/seeds/<target>/ (the scenario's backup.info and .history files, its
# keys, the example configs) and the kept corpus fuzz/corpus/<target>/, both
# read only, and writes what it discovers to a scratch corpus under
# $BCE_FUZZ_WORK (default /tmp/bce-fuzz). With
# BCE_FUZZ_UPDATE_CORPUS=1 the discoveries are merged into fuzz/corpus/<target>/
# and minimized with `cargo fuzz cmin`.
#
# The kept corpora stay small: inputs are capped per target (-max_len) and,
# after cmin, the smallest files are kept up to $BCE_FUZZ_CORPUS_KB KiB
# (default 64) and $BCE_FUZZ_CORPUS_FILES files (default 256) per target.
#
# Prints one line per target: executions, executions per second, crashes.
# A crash leaves its input in fuzz/artifacts/<target>/ and makes the script
# exit 1; fix it, then keep the input in fuzz/regressions/<target>/ so that
# tests/fuzz_corpus.rs replays it on the stable toolchain.
#
# Needs cargo-fuzz (installed here into $BCE_TOOLS_DIR/cargo from crates.io if
# missing). The machine has a stable toolchain only: RUSTC_BOOTSTRAP=1 lets
# cargo-fuzz use its nightly flags. Built without a sanitizer (the crate has
# no unsafe code) but with debug assertions, so integer overflow is a crash.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECONDS_PER_TARGET="${1:-60}"
shift || true
ALL_TARGETS=(backup_info key history history_file config wal_arith)
TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=("${ALL_TARGETS[@]}")
WORK="${BCE_FUZZ_WORK:-/tmp/bce-fuzz}"
CARGO_ROOT="$BCE_TOOLS_DIR/cargo"
export PATH="$CARGO_ROOT/bin:$PATH"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz into $CARGO_ROOT"
  cargo install --locked cargo-fuzz --root "$CARGO_ROOT" </dev/null >&2
fi

cd "$BCE_REPO_ROOT"
FUZZ_FLAGS=(--sanitizer none --debug-assertions)
log "building the fuzz targets (release, debug assertions)"
cargo fuzz build "${FUZZ_FLAGS[@]}" >&2

status=0
# Longest input per target, in bytes: real backup.info files are ~1.3 KiB,
# configs well under 2 KiB, keys under 200 bytes.
declare -A MAX_LEN=([backup_info]=4096 [key]=256 [history]=1024 [history_file]=4096 [config]=4096 [wal_arith]=512)
CORPUS_KB="${BCE_FUZZ_CORPUS_KB:-64}"
CORPUS_FILES="${BCE_FUZZ_CORPUS_FILES:-256}"

# keep_smallest DIR KIB FILES: keep the smallest files of DIR, at most KIB KiB
# and FILES files in all; delete the rest.
keep_smallest() {
  local dir=$1 budget=$(($2 * 1024)) files=$3 total=0 kept=0 size f
  while IFS=$'\t' read -r size f; do
    if ((total + size <= budget && kept < files)); then
      total=$((total + size))
      kept=$((kept + 1))
    else
      rm -f -- "$f"
    fi
  done < <(find "$dir" -type f -printf '%s\t%p\n' | sort -n)
}

printf '%-12s %8s %12s %10s %8s\n' target seconds executions execs/s crashes
for t in "${TARGETS[@]}"; do
  scratch="$WORK/$t"
  mkdir -p "$scratch" "fuzz/artifacts/$t" "fuzz/corpus/$t"
  before=$(find "fuzz/artifacts/$t" -type f | wc -l)
  logf="$WORK/$t.log"
  cargo fuzz run "${FUZZ_FLAGS[@]}" "$t" "$scratch" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$SECONDS_PER_TARGET" -max_len="${MAX_LEN[$t]:-4096}" -timeout=10 \
    -print_final_stats=1 >"$logf" 2>&1 || true
  after=$(find "fuzz/artifacts/$t" -type f | wc -l)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logf" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logf" | tail -1)
  crashes=$((after - before))
  printf '%-12s %8s %12s %10s %8s\n' "$t" "$SECONDS_PER_TARGET" "${execs:-?}" "${rate:-?}" "$crashes"
  if ((crashes > 0)) || [[ -z "$execs" ]]; then
    warn "$t: crash or failed run, see $logf and fuzz/artifacts/$t/"
    status=1
  fi
  if [[ "${BCE_FUZZ_UPDATE_CORPUS:-0}" == 1 ]]; then
    cp -n "$scratch"/* "fuzz/corpus/$t/" 2>/dev/null || true
    cargo fuzz cmin "${FUZZ_FLAGS[@]}" "$t" "fuzz/corpus/$t" -- -max_len="${MAX_LEN[$t]:-4096}" \
      >"$WORK/$t.cmin.log" 2>&1
    keep_smallest "fuzz/corpus/$t" "$CORPUS_KB" "$CORPUS_FILES"
    log "$t: corpus minimized to $(find "fuzz/corpus/$t" -type f | wc -l) files, $(find "fuzz/corpus/$t" -type f -printf "%s\n" | awk "{s+=\$1} END {print s+0}") bytes"
  fi
done
exit "$status"
