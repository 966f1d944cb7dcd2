"""Stand-in for the todobackend app in docker-compose.yml: it looks its
secrets up exactly as settings_release.py does and says where each came
from, without printing a value, then serves GET / on port 8000 until
stopped."""
import hashlib
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


def secret(key, default=None):
    root = os.environ.get('SECRETS_ROOT', '/run/secrets')
    path = os.path.join(root, key)
    if os.path.isfile(path):
        with open(path) as f:
            return f.read().rstrip()
    return os.environ.get(key, default)


def origin(key):
    root = os.environ.get('SECRETS_ROOT', '/run/secrets')
    if os.path.isfile(os.path.join(root, key)):
        return 'file'
    return 'env' if key in os.environ else 'default'


def check():
    parts = []
    for key in ('MYSQL_PASSWORD', 'SECRET_KEY'):
        value = secret(key, '') or ''
        digest = hashlib.sha256(value.encode()).hexdigest()
        parts.append('%s from %s (%d bytes, sha256 %s)' % (key, origin(key), len(value), digest))
    return 'todobackend: ' + ', '.join(parts)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = (check() + '\n').encode()
        self.send_response(200)
        self.send_header('Content-Type', 'text/plain')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == '__main__':
    print(check(), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    HTTPServer(('', 8000), Handler).serve_forever()
