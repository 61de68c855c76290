#!/bin/sh
# The docs assistant's answer options on the held-out questions: extractive vs the local model
# (SmolLM2-135M-Instruct hosted on a shipyard host, reached through the gateway's local-chat
# route), every question of examples/docs_qa/questions/python_docs.yaml's test split, through
# examples/docs_qa/evaluate.py (see docs/docs-qa-evaluation.md). Prints the card's numbers.
#
#   sh bench/docs_qa_answers.sh [INDEX_DIR] [extra evaluate.py options]
#
# INDEX_DIR (default bench/.work/docs-qa-index) is built first if missing: Python 3.11's RST
# sources (python3.11-doc) without whatsnew, c-api, distutils, includes, extending, install
# (~10,700 chunks; half an hour of CPU on 2 cores).
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
INDEX=${1:-$ROOT/bench/.work/docs-qa-index}
[ $# -gt 0 ] && shift
DOCS=${SHIPYARD_TEST_PYTHON_DOCS:-/usr/share/doc/python3.11/html/_sources}
W=$(mktemp -d)
export SHIPYARD_HOME=$W/home HF_HUB_OFFLINE=1
unset SHIPYARD_DB_URL SHIPYARD_STORE_URL SHIPYARD_URL SHIPYARD_KEY
cd "$ROOT"
if [ ! -d "$INDEX" ]; then
  "$PY" - "$DOCS" "$INDEX" <<'PYEOF'
import sys
from shipyard.retrieval import Embedder, build_index, chunk_documents, load_documents
skip = ["whatsnew/*", "c-api/*", "distutils/*", "includes/*", "extending/*", "install/*"]
embedder = Embedder()
chunks = chunk_documents(load_documents(sys.argv[1], exclude=skip), embedder.tokenizer, max_tokens=256)
build_index(chunks, embedder, progress=True).save(sys.argv[2])
PYEOF
fi
INVOKE=$("$PY" -m shipyard keys create --scope invoke:local-llm | tail -1 | awk '{print $NF}')
CALLER=$("$PY" -m shipyard keys create --scope route:local-chat | tail -1 | awk '{print $NF}')
cat > "$W/gateway.yaml" <<YAML
routes:
  - name: local-chat
    type: chat
    upstream: {provider: service, service: local-llm, endpoint: chat, api_key: "\${LOCAL_LLM_KEY}"}
    timeout: 240
    retries: 0
YAML
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
LOCAL_LLM_KEY=$INVOKE "$PY" -m shipyard serve --port "$PORT" --gateway-config "$W/gateway.yaml" >"$W/host.log" 2>&1 &
HOST=$!
trap 'kill $HOST 2>/dev/null; wait $HOST 2>/dev/null' EXIT
for _ in $(seq 120); do curl -sf "$URL/healthz" >/dev/null && break; sleep 0.5; done
"$PY" -m shipyard deploy examples/docs_qa/local_llm.py:LocalLLM --name local-llm --env LOCAL_LLM_THREADS=1 --url "$URL"
SHIPYARD_GATEWAY_KEY=$CALLER "$PY" examples/docs_qa/evaluate.py run --max-workers 1 \
  --index "$INDEX" --routes local-chat --gateway "$URL" --gateway_config "$W/gateway.yaml" \
  --max_steps 1 --budget 0 "$@"
