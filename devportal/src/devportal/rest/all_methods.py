"""Every REST area module, imported so its methods register in ``devportal.rest.METHODS``.

Kept apart from ``devportal.rest`` (which the area modules import for ``Ctx``, ``method`` and
the helpers) so that the registry and its areas import one way only; the REST server (``devportal.rest_server``) imports this.
"""

from devportal.rest import app_methods  # noqa: F401
from devportal.rest import bizproc  # noqa: F401
from devportal.rest import booking  # noqa: F401
from devportal.rest import booking_types  # noqa: F401
from devportal.rest import crm_contact  # noqa: F401
from devportal.rest import crm_deal  # noqa: F401
from devportal.rest import crm_item  # noqa: F401
from devportal.rest import crm_lead  # noqa: F401
from devportal.rest import crm_misc  # noqa: F401
from devportal.rest import crm_status  # noqa: F401
from devportal.rest import events  # noqa: F401
from devportal.rest import imbot  # noqa: F401
from devportal.rest import messaging  # noqa: F401
from devportal.rest import openlines  # noqa: F401
from devportal.rest import placements  # noqa: F401
from devportal.rest import tasks  # noqa: F401
from devportal.rest import users  # noqa: F401
from devportal.rest import waitlist  # noqa: F401
from devportal.rest import workflows  # noqa: F401
