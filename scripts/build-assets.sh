#!/usr/bin/env bash
# Build the web application's CSS and copy GOV.UK Frontend's script into engine/web/static/ (committed,
# so a clone runs without Node.js). Run again after changing web.brand_colour or web.font in
# config.yaml, or the pinned govuk-frontend in web/package.json. Needs Node.js and npm.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/python - <<'PY'
from engine.config import load_settings
web = load_settings("config.yaml").web
open("web/scss/_council.scss", "w").write(
    "// Written by scripts/build-assets.sh from config.yaml: do not edit.\n"
    f"$brand: {web.brand_colour};\n$font: {web.font};\n"
)
PY
(cd web && npm ci --no-audit --no-fund --silent)
static=engine/web/static
rm -rf "$static/govuk" && mkdir -p "$static/govuk"
web/node_modules/.bin/sass --pkg-importer=node --style=compressed --no-source-map --quiet-deps \
  web/scss/app.scss "$static/app.css"
cp web/node_modules/govuk-frontend/dist/govuk/govuk-frontend.min.js "$static/govuk/"
# GOV.UK's own assets (its font, crown and icons) are for GOV.UK services only: none are copied.
echo "built $static/app.css ($(wc -c < "$static/app.css") bytes) and copied govuk-frontend.min.js"
