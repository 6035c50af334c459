#!/bin/sh
# Word count with busybox alone (it runs in localhost/toolship-busybox).
#
#   wordcount.sh count OUT FILE...        counts of the words in FILEs, into OUT
#   wordcount.sh sum OUT COUNTS...        several counts files added up, into OUT
#   wordcount.sh parallel P OUT FILE...   count with P workers (one file each), then sum
#
# A word is a run of ASCII letters, lower-cased: "The dog's" is "the", "dog", "s".
# A counts file has one "COUNT WORD" line per word, the most frequent first (ties
# by word), so the same text always gives the same bytes.
set -eu

words() {
    tr -cs 'A-Za-z' '\n' | tr 'A-Z' 'a-z' | grep -v '^$' || true
}

ranked() {
    sort -k1,1nr -k2,2
}

count() {
    out=$1
    shift
    cat "$@" | words | sort | uniq -c | awk '{print $1, $2}' | ranked > "$out"
}

sum() {
    out=$1
    shift
    awk '{n[$2] += $1} END {for (w in n) print n[w], w}' "$@" | ranked > "$out"
}

parallel() {
    workers=$1 out=$2
    shift 2
    parts=$(mktemp -d)
    i=0
    for file in "$@"; do
        i=$((i + 1))
        printf '%s/%05d.counts %s\n' "$parts" "$i" "$file"
    done | xargs -P "$workers" -n 2 sh "$0" count
    sum "$out" "$parts"/*.counts
    rm -r "$parts"
}

case "${1:-}" in
    count | sum | parallel)
        mode=$1
        shift
        "$mode" "$@"
        ;;
    *)
        echo "usage: wordcount.sh count|sum|parallel ... (see the comment at the top)" >&2
        exit 2
        ;;
esac
