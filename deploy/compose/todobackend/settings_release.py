# todobackend/settings_release.py: the release settings of the todobackend
# Django app, reading its secrets from /run/secrets as under Swarm. Nothing
# changes for secretd: the files are at the same place, with the same names.
from .settings import *
import os

DEBUG = False


# Looks a secret up in this order:
# 1. the file /run/secrets/<key> (SECRETS_ROOT overrides /run/secrets)
# 2. the environment variable <key>
# 3. default (None if not given)
def secret(key, default=None):
    root = os.environ.get('SECRETS_ROOT', '/run/secrets')
    path = os.path.join(root, key)
    if os.path.isfile(path):
        with open(path) as f:
            return f.read().rstrip()
    return os.environ.get(key, default)


SECRET_KEY = secret('SECRET_KEY', SECRET_KEY)

# Must be explicitly specified when DEBUG is off.
ALLOWED_HOSTS = os.environ.get('ALLOWED_HOSTS', '*').split(',')

DATABASES = {
    'default': {
        'ENGINE': 'mysql.connector.django',
        'NAME': os.environ.get('MYSQL_DATABASE', 'todobackend'),
        'USER': os.environ.get('MYSQL_USER', 'todo'),
        'PASSWORD': secret('MYSQL_PASSWORD', 'password'),
        'HOST': os.environ.get('MYSQL_HOST', 'localhost'),
        'PORT': os.environ.get('MYSQL_PORT', '3306'),
        'OPTIONS': {
            'init_command': "SET sql_mode='STRICT_TRANS_TABLES'",
        },
    }
}

STATIC_ROOT = os.environ.get('STATIC_ROOT', '/public/static')
MEDIA_ROOT = os.environ.get('MEDIA_ROOT', '/public/media')
