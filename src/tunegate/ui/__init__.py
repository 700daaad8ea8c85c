"""The web dashboard: models and their timelines, versions, gate reports, the review queue, registry
actions and monitoring, as server-rendered pages under /ui.

routes   the pages and JSON actions (`dashboard_router`), login with an API key
views    what each page shows, read from the store
charts   loss curve and monitoring panels (matplotlib); gate figures come from `tunegate.gate.plots`
app      `mount` (onto `tunegate serve`'s app) and `create_dashboard_app` (`tunegate ui`)
"""

from tunegate.ui.app import create_dashboard_app, mount
from tunegate.ui.routes import dashboard_router

__all__ = ["create_dashboard_app", "dashboard_router", "mount"]
