#!/bin/sh
# scan-accuracy.sh - accuracy of Sluice's scanner against SpamAssassin on the same corpus.
#
# A report, not a test: it never gates CI. It runs
#   1. SpamAssassin itself: spamd on loopback, network tests off (-L), Bayes and auto-learn off
#      (so the score set is the same for every message: set 0), fed by spamc, two children;
#   2. sluice-rules with the same rules (/usr/share/spamassassin/*.cf, the site .pre files and
#      local.cf, score set 0), compiled once into a cache directory (the compile takes minutes);
#   3. sluice-rules with our own shipped rule set (patterns/rules/).
# on each corpus separately (the dev corpus and the hard-ham set by default): spam caught and ham
# misjudged at the required score (5 unless the rules say otherwise; "n/a" where a set has no
# spam, as the hard-ham set has none), the per-message verdict agreement of Sluice-with-SA-rules
# with spamd, the Pearson correlation of their scores, and the rules that most often fire in one
# engine and not the other (from spamd's tests= list and sluice-rules test --results' rule list;
# sub-rules __X are in neither).
#
# Usage: bench/scan-accuracy.sh [BUILD_DIR] [CORPUS_TAR...]
#   BUILD_DIR   a meson build dir with patterns/sluice-rules built (default /tmp/build-rules)
#   CORPUS_TAR  one or more; default both /work/shared/corpus/sa-dev.tar.gz and
#               /work/shared/corpus/sa-hardham-dev.tar.gz
# Env: WORK (scratch dir, default /tmp/scan-accuracy; one subdir per corpus), JOBS (spamc
#      parallelism, default 2), PORT (spamd's, default 17830), SKIP_SA=1 (reuse the previous spamd
#      results), LIMIT=N (first N messages of each corpus only), TOP=N (rules listed, default 12).
# Needs: spamassassin, spamd, spamc (Debian), root or a user spamd may run as; python3.
set -eu

BUILD=${1:-/tmp/build-rules}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- /work/shared/corpus/sa-dev.tar.gz /work/shared/corpus/sa-hardham-dev.tar.gz
WORK=${WORK:-/tmp/scan-accuracy}
JOBS=${JOBS:-2}
TOP=${TOP:-12}
SRC=$(cd "$(dirname "$0")/.." && pwd)
RULES_BIN=$BUILD/patterns/sluice-rules
PORT=${PORT:-17830}

mkdir -p "$WORK"

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

# The rule sets, compiled once for every corpus.
SADB=$WORK/db-spamassassin
# the cache key: the rule text and the compiler that read it
SAHASH=$(cat "$SITE"/*.pre /usr/share/spamassassin/*.cf "$SITE"/*.cf "$RULES_BIN" | sha256sum | cut -c1-16)
if [ "$(cat "$SADB/SOURCE" 2>/dev/null)" != "$SAHASH" ]; then
	rm -rf "$SADB"
	/usr/bin/time -f "compile: %e s wall, %M KiB max RSS" \
		"$RULES_BIN" compile -o "$SADB" "$SITE"/*.pre /usr/share/spamassassin/*.cf "$SITE"/*.cf
	echo "$SAHASH" > "$SADB/SOURCE"
fi
OWNDB=$WORK/db-sluice
rm -rf "$OWNDB"
"$RULES_BIN" compile -o "$OWNDB" "$SRC"/patterns/rules/*.cf

SPAMD_PIDF=$WORK/spamd.pid
spamd_stop() {
	[ -f "$SPAMD_PIDF" ] && kill "$(cat "$SPAMD_PIDF")" 2>/dev/null || true
	rm -f "$SPAMD_PIDF"
}
if [ "${SKIP_SA:-0}" != 1 ]; then
	trap spamd_stop EXIT INT TERM
	spamd -L -i 127.0.0.1 -p "$PORT" -m "$JOBS" -d -r "$SPAMD_PIDF" -u debian-spamd \
		--siteconfigpath "$SITE" -x --syslog=stderr 2> "$WORK/spamd.log"
	i=0
	while ! spamc -d 127.0.0.1 -p "$PORT" -K >/dev/null 2>&1; do
		i=$((i + 1)); [ $i -lt 120 ] || { echo "spamd did not start" >&2; exit 1; }
		sleep 0.5
	done
fi

for TAR in "$@"; do
	SET=$(basename "$TAR" .tar.gz)
	D=$WORK/$SET
	mkdir -p "$D"
	if [ ! -f "$D/corpus/MANIFEST.tsv" ]; then
		mkdir -p "$D/corpus"
		tar xzf "$TAR" -C "$D/corpus"
	fi
	MANIFEST=$D/corpus/MANIFEST.tsv
	if [ -n "${LIMIT:-}" ]; then
		head -n $((LIMIT + 1)) "$D/corpus/MANIFEST.tsv" > "$D/corpus/manifest-limit.tsv"
		MANIFEST=$D/corpus/manifest-limit.tsv
	fi
	echo "== $SET: $(($(wc -l < "$MANIFEST") - 1)) messages =="

	# --- 1. SpamAssassin -----------------------------------------------------------------------
	if [ "${SKIP_SA:-0}" != 1 ]; then
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
		' "$D/corpus" > "$D/sa-results.tsv"
		end=$(date +%s)
		echo "spamd: $(wc -l < "$D/sa-results.tsv") messages in $((end - start)) s wall ($JOBS children)"
	fi

	# --- 2. Sluice with SpamAssassin's rules ---------------------------------------------------
	"$RULES_BIN" test --db "$SADB" --corpus "$MANIFEST" --results "$D/sluice-sa-results.tsv" \
		> "$D/sluice-sa-test.txt"

	# per message, the rules that fired in one engine only (sluice-rules diff; exit 1 = differ)
	if [ -f "$D/sa-results.tsv" ]; then
		"$RULES_BIN" diff "$D/sa-results.tsv" "$D/sluice-sa-results.tsv" > "$D/diff-spamd-sluice.txt" || true
		echo "per-message differences: $D/diff-spamd-sluice.txt"
	fi

	# --- 3. Sluice with its own rule set -------------------------------------------------------
	"$RULES_BIN" test --db "$OWNDB" --corpus "$MANIFEST" --results "$D/sluice-own-results.tsv" \
		> "$D/sluice-own-test.txt"
done
spamd_stop

python3 - "$WORK" "$TOP" "$@" <<'EOF'
# The report: every figure per corpus, never pooled.
import math, os, sys
from collections import Counter

work, top, tars = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
THR = 5.0

def load(path):
    """path -> (label, score or None, set of rule names); __X sub-rules left out"""
    out = {}
    if not os.path.exists(path):
        return out
    for line in open(path, encoding="utf-8", errors="replace"):
        f = line.rstrip("\n").split("\t")
        if len(f) < 3:
            continue
        try:
            score = float(f[2])
        except ValueError:
            score = None
        rules = set()
        if len(f) > 3:
            rules = {r for r in f[3].split(",")
                     if r and r != "none" and r != "..." and not r.startswith("__")}
        out[f[1]] = (f[0], score, rules)
    return out

def summary(name, res):
    s = tp = h = fp = err = 0
    for label, score, _ in res.values():
        if score is None:
            err += 1
            continue
        if label == "spam":
            s += 1; tp += score >= THR
        else:
            h += 1; fp += score >= THR
    caught = f"{100 * tp / s:5.1f}% ({tp}/{s})" if s else "  n/a"
    ham = f"{100 * fp / h:5.2f}% ({fp}/{h})" if h else "  n/a"
    print(f"  {name:32s} spam caught {caught:18s} ham misjudged {ham}"
          + (f"   errors {err}" if err else ""))

def pearson(xs, ys):
    n = len(xs)
    if n < 2:
        return float("nan")
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else float("nan")

for tar in tars:
    d = os.path.join(work, os.path.basename(tar)[: -len(".tar.gz")] if tar.endswith(".tar.gz")
                     else os.path.basename(tar))
    sa = load(os.path.join(d, "sa-results.tsv"))
    sl = load(os.path.join(d, "sluice-sa-results.tsv"))
    own = load(os.path.join(d, "sluice-own-results.tsv"))
    print()
    print(f"== {os.path.basename(d)}: accuracy at required score {THR:g} ==")
    if sa:
        summary("SpamAssassin 4 (spamd -L)", sa)
    summary("Sluice, SpamAssassin's rules", sl)
    summary("Sluice, patterns/rules", own)
    for name, f in (("SA rules", "sluice-sa-test.txt"), ("patterns/rules", "sluice-own-test.txt")):
        if os.path.exists(os.path.join(d, f)):
            for line in open(os.path.join(d, f)):
                if line.startswith("PCRE2 runs"):
                    print(f"  Sluice, {name}: {line.strip()}")
    both = [p for p in sl if p in sa and sa[p][1] is not None and sl[p][1] is not None]
    if not both:
        continue
    agree = sum((sa[p][1] >= THR) == (sl[p][1] >= THR) for p in both)
    r = pearson([sa[p][1] for p in both], [sl[p][1] for p in both])
    print(f"  verdict agreement with spamd     {100 * agree / len(both):.2f}% "
          f"({agree}/{len(both)}), {len(both) - agree} disagree; score correlation (Pearson) {r:.4f}")
    only_sa, only_sl = Counter(), Counter()
    for p in both:
        only_sa.update(sa[p][2] - sl[p][2])
        only_sl.update(sl[p][2] - sa[p][2])
    for name, c in (("spamd only", only_sa), ("Sluice only", only_sl)):
        print(f"  rules firing in {name} (messages): " +
              (", ".join(f"{k} {v}" for k, v in c.most_common(top)) or "none"))
EOF
