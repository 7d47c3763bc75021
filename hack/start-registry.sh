#!/usr/bin/env bash
# Starts Debian's docker-registry (CNCF distribution) on 127.0.0.1 at a free port with its
# storage in DIR; prints HOST:PORT once it answers. Stop it with: kill "$(cat DIR/pid)".
# usage: hack/start-registry.sh DIR
set -euo pipefail
dir=${1:?usage: start-registry.sh DIR}
mkdir -p "$dir/storage"
command -v docker-registry >/dev/null || { echo "start-registry: docker-registry missing (hack/install-deps.sh)" >&2; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$dir/config.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YML
docker-registry serve "$dir/config.yml" > "$dir/registry.log" 2>&1 &
echo $! > "$dir/pid"
for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "127.0.0.1:$port"
    exit 0
  fi
  sleep 0.05
done
echo "start-registry: docker-registry did not start: $(cat "$dir/registry.log")" >&2
kill "$(cat "$dir/pid")" 2>/dev/null || true
exit 1
