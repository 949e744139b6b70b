#!/usr/bin/env bash
# The same kind of recording as replay-day.ts, through the whole ingest path instead of the
# pipeline alone: `plantwatt up` (aedes broker, ingest journal with fdatasync before PUBACK,
# processor with live figures, gateway) fed by `plantwatt replay --speed max`, one MQTT session per
# device. It measures a slice, not the day: one process may hold at most 19,000 sessions here, and
# the 2 cores carry the replaying devices too.
#
#   services/processor/bench/replay-through-up.sh [DEVICES] [HOURS]     (default 10000 1)
#
# Makes (or finds) the recording with replay-day.ts (which also prints the pipeline-alone figures
# of the same recording), starts `plantwatt up` on free ports with a fresh data directory, replays,
# then waits until the processor has taken every message (plantwatt_ingest_messages_total on
# /metrics). Prints wall seconds, packs/s and the CPU seconds of `up`.
# The recording starts in 2025 (replay-day.ts's default), older than maxAgeS behind the wall
# clock: `up --accept-old` takes it (CONTRACT.md §7).
set -euo pipefail
cd "$(dirname "$0")/../../.."
devices=${1:-10000}
hours=${2:-1}
work=$(mktemp -d /tmp/plantwatt-replay-up.XXXXXX)
up_pid=""
trap 'kill "$up_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

node --expose-gc --import tsx services/processor/bench/replay-day.ts --devices "$devices" --hours "$hours" \
  --out "$work/alone.json" > /dev/null
dir=$(ls -d .bench-data/replay-day/"${devices}dev-$((hours * 3600))s-"*nbiot-seed1-* | head -1)
messages=$(node -e 'console.log(require(process.argv[1]).messages)' "$PWD/$dir/meta.json")

node --import tsx services/cli/src/main.ts up --accept-old --plant "$dir/plant.json" --data-dir "$work/data" \
  --mqtt-port 0 --http-port 0 > "$work/up.log" 2>&1 &
up_pid=$!
until grep -q '"msg":"listening"' "$work/up.log" 2>/dev/null; do
  kill -0 "$up_pid" || { cat "$work/up.log"; exit 1; }
  sleep 0.5
done
line=$(grep '"msg":"listening"' "$work/up.log" | tail -1)
mqtt_port=$(echo "$line" | sed -E 's/.*"mqttPort":([0-9]+).*/\1/')
http_port=$(echo "$line" | sed -E 's/.*"httpPort":([0-9]+).*/\1/')
cpu() { awk '{print ($14 + $15) / 100}' "/proc/$up_pid/stat"; }
taken() { curl -s "http://127.0.0.1:$http_port/metrics" | awk '/^plantwatt_ingest_messages_total/ {s += $2} END {print s + 0}'; }

cpu_before=$(cpu)
started=$(date +%s.%N)
node --import tsx services/cli/src/main.ts replay "$dir/recording.ndjson.gz" --speed max \
  --broker "mqtt://127.0.0.1:$mqtt_port" --data-dir "$work/data" > "$work/replay.json" 2> "$work/replay.log"
acked=$(date +%s.%N)
until [ "$(taken)" -ge "$messages" ]; do sleep 0.2; done
done_at=$(date +%s.%N)
cpu_after=$(cpu)
rss_mb=$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$up_pid/status")

node -e '
const [alone, replay, messages, started, acked, done, cpu0, cpu1, rss] = process.argv.slice(1)
const a = require(alone).replay, r = require(replay)
const wall = done - started
console.log(JSON.stringify({
  messages: Number(messages),
  replaySeconds: +(acked - started).toFixed(2),
  untilProcessedSeconds: +wall.toFixed(2),
  packsPerS: Math.round(messages / wall),
  upCpuSeconds: +(cpu1 - cpu0).toFixed(2),
  upCpuMicrosPerPack: +(((cpu1 - cpu0) * 1e6) / messages).toFixed(1),
  upPeakRssMB: Number(rss),
  replay: { wallSeconds: r.wallSeconds, connectSeconds: r.connect?.seconds, acknowledged: r.messages.acknowledged, pubackMs: r.messages.latencyMs },
  pipelineAlone: { wallSeconds: a.wallSeconds, packsPerS: a.packsPerS, cpuMicrosPerReading: a.cpuMicrosPerReading },
  wholePathOverPipelineAlone: +(wall / a.wallSeconds).toFixed(1),
}, null, 2))
' "$work/alone.json" "$work/replay.json" "$messages" "$started" "$acked" "$done_at" "$cpu_before" "$cpu_after" "$rss_mb"
