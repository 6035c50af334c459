#!/bin/sh
# count.sh MODE TOP TEXT RESULT: the number of lines of TEXT, or its TOP longest lines.
set -eu
mode=$1 top=$2 text=$3 result=$4
case $mode in
    count) wc -l < "$text" | tr -d ' ' > "$result" ;;
    longest) awk '{ print length($0) "\t" $0 }' "$text" | sort -rn | head -n "$top" | cut -f2- > "$result" ;;
esac
