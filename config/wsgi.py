import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)

from core.wsgi import application_with_lanes  # noqa: E402

application = application_with_lanes()
