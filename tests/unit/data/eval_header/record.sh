#!/bin/sh
# record.sh - records what SpamAssassin 4.0.1 itself says of each message here, with rules.cf:
# writes spamassassin.tsv (file, the rules that fired, sorted), which test_eval_header.c
# compares with Sluice's scan of the same messages under the same rules.
# Network tests off (-L), Bayes off; only rules.cf's rules, with SpamAssassin's default prefs
# (originating_ip_headers ...) and TLD list, and the plugins the .pre files load.
set -eu
D=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/rules" "$T/site"
cp /usr/share/spamassassin/10_default_prefs.cf /usr/share/spamassassin/20_aux_tlds.cf "$T/rules/"
cp "$D/rules.cf" "$T/rules/50_test.cf"
cp /etc/spamassassin/*.pre "$T/site/"
printf 'use_bayes 0\nbayes_auto_learn 0\nrequired_score 5\n' > "$T/site/local.cf"
out=$D/spamassassin.tsv
: > "$out.new"
for f in "$D"/*.eml; do
	tests=$(spamassassin -L -C "$T/rules" --siteconfigpath="$T/site" < "$f" 2>/dev/null |
		sed -n '/^X-Spam-Status:/,/^[^ \t]/p' | head -n -1 | tr -d '\n\t ' |
		sed -n 's/.*tests=\([^ ]*\)autolearn.*/\1/p' | tr ',' '\n' | grep -v '^none$' | sort | paste -sd, -)
	printf '%s\t%s\n' "$(basename "$f")" "$tests" >> "$out.new"
done
mv "$out.new" "$out"
