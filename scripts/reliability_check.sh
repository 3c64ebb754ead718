#!/bin/bash
# Real-model checks of the guarantees in docs/reliability.md (MiniLM + WordNet, small grid); run from the repository root.
# Writes under $R (default /tmp/rel/real).
set -u
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
B=".venv/bin/bench"
G="-a bow:adaptive=false -D wordnet:attacker=2000,target=100,leaked=100 -q"
R=${R:-/tmp/rel/real}; rm -rf $R; mkdir -p $R
f1() { python3 -c "import json,glob,sys; [print(sys.argv[1], json.load(open(p))['metrics']['word_f1']['value']) for p in sorted(glob.glob(sys.argv[1]+'/*.json'))]" $1; }
echo "== reference"; $B run $G --out $R/ref --cache-dir $R/cache >/dev/null 2>$R/ref.err; echo rc=$?; f1 $R/ref
echo "== overwrite 64 KiB of the attacker embedding cache, 1 MiB of bow.safetensors"
E=$(ls $R/cache/embeddings/attacker-*.safetensors); A=$(find $R/cache/artifacts -name bow.safetensors)
python3 - "$E" "$A" <<'PY'
import sys, os
for p, n in ((sys.argv[1], 64*1024), (sys.argv[2], 1024*1024)):
    size = os.path.getsize(p); off = size // 3
    with open(p, 'r+b') as f:
        f.seek(off); f.write(os.urandom(min(n, size - off - 1)))
PY
$B run $G --out $R/after --cache-dir $R/cache >/dev/null 2>$R/after.err; echo rc=$?; grep warning $R/after.err; f1 $R/after
echo "== truncate bow.safetensors"
A=$(find $R/cache/artifacts -name bow.safetensors); truncate -s 1000 "$A"
$B run $G --out $R/trunc --cache-dir $R/cache >/dev/null 2>$R/trunc.err; echo rc=$?; grep warning $R/trunc.err; f1 $R/trunc
echo "== two concurrent runs, cold cache"
( $B run $G --out $R/conc --cache-dir $R/cache2 >/dev/null 2>$R/c1.err; echo "run1 rc=$?" ) &
( $B run $G --out $R/conc --cache-dir $R/cache2 >/dev/null 2>$R/c2.err; echo "run2 rc=$?" ) &
wait; cat $R/c1.err $R/c2.err | grep -v "^$" | grep -iv "embedder: \|^|" | head; ls $R/conc; f1 $R/conc
echo "== bad inputs"
$B run $G --seed -1 --out $R/bad1; echo rc=$?
touch $R/afile; $B run $G --out $R/afile; echo rc=$?
$B run -a bow -d noise:scale=inf --out $R/bad2; echo rc=$?
ls $R
