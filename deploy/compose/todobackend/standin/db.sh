#!/bin/sh
# Stand-in for mysql:8 in the end-to-end test (e2e/compose_test.go), where
# no image can be pulled: it reads its passwords as the official image's
# entrypoint does (MYSQL_X_FILE, else MYSQL_X) and reports what it got as
# hashes, never the values, with the files' owner and mode.
set -e

file_env() {
	eval "file=\${${1}_FILE:-}"
	if [ -n "$file" ]; then
		val=$(cat "$file")
	else
		eval "val=\${$1:-}"
	fi
	if [ -z "$val" ]; then
		echo "db: $1 or ${1}_FILE must be set" >&2
		exit 1
	fi
	export "$1=$val"
}

sum() { printf %s "$1" | sha256sum | cut -d' ' -f1; }

file_env MYSQL_PASSWORD
file_env MYSQL_ROOT_PASSWORD
echo "db: ready database=$MYSQL_DATABASE user=$MYSQL_USER" \
	"password_sha256=$(sum "$MYSQL_PASSWORD") root_password_sha256=$(sum "$MYSQL_ROOT_PASSWORD")" \
	"files=$(stat -c '%n:%u:%g:%a' /run/secrets/MYSQL_PASSWORD /run/secrets/MYSQL_ROOT_PASSWORD | tr '\n' ' ')"

trap 'exit 0' TERM INT
sleep 2147483647 &
wait
