#!/bin/sh
# record.sh - records what SpamAssassin 4.0.1 itself says of each test message: runs
# `spamassassin -L` (no network tests, no Bayes, no auto-welcomelist) with evals.cf added to the
# site configuration, and writes spamassassin.tsv: the file, then the EV_* rules that fired.
# test_eval_mime.c asserts that Sluice fires the same ones. Run it again after changing a
# message or evals.cf.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
cp /etc/spamassassin/*.pre "$site"/
cp "$here/evals.cf" "$site"/zz_evals.cf
printf 'use_bayes 0\nuse_auto_whitelist 0\n' > "$site"/zz_local.cf
out="$here/spamassassin.tsv"
: > "$out.tmp"
for f in "$here"/*.eml; do
	hits=$(spamassassin -L --siteconfigpath="$site" < "$f" |
		perl -0777 -ne 'if (/^X-Spam-Status:(.*?)\n(?!\s)/ms) { my $s = $1; $s =~ s/\s+//g;
			my ($t) = $s =~ /tests=([^=]*?)(?:autolearn|version|$)/;
			print join(",", sort grep { /^EV_/ } split(/,/, $t // "")) }')
	printf '%s\t%s\n' "$(basename "$f")" "$hits" >> "$out.tmp"
done
mv "$out.tmp" "$out"
