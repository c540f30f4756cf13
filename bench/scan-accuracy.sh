#!/bin/sh
# scan-accuracy.sh - accuracy of Sluice's scanner against SpamAssassin on the same corpus.
#
# A report, not a test: it never gates CI. It runs
#   1. SpamAssassin itself: spamd on loopback, network tests off (-L), Bayes and auto-learn off
#      (so the score set is the same for every message: set 0), fed by spamc, two children;
#   2. sluice-rules with the same rules (/usr/share/spamassassin/*.cf, the site .pre files and
#      local.cf, score set 0), compiled once into a cache directory (the compile takes minutes);
#   3. sluice-rules with our own shipped rule set (patterns/rules/).
# and prints spam caught and ham misjudged for each at the required score (5 unless the rules
# say otherwise).
#
# Usage: bench/scan-accuracy.sh [BUILD_DIR] [CORPUS_TAR]
#   BUILD_DIR   a meson build dir with patterns/sluice-rules built (default /tmp/build-rules)
#   CORPUS_TAR  default /work/shared/corpus/sa-dev.tar.gz
# Env: WORK (scratch dir, default /tmp/scan-accuracy), JOBS (spamc parallelism, default 2),
#      SKIP_SA=1 (reuse the previous spamd results), LIMIT=N (first N messages only).
# Needs: spamassassin, spamd, spamc (Debian), root or a user spamd may run as.
set -eu

BUILD=${1:-/tmp/build-rules}
TAR=${2:-/work/shared/corpus/sa-dev.tar.gz}
WORK=${WORK:-/tmp/scan-accuracy}
JOBS=${JOBS:-2}
SRC=$(cd "$(dirname "$0")/.." && pwd)
RULES_BIN=$BUILD/patterns/sluice-rules
PORT=${PORT:-17830}

mkdir -p "$WORK"
if [ ! -f "$WORK/corpus/MANIFEST.tsv" ]; then
	mkdir -p "$WORK/corpus"
	tar xzf "$TAR" -C "$WORK/corpus"
fi
MANIFEST=$WORK/corpus/MANIFEST.tsv
if [ -n "${LIMIT:-}" ]; then
	head -n $((LIMIT + 1)) "$WORK/corpus/MANIFEST.tsv" > "$WORK/manifest-limit.tsv"
	MANIFEST=$WORK/manifest-limit.tsv
fi

# The site configuration both scanners read: Debian's, plus Bayes and auto-learn off, so that
# SpamAssassin cannot switch score sets half-way through the corpus by learning from it.
SITE=$WORK/site
rm -rf "$SITE"; mkdir -p "$SITE"
cp /etc/spamassassin/*.pre /etc/spamassassin/*.cf "$SITE/"
cat >> "$SITE/local.cf" <<'EOF'
# added by bench/scan-accuracy.sh
use_bayes 0
bayes_auto_learn 0
EOF

# --- 1. SpamAssassin ---------------------------------------------------------------------------
if [ "${SKIP_SA:-0}" != 1 ]; then
	PIDF=$WORK/spamd.pid
	spamd -L -i 127.0.0.1 -p "$PORT" -m "$JOBS" -d -r "$PIDF" -u debian-spamd \
		--siteconfigpath "$SITE" -x --syslog=stderr 2> "$WORK/spamd.log"
	i=0
	while ! spamc -d 127.0.0.1 -p "$PORT" -K >/dev/null 2>&1; do
		i=$((i + 1)); [ $i -lt 120 ] || { echo "spamd did not start" >&2; exit 1; }
		sleep 0.5
	done
	# one line per message: label path score tests; the mbox "From " line, where there is
	# one, is dropped as sluice-rules test drops it, so that both read the same message
	start=$(date +%s)
	tail -n +2 "$MANIFEST" | cut -f1,2 | xargs -P "$JOBS" -L 1 sh -c '
		out=$(sed "1{/^From /d}" "$0/$2" | spamc -d 127.0.0.1 -p '"$PORT"' -x 2>/dev/null |
			sed -n "/^X-Spam-Status:/,/^[^ \t]/p" | head -n -1 | tr "\n\t" "  " |
			sed "s/, */,/g")
		score=$(printf "%s" "$out" | sed -n "s/.*score=\([-0-9.]*\).*/\1/p")
		tests=$(printf "%s" "$out" | sed -n "s/.*tests=\([^ ]*\).*/\1/p")
		printf "%s\t%s\t%s\t%s\n" "$1" "$2" "${score:-ERR}" "$tests"
	' "$WORK/corpus" > "$WORK/sa-results.tsv"
	end=$(date +%s)
	kill "$(cat "$PIDF")" 2>/dev/null || true
	echo "spamd: $(wc -l < "$WORK/sa-results.tsv") messages in $((end - start)) s wall ($JOBS children)"
fi

summary() { # $1 = results file (label path score ...), $2 = name, $3 = threshold
	awk -F'\t' -v name="$2" -v thr="$3" '
		$3 == "ERR" { err++; next }
		$1 == "spam" { s++; if ($3 + 0 >= thr) tp++ }
		$1 == "ham"  { h++; if ($3 + 0 >= thr) fp++ }
		END { printf "%-34s spam caught %5.1f%% (%d/%d)   ham misjudged %5.2f%% (%d/%d)%s\n",
			name, s ? 100 * tp / s : 0, tp, s, h ? 100 * fp / h : 0, fp, h,
			err ? sprintf("   errors %d", err) : "" }' "$1"
}

# --- 2. Sluice with SpamAssassin's rules ---------------------------------------------------------
SADB=$WORK/db-spamassassin
# the cache key: the rule text and the compiler that read it
SAHASH=$(cat "$SITE"/*.pre /usr/share/spamassassin/*.cf "$SITE"/*.cf "$RULES_BIN" | sha256sum | cut -c1-16)
if [ "$(cat "$SADB/.source" 2>/dev/null)" != "$SAHASH" ]; then
	rm -rf "$SADB"
	/usr/bin/time -f "compile: %e s wall, %M KiB max RSS" \
		"$RULES_BIN" compile -o "$SADB" "$SITE"/*.pre /usr/share/spamassassin/*.cf "$SITE"/*.cf
	echo "$SAHASH" > "$SADB/.source"
fi
"$RULES_BIN" test --db "$SADB" --corpus "$MANIFEST" --results "$WORK/sluice-sa-results.tsv"

# --- 3. Sluice with its own rule set -----------------------------------------------------------
OWNDB=$WORK/db-sluice
rm -rf "$OWNDB"
"$RULES_BIN" compile -o "$OWNDB" "$SRC"/patterns/rules/*.cf
"$RULES_BIN" test --db "$OWNDB" --corpus "$MANIFEST" --results "$WORK/sluice-own-results.tsv"

echo
echo "== accuracy at required score 5 =="
[ -f "$WORK/sa-results.tsv" ] && summary "$WORK/sa-results.tsv" "SpamAssassin 4 (spamd -L)" 5
summary "$WORK/sluice-sa-results.tsv" "Sluice, SpamAssassin's rules" 5
summary "$WORK/sluice-own-results.tsv" "Sluice, patterns/rules" 5
