#!/bin/sh
# Stand-in for the todobackend app in the end-to-end test: the lookup of
# settings_release.py (/run/secrets/NAME, else $NAME) in shell, and a check
# line with hashes, never the values.
set -e

secret() { if [ -f /run/secrets/$1 ]; then cat /run/secrets/$1; else eval echo \$$1; fi; }

sum() { printf %s "$1" | sha256sum | cut -d' ' -f1; }

MYSQL_PASSWORD=$(secret MYSQL_PASSWORD)
SECRET_KEY=$(secret SECRET_KEY)
echo "app: check user=$MYSQL_USER host=$MYSQL_HOST" \
	"mysql_password_sha256=$(sum "$MYSQL_PASSWORD")" \
	"secret_key_sha256=$(sum "$SECRET_KEY") secret_key_length=${#SECRET_KEY}"

trap 'exit 0' TERM INT
sleep 2147483647 &
wait
