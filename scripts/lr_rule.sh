#!/usr/bin/env bash
# The cpu preset's lr rule, validated (results/lr_rule): SP with lr = c / width, for c
# one x2 step either side of the rule's, at every width of the preset (and 80), under its
# schedule (WSD, batch 16 x 64). Each (width, c) is one WSD ladder whose cooldowns at
# 512k (500 steps) and 2.05M tokens share its stable phase; at width 16 the ladder
# also runs to 8.19M tokens, the preset's longest run. Runs already done are skipped.
# Then: python scripts/lr_rule_plot.py (table and figure).
set -euo pipefail
c() { printf "'\${over:%s,\${model.width}}'" "$1"; }   # lr = $1 / width, resolved per grid point
lrs() { local out=""; for x in "$@"; do out+="${out:+,}$(c "$x")"; done; printf '%s' "$out"; }
harness-sweep sweep=lr_rule model.width=64,48,32,16 "train.lr=$(lrs 0.192 0.384 0.768)"
harness-sweep sweep=lr_rule model.width=80,64,48,32,24 "train.lr=$(lrs 0.096)"
harness-sweep sweep=lr_rule model.width=80,24 "train.lr=$(lrs 0.192 0.384)"
harness-sweep sweep=lr_rule model.width=16 data.tokens=8192000,2048000,512000 \
  "train.branch_tokens=[512000,2048000,8192000]" "train.lr=$(lrs 0.096 0.192 0.384)"
harness-sweep sweep=lr_rule model.width=96 "train.lr=$(lrs 0.096 0.192 0.384 0.768)"
