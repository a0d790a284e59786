"""The web application for a production WSGI server, several workers on one database:

    EHCP_CONFIG=/etc/ehcp/config.yaml gunicorn --workers 4 --bind 127.0.0.1:8080 'engine.web.wsgi:application'

The sweep runs beside it in one process of its own (``ehcp scheduler run``), or in ``ehcp serve``,
which takes the database's scheduler lock (engine.scheduler.SchedulerLock).
"""

from __future__ import annotations

from ..clock import SystemClock
from ..config import load_settings
from .views import create_app

application = create_app(load_settings(), SystemClock())
