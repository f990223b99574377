#!/bin/sh
# run.sh TARGET...: run each libFuzzer target in turn (make fuzz calls it).
# Each runs FUZZ_SECONDS from its seed corpus (build-fuzz/corpus/T) into its
# working corpus (build-fuzz/work/T, kept between runs), with the target's
# dictionary (fuzz/dict/T.dict; pt uses pickle.dict) when there is one. Findings go to
# build-fuzz/artifacts/T/ (crash-*, leak-*, timeout-*, oom-*), the log to
# build-fuzz/logs/T.log. Prints one line per target; exits 1 when any target
# had a finding.
B=${FUZZ_BUILD:-build-fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-60}
failed=""
for t in "$@"; do
  bin="$B/bin/fuzz_$t"
  [ -x "$bin" ] || { echo "fuzz: no target '$t' ($bin)"; exit 2; }
  mkdir -p "$B/work/$t" "$B/artifacts/$t" "$B/logs" "$B/corpus/$t"
  d=$t
  [ "$t" = pt ] && d=pickle   # a .pt file's pickle: the pickle opcodes
  dict=""
  [ -f "fuzz/dict/$d.dict" ] && dict="-dict=fuzz/dict/$d.dict"
  leaks=1
  for l in $FUZZ_LUA_TARGETS; do [ "$l" = "$t" ] && leaks=${FUZZ_LUA_LEAKS:-1}; done
  before=$(ls "$B/artifacts/$t" | wc -l)
  echo "fuzz: $t for ${SECONDS_EACH}s (log $B/logs/$t.log)"
  ASAN_OPTIONS="detect_leaks=$leaks:allocator_may_return_null=1:${ASAN_OPTIONS:-}" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}" \
    "$bin" -max_total_time="$SECONDS_EACH" -rss_limit_mb="${FUZZ_RSS_MB:-2048}" \
      -timeout="${FUZZ_TIMEOUT:-10}" -print_final_stats=1 $dict \
      -artifact_prefix="$B/artifacts/$t/" $FUZZ_FLAGS "$B/work/$t" "$B/corpus/$t" \
      >"$B/logs/$t.log" 2>&1
  rc=$?
  after=$(ls "$B/artifacts/$t" | wc -l)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$B/logs/$t.log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$B/logs/$t.log" | tail -n 1)
  last=$(grep -E '^#[0-9]+' "$B/logs/$t.log" | tail -n 1)
  cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
  ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
  corp=$(echo "$last" | sed -n 's/.*corp: \([^ ]*\).*/\1/p')
  if [ "$rc" -ne 0 ] || [ "$after" -gt "$before" ]; then
    echo "fuzz: $t FOUND something (exit $rc): see $B/logs/$t.log and $B/artifacts/$t/"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$B/logs/$t.log" | head -n 5
    failed="$failed $t"
  else
    echo "fuzz: $t ok: ${runs:-?} runs, ${rate:-?} exec/s, cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}"
  fi
done
if [ -n "$failed" ]; then
  echo "fuzz: findings in:$failed"
  exit 1
fi
