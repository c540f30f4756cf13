#!/bin/sh
# Records which rules of rules.cf SpamAssassin 4.0.1 fires on each *.eml here, into
# spamassassin.tsv (file, then the rules that fired, comma-separated, sorted), for
# tests/unit/test_eval_htmlx.c. Only rules.cf is loaded, with the Check plugin and the TLD
# list SpamAssassin needs to scan at all (no network tests, no Bayes).
set -eu
cd "$(dirname "$0")"
cfg=$(mktemp -d)
trap 'rm -rf "$cfg"' EXIT
cp rules.cf /usr/share/spamassassin/20_aux_tlds.cf "$cfg/"
printf 'loadplugin Mail::SpamAssassin::Plugin::Check\n' > "$cfg/init.pre"
printf 'use_bayes 0\nclear_headers\nadd_header all Tests _TESTS(,)_\n' > "$cfg/zz_local.cf"
: > spamassassin.tsv.new
for m in *.eml; do
	hits=$(spamassassin -L -C "$cfg" --siteconfigpath="$cfg" < "$m" 2>/dev/null |
	       sed -n '/^$/q; /^X-Spam-Tests:/,/^[^ \t]/p' | sed 's/^X-Spam-Tests://' |
	       grep -v '^[A-Z][A-Za-z-]*:' | tr -d ' \t\n' | tr ',' '\n' | grep '^HX_' | sort |
	       paste -sd, -) || true
	printf '%s\t%s\n' "$m" "$hits" >> spamassassin.tsv.new
done
mv spamassassin.tsv.new spamassassin.tsv
