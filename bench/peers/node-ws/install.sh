#!/usr/bin/env bash
# Installs the Node `ws` broadcast peer's dependency (npm, from the npm registry).
set -euo pipefail
cd "$(dirname "$0")"
command -v npm >/dev/null || { echo "install.sh: npm is required (apt-get install nodejs npm)" >&2; exit 1; }
npm install --no-audit --no-fund --omit=dev
